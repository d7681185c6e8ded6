"""CPU kernels of the inference mode, compiled on first use with `torch.utils.cpp_extension.load_inline`.

`ternary_matmul(x, packed, scale, out_features, passes)` multiplies activations by a ternary matrix kept in the
"2bit" packed layout of `packing.py` (4 codes a byte along the output dimension), never unpacking it in memory;
`packed` may be several such matrices (q/k/v), each its own tensor, so that a packed checkpoint's tensors are used
where they lie (zero-copy views of the memory-mapped file) and still multiplied in one call:

    x (M, K) float  ->  per row m: s_m = 127 / max|x_m|,  q1 = round(x_m * s_m)            (int8, as BitNet's A8)
                        and, for passes=2, q2 = round((x_m * s_m - q1) * 254)           (int8 residual)
    y[m, n] = scale[n] / s_m * ( sum_k c(n,k) q1[m,k] - sum_k q1[m,k]
                                 + (sum_k c(n,k) q2[m,k] - sum_k q2[m,k]) / 254 )        (passes=2 only)

with c(n, k) = code in {0, 1, 2} = value + 1, so that sum_k value * q = sum_k c * q - sum_k q: unsigned codes times
signed activations is exactly what AVX512-VNNI's `vpdpbusd` multiplies, 64 products an instruction. One pass
reproduces 8-bit per-token activation quantization exactly (the model was trained with it); two passes carry ~15
bits of the activation, for models trained without activation quantization. Each packed row (4 output rows) is
read from memory once and reused for all M activation rows.

`bf16_matmul(x, weight)` is a GEMV/GEMM for bfloat16 weights (embeddings-sized heads) with float32 accumulation
(AVX512-BF16 `vdpbf16ps`); PyTorch's own bfloat16 GEMV at batch 1 ran at ~0.4-6 GB/s here.

Without AVX512 (VNNI, BF16) the same C++ falls back to plain loops, compiled with -O3; without a C++ compiler,
`kernels_available()` is False and the inference layers use PyTorch ops instead (slower, same results).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence

import torch

_CPP_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <vector>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

// Row-wise int8 quantization of x (M, K): q1 (and q2 for two passes), per-row inverse scale 1/s and code sums.
static void quantize_rows(const float* x, int64_t M, int64_t K, int passes, int8_t* q1, int8_t* q2,
                          float* inv_scale, int32_t* sum1, int32_t* sum2) {
  at::parallel_for(0, M, 16, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      const float* row = x + m * K;
      float amax = 0.f;
      for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(row[k]));
      amax = std::max(amax, 1e-5f);
      const float s = (1.f / amax) * 127.f;  // as quantize_activation's PyTorch arithmetic
      inv_scale[m] = 1.f / s;
      int32_t s1 = 0, s2 = 0;
      for (int64_t k = 0; k < K; ++k) {
        const float v = row[k] * s;
        const float r1 = std::nearbyint(v);
        q1[m * K + k] = (int8_t)r1;
        s1 += (int32_t)r1;
        if (passes == 2) {
          const float r2 = std::nearbyint((v - r1) * 254.f);
          q2[m * K + k] = (int8_t)std::max(-127.f, std::min(127.f, r2));
          s2 += (int32_t)q2[m * K + k];
        }
      }
      sum1[m] = s1;
      sum2[m] = s2;
    }
  });
}

// acc[b] += sum_k c_b(p, k) * q[k] for the 4 output rows b of packed row p; with q2, also acc2 for the residual
// activations, unpacking each weight byte once for both.
template <bool TWO>
static inline void dot4(const uint8_t* prow, const int8_t* q, const int8_t* q2, int64_t K, int32_t acc[4],
                        int32_t acc2[4]) {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
  __m512i a2 = _mm512_setzero_si512(), a3 = _mm512_setzero_si512();
  __m512i b0 = _mm512_setzero_si512(), b1 = _mm512_setzero_si512();
  __m512i b2 = _mm512_setzero_si512(), b3 = _mm512_setzero_si512();
  const __m512i three = _mm512_set1_epi8(3);
  for (int64_t k = 0; k < K; k += 64) {
    const __mmask64 mask = (K - k >= 64) ? ~(__mmask64)0 : (((__mmask64)1 << (K - k)) - 1);
    const __m512i bytes = _mm512_maskz_loadu_epi8(mask, prow + k);
    const __m512i act = _mm512_maskz_loadu_epi8(mask, q + k);
    const __m512i c0 = _mm512_and_si512(bytes, three);
    const __m512i c1 = _mm512_and_si512(_mm512_srli_epi16(bytes, 2), three);
    const __m512i c2 = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), three);
    const __m512i c3 = _mm512_and_si512(_mm512_srli_epi16(bytes, 6), three);
    a0 = _mm512_dpbusd_epi32(a0, c0, act);
    a1 = _mm512_dpbusd_epi32(a1, c1, act);
    a2 = _mm512_dpbusd_epi32(a2, c2, act);
    a3 = _mm512_dpbusd_epi32(a3, c3, act);
    if (TWO) {
      const __m512i act2 = _mm512_maskz_loadu_epi8(mask, q2 + k);
      b0 = _mm512_dpbusd_epi32(b0, c0, act2);
      b1 = _mm512_dpbusd_epi32(b1, c1, act2);
      b2 = _mm512_dpbusd_epi32(b2, c2, act2);
      b3 = _mm512_dpbusd_epi32(b3, c3, act2);
    }
  }
  acc[0] += _mm512_reduce_add_epi32(a0); acc[1] += _mm512_reduce_add_epi32(a1);
  acc[2] += _mm512_reduce_add_epi32(a2); acc[3] += _mm512_reduce_add_epi32(a3);
  if (TWO) {
    acc2[0] += _mm512_reduce_add_epi32(b0); acc2[1] += _mm512_reduce_add_epi32(b1);
    acc2[2] += _mm512_reduce_add_epi32(b2); acc2[3] += _mm512_reduce_add_epi32(b3);
  }
#else
  for (int64_t k = 0; k < K; ++k) {
    const int32_t b = prow[k];
    const int32_t c[4] = {b & 3, (b >> 2) & 3, (b >> 4) & 3, (b >> 6) & 3};
    for (int j = 0; j < 4; ++j) {
      acc[j] += c[j] * q[k];
      if (TWO) acc2[j] += c[j] * q2[k];
    }
  }
#endif
}

// packed rows (R, K) of one matrix of N output rows: packed row j holds output rows j, R + j, 2R + j, 3R + j.
struct PackedPart {
  const uint8_t* data;
  int64_t rows, out_rows, first_row, first_out;
};

// Stacked matrices (q/k/v, gate/up): each part keeps its own packed tensor (possibly a zero-copy view of the
// checkpoint file); the output concatenates the parts' outputs.
static std::vector<PackedPart> packed_parts(const std::vector<torch::Tensor>& parts,
                                            const std::vector<int64_t>& out_sizes, int64_t K) {
  TORCH_CHECK(!parts.empty() && parts.size() == out_sizes.size(), "one out_features value per packed part");
  std::vector<PackedPart> result;
  int64_t first_row = 0, first_out = 0;
  for (size_t s = 0; s < parts.size(); ++s) {
    const auto& part = parts[s];
    TORCH_CHECK(part.dtype() == torch::kUInt8 && part.dim() == 2 && part.is_contiguous() && part.size(1) == K,
                "packed parts: contiguous uint8 (R, in_features)");
    const int64_t R = part.size(0), N = out_sizes[s];
    TORCH_CHECK(R == (N + 3) / 4, "packed rows do not match out_features");
    result.push_back({part.data_ptr<uint8_t>(), R, N, first_row, first_out});
    first_row += R;
    first_out += N;
  }
  return result;
}

torch::Tensor ternary_matmul(torch::Tensor x, std::vector<torch::Tensor> parts, torch::Tensor scale,
                             std::vector<int64_t> out_sizes, int64_t passes) {
  TORCH_CHECK(passes == 1 || passes == 2, "passes must be 1 or 2");
  const auto out_dtype = x.scalar_type();
  auto xf = x.to(torch::kFloat32).contiguous();
  const int64_t K = xf.size(-1);
  const auto segments = packed_parts(parts, out_sizes, K);
  const int64_t R = segments.back().first_row + segments.back().rows;
  const int64_t N = segments.back().first_out + segments.back().out_rows;
  TORCH_CHECK(scale.dtype() == torch::kFloat32 && scale.numel() == N && scale.is_contiguous(),
              "scale: contiguous float32 with out_features values");
  const int64_t M = xf.numel() / K;
  auto q1 = torch::empty({M, K}, torch::kInt8), q2 = torch::empty({passes == 2 ? M : 1, K}, torch::kInt8);
  auto inv_scale = torch::empty({M}, torch::kFloat32);
  auto sums = torch::empty({2, M}, torch::kInt32);
  quantize_rows(xf.data_ptr<float>(), M, K, (int)passes, q1.data_ptr<int8_t>(), q2.data_ptr<int8_t>(),
                inv_scale.data_ptr<float>(), sums.data_ptr<int32_t>(), sums.data_ptr<int32_t>() + M);
  auto out_sizes_full = xf.sizes().vec();
  out_sizes_full.back() = N;
  auto y = torch::empty({M, N}, torch::kFloat32);
  const float* g = scale.data_ptr<float>();
  const int8_t* Q1 = q1.data_ptr<int8_t>();
  const int8_t* Q2 = q2.data_ptr<int8_t>();
  const float* inv = inv_scale.data_ptr<float>();
  const int32_t* S1 = sums.data_ptr<int32_t>();
  const int32_t* S2 = S1 + M;
  float* Y = y.data_ptr<float>();
  at::parallel_for(0, R, 8, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      size_t s = 0;
      while (p >= segments[s].first_row + segments[s].rows) ++s;  // at most 3 parts
      const PackedPart& part = segments[s];
      const int64_t j = p - part.first_row;
      const uint8_t* prow = part.data + j * K;
      for (int64_t m = 0; m < M; ++m) {
        int32_t a1[4] = {0, 0, 0, 0}, a2[4] = {0, 0, 0, 0};
        if (passes == 2) dot4<true>(prow, Q1 + m * K, Q2 + m * K, K, a1, a2);
        else dot4<false>(prow, Q1 + m * K, nullptr, K, a1, a2);
        for (int b = 0; b < 4; ++b) {
          const int64_t local = b * part.rows + j;
          if (local >= part.out_rows) continue;  // padding rows of the last quarter
          const int64_t n = part.first_out + local;
          float v = (float)(a1[b] - S1[m]);
          if (passes == 2) v += (float)(a2[b] - S2[m]) * (1.f / 254.f);
          Y[m * N + n] = v * g[n] * inv[m];
        }
      }
    }
  });
  return y.view(out_sizes_full).to(out_dtype);
}

// y = x / sqrt(mean(x^2) + eps) * weight over the last dimension (float32), as LlamaRMSNorm.
torch::Tensor rms_norm(torch::Tensor x, torch::Tensor weight, double eps) {
  auto xf = x.to(torch::kFloat32).contiguous();
  auto w = weight.to(torch::kFloat32).contiguous();
  const int64_t D = xf.size(-1), M = xf.numel() / D;
  auto y = torch::empty_like(xf);
  const float* X = xf.data_ptr<float>();
  const float* W = w.data_ptr<float>();
  float* Y = y.data_ptr<float>();
  at::parallel_for(0, M, 64, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      const float* row = X + m * D;
      float ss = 0.f;
      for (int64_t d = 0; d < D; ++d) ss += row[d] * row[d];
      const float r = 1.f / std::sqrt(ss / (float)D + (float)eps);
      for (int64_t d = 0; d < D; ++d) Y[m * D + d] = W[d] * (row[d] * r);
    }
  });
  return y;
}

// In place, Llama's rotate-half RoPE on the first `rotated` columns of x (M, W) (heads of width D side by side:
// the q and k heads of a fused qkv output): x_h = x_h * cos + rotate_half(x_h) * sin, cos and sin (M, D).
void rope_inplace(torch::Tensor x, torch::Tensor cos, torch::Tensor sin, int64_t rotated) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && x.is_contiguous() && x.dim() == 2, "x: contiguous float32 (M, W)");
  TORCH_CHECK(cos.dtype() == torch::kFloat32 && sin.dtype() == torch::kFloat32 && cos.is_contiguous()
              && sin.is_contiguous() && cos.dim() == 2 && sin.sizes() == cos.sizes() && cos.size(0) == x.size(0),
              "cos, sin: contiguous float32 (M, head_dim)");
  const int64_t M = x.size(0), W = x.size(1), D = cos.size(1), half = D / 2;
  TORCH_CHECK(D % 2 == 0 && rotated % D == 0 && rotated <= W, "rotated columns must be whole heads");
  float* X = x.data_ptr<float>();
  const float* C = cos.data_ptr<float>();
  const float* S = sin.data_ptr<float>();
  at::parallel_for(0, M, 4, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      const float* c = C + m * D;
      const float* s = S + m * D;
      for (int64_t head = 0; head < rotated; head += D) {
        float* h = X + m * W + head;
        for (int64_t d = 0; d < half; ++d) {
          const float a = h[d], b = h[d + half];
          h[d] = a * c[d] - b * s[d];
          h[d + half] = b * c[d + half] + a * s[d + half];
        }
      }
    }
  });
}

// fused (..., 2N) = [gate | up]  ->  silu(gate) * up, shape (..., N)
torch::Tensor silu_mul(torch::Tensor fused) {
  auto f = fused.to(torch::kFloat32).contiguous();
  const int64_t N2 = f.size(-1), N = N2 / 2, M = f.numel() / N2;
  auto sizes = f.sizes().vec();
  sizes.back() = N;
  auto y = torch::empty(sizes, torch::kFloat32);
  const float* F = f.data_ptr<float>();
  float* Y = y.data_ptr<float>();
  at::parallel_for(0, M, 16, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        const float g = F[m * N2 + n];
        Y[m * N + n] = g / (1.f + std::exp(-g)) * F[m * N2 + N + n];
      }
    }
  });
  return y;
}

// Sum of |w| of each row, accumulated in float64 in index order (deterministic: independent of thread count).
torch::Tensor abs_row_sums(torch::Tensor w) {
  TORCH_CHECK(w.dtype() == torch::kFloat32 && w.dim() == 2, "abs_row_sums: float32 (rows, cols)");
  auto wc = w.contiguous();
  const int64_t R = wc.size(0), C = wc.size(1);
  auto out = torch::empty({R}, torch::kFloat64);
  const float* W = wc.data_ptr<float>();
  double* O = out.data_ptr<double>();
  at::parallel_for(0, R, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = W + r * C;
      double s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // 4 fixed lanes, combined in a fixed order
      int64_t c = 0;
      for (; c + 4 <= C; c += 4) {
        s0 += std::fabs(row[c]); s1 += std::fabs(row[c + 1]); s2 += std::fabs(row[c + 2]); s3 += std::fabs(row[c + 3]);
      }
      for (; c < C; ++c) s0 += std::fabs(row[c]);
      O[r] = (s0 + s1) + (s2 + s3);
    }
  });
  return out;
}

// clamp(round(w / scale), -1, 1) * scale in one pass, written into `out` (float32, w's shape, contiguous);
// scale has one value, or one per row.
void ternary_fake_quantize_into(torch::Tensor w, torch::Tensor scale, torch::Tensor out) {
  TORCH_CHECK(w.dtype() == torch::kFloat32 && w.dim() == 2, "ternary_fake_quantize: float32 (rows, cols)");
  TORCH_CHECK(out.dtype() == torch::kFloat32 && out.is_contiguous() && out.sizes() == w.sizes(),
              "out: contiguous float32 of the weight's shape");
  auto wc = w.contiguous();
  auto sc = scale.to(torch::kFloat32).contiguous();
  const int64_t R = wc.size(0), C = wc.size(1);
  const bool per_row = sc.numel() == R && sc.numel() != 1;
  const float* W = wc.data_ptr<float>();
  const float* S = sc.data_ptr<float>();
  float* O = out.data_ptr<float>();
  at::parallel_for(0, R, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float g = per_row ? S[r] : S[0];
      for (int64_t c = 0; c < C; ++c) {
        const float q = std::nearbyint(W[r * C + c] / g);
        O[r * C + c] = std::max(-1.f, std::min(1.f, q)) * g;
      }
    }
  });
}

// Number of bytes of a "2bit" packed tensor holding a bit pair 11 (code 3, unused by the format), in one pass.
int64_t count_invalid_2bit_bytes(torch::Tensor packed) {
  TORCH_CHECK(packed.dtype() == torch::kUInt8, "count_invalid_2bit_bytes: uint8 tensor");
  auto pc = packed.contiguous();
  const uint8_t* P = pc.data_ptr<uint8_t>();
  const int64_t n = pc.numel();
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) bad += (P[i] & (P[i] >> 1) & 0x55) != 0;
  return bad;
}

// 8-bit absmax fake quantization per row of x (M, K), float32, the exact arithmetic of
// quantization.quantize_activation: s = 127 / max(max|x|, eps), y = clamp(round(x * s), -128, 127) / s.
void activation_fake_quantize_into(torch::Tensor x, double eps, torch::Tensor out) {
  TORCH_CHECK(x.dtype() == torch::kFloat32, "activation_fake_quantize: float32 input");
  TORCH_CHECK(out.dtype() == torch::kFloat32 && out.is_contiguous() && out.sizes() == x.sizes(),
              "out: contiguous float32 of the input's shape");
  auto xc = x.contiguous();
  const int64_t K = xc.size(-1), M = K == 0 ? 0 : xc.numel() / K;
  const float* X = xc.data_ptr<float>();
  float* O = out.data_ptr<float>();
  at::parallel_for(0, M, 8, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      const float* row = X + m * K;
      float amax = 0.f;
      for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(row[k]));
      // (1 / amax) * 127, not 127 / amax: PyTorch evaluates `127.0 / tensor` as `tensor.reciprocal() * 127`
      const float s = (1.f / std::max(amax, (float)eps)) * 127.f;
      for (int64_t k = 0; k < K; ++k) {
        O[m * K + k] = std::max(-128.f, std::min(127.f, std::nearbyint(row[k] * s))) / s;
      }
    }
  });
}

torch::Tensor bf16_matmul(torch::Tensor x, torch::Tensor weight) {
  TORCH_CHECK(weight.dtype() == torch::kBFloat16 && weight.dim() == 2 && weight.is_contiguous(), "weight: bf16 (N, K)");
  const auto out_dtype = x.scalar_type();
  const int64_t N = weight.size(0), K = weight.size(1);
  auto xf = x.to(torch::kFloat32).contiguous();
  TORCH_CHECK(xf.size(-1) == K, "x: last dimension must equal in_features");
  const int64_t M = xf.numel() / K;
  auto out_sizes = xf.sizes().vec();
  out_sizes.back() = N;
  auto y = torch::empty({M, N}, torch::kFloat32);
  const uint16_t* W = reinterpret_cast<const uint16_t*>(weight.data_ptr<at::BFloat16>());
  float* Y = y.data_ptr<float>();
  // x is rounded to bf16, like PyTorch's bf16 matmul; products are accumulated in float32 (both code paths).
  auto xb = xf.to(torch::kBFloat16).contiguous();
  const uint16_t* XB = reinterpret_cast<const uint16_t*>(xb.data_ptr<at::BFloat16>());
  at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const uint16_t* wrow = W + n * K;
      for (int64_t m = 0; m < M; ++m) {
#if defined(__AVX512BF16__)
        __m512 acc = _mm512_setzero_ps();
        const uint16_t* xrow = XB + m * K;
        int64_t k = 0;
        for (; k + 32 <= K; k += 32) {
          acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(wrow + k), (__m512bh)_mm512_loadu_si512(xrow + k));
        }
        float s = _mm512_reduce_add_ps(acc);
        for (; k < K; ++k) {
          uint32_t wb = (uint32_t)wrow[k] << 16, xb_ = (uint32_t)xrow[k] << 16;
          float wf, xf_;
          std::memcpy(&wf, &wb, 4); std::memcpy(&xf_, &xb_, 4);
          s += wf * xf_;
        }
#else
        float s = 0.f;
        const uint16_t* xrow = XB + m * K;
        for (int64_t k = 0; k < K; ++k) {
          uint32_t wb = (uint32_t)wrow[k] << 16, xb_ = (uint32_t)xrow[k] << 16;
          float wf, xf_;
          std::memcpy(&wf, &wb, 4); std::memcpy(&xf_, &xb_, 4);
          s += wf * xf_;
        }
#endif
        Y[m * N + n] = s;
      }
    }
  });
  return y.view(out_sizes).to(out_dtype);
}
"""

_CPP_DECLARATIONS = """
torch::Tensor ternary_matmul(torch::Tensor x, std::vector<torch::Tensor> parts, torch::Tensor scale,
                             std::vector<int64_t> out_sizes, int64_t passes);
torch::Tensor bf16_matmul(torch::Tensor x, torch::Tensor weight);
torch::Tensor rms_norm(torch::Tensor x, torch::Tensor weight, double eps);
torch::Tensor silu_mul(torch::Tensor fused);
void rope_inplace(torch::Tensor x, torch::Tensor cos, torch::Tensor sin, int64_t rotated);
torch::Tensor abs_row_sums(torch::Tensor w);
void ternary_fake_quantize_into(torch::Tensor w, torch::Tensor scale, torch::Tensor out);
void activation_fake_quantize_into(torch::Tensor x, double eps, torch::Tensor out);
int64_t count_invalid_2bit_bytes(torch::Tensor packed);
"""
_FUNCTIONS = ["ternary_matmul", "bf16_matmul", "rms_norm", "silu_mul", "rope_inplace", "abs_row_sums",
              "ternary_fake_quantize_into", "activation_fake_quantize_into", "count_invalid_2bit_bytes"]


@functools.lru_cache(maxsize=None)
def _extension():
    """Compile (once per machine and source version; cached on disk by PyTorch) and load the C++ kernels."""
    if os.environ.get("MODELING_TERNARY_NO_KERNELS"):
        return None
    try:
        return build_extension(native=True)
    except Exception as error:  # no compiler, no headers: fall back to PyTorch ops
        warnings.warn(f"modeling_ternary: C++ kernels unavailable ({error}); using slower PyTorch ops.")
        return None


def build_extension(native: bool = True):
    """Compile and load the kernels: for this CPU (`native`, AVX512 paths where available) or for baseline x86-64 /
    any CPU (the plain C++ loops; used by the tests to check the fallback against the vector code)."""
    from torch.utils.cpp_extension import load_inline

    target = torch.backends.cpu.get_cpu_capability().lower() if native else "portable"
    return load_inline(
        name=f"modeling_ternary_kernels_{target}_v6",
        cpp_sources=[_CPP_DECLARATIONS, _CPP_SOURCE],
        functions=_FUNCTIONS,
        extra_cflags=["-O3", "-fopenmp"] + (["-march=native"] if native else []),
        extra_ldflags=["-fopenmp"],
        verbose=False,
    )


def kernels_available() -> bool:
    """Whether the compiled CPU kernels can be used (compiles them on the first call)."""
    return _extension() is not None


def ternary_matmul(x: torch.Tensor, packed: torch.Tensor | Sequence[torch.Tensor], scale: torch.Tensor,
                   out_features: int | Sequence[int], passes: int) -> torch.Tensor:
    """`x @ (codes * scale).T` with codes read from the "2bit" packed layout; see the module docstring.

    Args:
        x: activations (..., in_features), float32 or bfloat16, on the CPU.
        packed: uint8 (ceil(out_features / 4), in_features), contiguous; or a list of such tensors, one per stacked
            matrix (q/k/v, gate/up), multiplied as if their codes were concatenated along the output dimension.
        scale: float32 (sum of out_features,), the per-row scale (a per-tensor scale repeated).
        out_features: N, or one N per packed tensor.
        passes: 1 (8-bit activations) or 2 (~15-bit activations).

    Returns:
        (..., sum of out_features) in `x`'s dtype.
    """
    parts = [packed] if isinstance(packed, torch.Tensor) else list(packed)
    out_sizes = [out_features] if isinstance(out_features, int) else list(out_features)
    return _extension().ternary_matmul(x, parts, scale, out_sizes, passes)


def bf16_matmul(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`x @ weight.T` for a bfloat16 (N, K) weight, float32 accumulation; result in `x`'s dtype."""
    return _extension().bf16_matmul(x, weight)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """`x / sqrt(mean(x**2) + eps) * weight` over the last dimension, in float32 (LlamaRMSNorm in one call)."""
    return _extension().rms_norm(x, weight, eps)


def silu_mul(fused: torch.Tensor) -> torch.Tensor:
    """`silu(gate) * up` for `fused = cat([gate, up], -1)` of shape (..., 2N); returns (..., N) float32."""
    return _extension().silu_mul(fused)


def rope_inplace(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, rotated: int) -> None:
    """Llama's rotate-half RoPE, in place, on the first `rotated` columns (whole heads) of a float32 (M, W) tensor.

    Args:
        x: contiguous float32 (M, W), e.g. a fused qkv output (tokens, q heads | k heads | v heads).
        cos, sin: contiguous float32 (M, head_dim), the rotary tables of each row's position.
        rotated: number of leading columns to rotate (q and k heads), a multiple of head_dim.
    """
    _extension().rope_inplace(x, cos, sin, rotated)


def abs_row_sums(weight: torch.Tensor) -> torch.Tensor:
    """Float64 sums of |weight| over each row of a float32 (rows, cols) matrix, in a thread-independent order."""
    return _extension().abs_row_sums(weight)


def ternary_fake_quantize(weight: torch.Tensor, scale: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """`clamp(round(weight / scale), -1, 1) * scale` for a float32 matrix in one pass (scale: () or (rows, 1)),
    into `out` (contiguous float32, weight's shape) when given, else into a new tensor; returns the result."""
    if out is None:
        out = torch.empty_like(weight, memory_format=torch.contiguous_format)
    _extension().ternary_fake_quantize_into(weight, scale, out)
    return out


def activation_fake_quantize(x: torch.Tensor, eps: float, out: torch.Tensor | None = None) -> torch.Tensor:
    """8-bit absmax fake quantization per row of a float32 tensor in one pass (`quantize_activation`'s arithmetic),
    into `out` (contiguous float32, x's shape) when given, else into a new tensor; returns the result."""
    if out is None:
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
    _extension().activation_fake_quantize_into(x, eps, out)
    return out


def count_invalid_2bit_bytes(packed: torch.Tensor) -> int:
    """How many bytes of a uint8 "2bit" packed tensor hold code 3 (bit pair 11), counted in one pass."""
    return _extension().count_invalid_2bit_bytes(packed)
