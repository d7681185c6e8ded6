"""Inference mode: ternary matrices kept packed in memory (2 bits a weight) and multiplied by the CPU kernels of
`kernels.py`; no latent full-precision copy. Embeddings and LM head are held in bfloat16, norms in float32, and
activations, attention and the KV cache in float32.

`convert_to_inference(model)` rewrites a loaded `TernaryForCausalLM` / `TernaryForSequenceClassification` /
`TernaryModel` in place:
- q/k/v of each layer become one `PackedTernaryLinear` (`self_attn.qkv_proj`) and gate/up another
  (`mlp.gate_up_proj`), so that a decoding step makes 4 kernel calls a layer instead of 7; RoPE is applied in place
  on the qkv output by one kernel call;
- every ternary matrix is held as uint8 (ceil(out / 4), in) in the "2bit" layout of `packing.py` plus a float32
  scale per output row (a per-tensor scale repeated). Loaded from a "2bit" packed checkpoint, these uint8 tensors are
  the checkpoint's own (checked, then used where transformers left them: zero-copy views of the memory-mapped
  safetensors file), and so are bfloat16 embeddings and head: loading copies nothing large, and the process's memory
  is the file pages it touches (the whole head, the embedding rows it looks up);
- activations are quantized inside the kernel: 8 bits per token (one pass) when the model was trained with
  `activation_quant="per_token_int8"` (exactly the training-time arithmetic), else ~15 bits (two passes);
- the model refuses `.train()`, `save_pretrained` and backward passes.
"""

from __future__ import annotations

import torch
from torch import nn

from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from .kernels import bf16_matmul, kernels_available, rms_norm, rope_inplace, silu_mul, ternary_matmul
from .packing import pack_ternary, unpack_ternary
from .quantization import quantize_activation
from .ternary_linear import TernaryLinear

INFERENCE_ERROR = (
    "This Ternary model is in inference mode (packed weights, no latent weights): it cannot be trained or saved. "
    "Load the checkpoint without `inference=True` to fine-tune or save it."
)


class PackedTernaryLinear(nn.Module):
    """One or more ternary matrices (stacked along the output dimension), packed 2-bit, for inference only.

    Each matrix keeps its own packed tensor (buffers `weight_packed_0`, `weight_packed_1`, ...): loaded from a "2bit"
    packed checkpoint, these are the checkpoint's tensors themselves, zero-copy views of the memory-mapped file.

    Args:
        packed: one uint8 tensor per matrix, shape (ceil(out_i / 4), in), the "2bit" layout of `packing.py`.
        row_scales: float32 scale of each output row of the stacked matrices, shape (sum of out_i,).
        bias: optional float bias (sum of out_i,).
        activation_bits: 8 (one kernel pass, BitNet's A8) or 16 (two passes, ~15-bit activations).
        split_sizes: out_i of each matrix; `forward` returns a tuple when there are several.
    """

    def __init__(self, packed: list[torch.Tensor], row_scales: torch.Tensor, bias: torch.Tensor | None,
                 activation_bits: int, split_sizes: list[int]):
        super().__init__()
        if len(packed) != len(split_sizes):
            raise ValueError(f"one packed tensor per matrix: got {len(packed)} for split_sizes {split_sizes}")
        self.in_features = packed[0].shape[1]
        self.out_features = sum(split_sizes)
        self.passes = 1 if activation_bits == 8 else 2
        self.split_sizes = list(split_sizes)
        self._part_names = [f"weight_packed_{index}" for index in range(len(packed))]
        for name, part in zip(self._part_names, packed):
            self.register_buffer(name, part.contiguous())
        self.register_buffer("row_scales", row_scales.to(torch.float32).contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.float32).clone())

    @property
    def packed_parts(self) -> list[torch.Tensor]:
        """The packed tensor of each stacked matrix."""
        return [self._buffers[name] for name in self._part_names]  # not getattr: ~6 us a call, 48 calls a token

    def codes(self) -> torch.Tensor:
        """The int8 codes of the stacked matrices, (out_features, in_features) (unpacked on each call)."""
        return torch.cat([unpack_ternary(part, (size, self.in_features), "2bit")
                          for part, size in zip(self.packed_parts, self.split_sizes)])

    def forward(self, x: torch.Tensor):
        y = self._matmul(x)
        return y if len(self.split_sizes) == 1 else y.split(self.split_sizes, dim=-1)

    def gated(self, x: torch.Tensor, act_fn) -> torch.Tensor:
        """For stacked [gate; up] matrices: `act_fn(gate) * up`, in one kernel call when `act_fn` is SiLU."""
        y = self._matmul(x)  # (..., 2 * intermediate)
        if isinstance(act_fn, nn.SiLU) or type(act_fn).__name__ == "SiLUActivation":
            if y.device.type == "cpu" and kernels_available():
                return silu_mul(y)
        gate, up = y.split(self.split_sizes, dim=-1)
        return act_fn(gate) * up

    def _matmul(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and kernels_available():
            y = ternary_matmul(x, self.packed_parts, self.row_scales, self.split_sizes, self.passes)
        else:
            y = self._reference_forward(x)
        return y if self.bias is None else y + self.bias

    def _reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same arithmetic with PyTorch ops (GPU, or no C++ compiler): unpacks the codes on every call.
        if self.passes == 1:
            x = quantize_activation(x)
        return nn.functional.linear(x, self.codes().to(x.dtype) * self.row_scales.to(x.dtype).unsqueeze(1))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.split_sizes}, passes={self.passes}"


def project_qkv_with_rope(qkv_proj: PackedTernaryLinear, hidden_states: torch.Tensor,
                          position_embeddings: tuple[torch.Tensor, torch.Tensor], head_dim: int):
    """q, k, v of an inference-mode attention layer, RoPE already applied to q and k.

    Args:
        qkv_proj: the stacked [q; k; v] `PackedTernaryLinear`.
        hidden_states: (B, T, hidden).
        position_embeddings: Llama's `(cos, sin)`, each (B, T, head_dim).
        head_dim: width of a head.

    Returns:
        `(query, key, value)`, each (B, T, heads * head_dim).
    """
    cos, sin = position_embeddings
    fused = qkv_proj._matmul(hidden_states)  # (B, T, q + k + v widths), a fresh float32 tensor we may overwrite
    rotated = qkv_proj.split_sizes[0] + qkv_proj.split_sizes[1]
    if fused.device.type == "cpu" and fused.dtype == torch.float32 and cos.dtype == torch.float32 \
            and qkv_proj.bias is None and kernels_available():
        tokens = fused.numel() // fused.shape[-1]
        # One kernel call instead of ~10 small ops (rotate_half's slices, negation, concatenation, products)
        cos, sin = (table.expand(*fused.shape[:-1], head_dim).reshape(tokens, head_dim).contiguous()
                    for table in (cos, sin))  # (tokens, head_dim); a copy only when batch rows share a table
        rope_inplace(fused.view(tokens, -1), cos, sin, rotated)
        return fused.split(qkv_proj.split_sizes, dim=-1)
    query, key, value = fused.split(qkv_proj.split_sizes, dim=-1)
    heads = (*fused.shape[:-1], -1, head_dim)  # (B, T, heads, head_dim): rotate with the tables unsqueezed at dim 2
    query, key = apply_rotary_pos_emb(query.view(heads), key.view(heads), cos, sin, unsqueeze_dim=2)
    return query.flatten(-2), key.flatten(-2), value


class BFloat16Linear(nn.Module):
    """A full-precision projection (LM head, classifier, non-ternary layers) held in bfloat16, output in float32."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", linear.weight.detach().to(torch.bfloat16).contiguous())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and kernels_available():
            y = bf16_matmul(x.float(), self.weight)
        else:
            y = nn.functional.linear(x.to(torch.bfloat16), self.weight).float()
        return y if self.bias is None else y + self.bias


class BFloat16Embedding(nn.Module):
    """Token embeddings held in bfloat16, returned in float32."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        self.num_embeddings, self.embedding_dim = embedding.weight.shape
        self.padding_idx = embedding.padding_idx
        self.register_buffer("weight", embedding.weight.detach().to(torch.bfloat16).contiguous())

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(input_ids, self.weight).float()


class FusedRMSNorm(nn.Module):
    """LlamaRMSNorm computed by one kernel call (float32)."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.weight = nn.Parameter(norm.weight.detach().float().clone(), requires_grad=False)
        self.variance_epsilon = norm.variance_epsilon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and kernels_available():
            return rms_norm(x, self.weight, self.variance_epsilon)
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(variance + self.variance_epsilon))


class _RefuseBackward(torch.autograd.Function):
    """Identity forward; a backward pass through an inference-mode model raises `INFERENCE_ERROR`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):
        raise RuntimeError(INFERENCE_ERROR)


def refuse_backward(x: torch.Tensor) -> torch.Tensor:
    """Return `x`, marked so that `backward` through it raises a clear error (only when grad mode is on)."""
    if not torch.is_grad_enabled():
        return x
    return _RefuseBackward.apply(x.detach().requires_grad_())


def packed_and_row_scales(layer: TernaryLinear, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The "2bit" packed codes (ceil(out / 4), in) and float32 per-row scales (out,) of a `TernaryLinear`.

    A layer loaded from a "2bit" checkpoint gives its own buffer, checked but not copied; a latent layer or a
    "1.6bit" one is packed anew.
    """
    if layer.is_packed and layer.packing_layout == "2bit":
        packed, scale = layer.checked_packed_buffers(name)
    else:
        codes, scale = layer.checked_packed_codes(name) if layer.is_packed else (layer.ternary_codes(),
                                                                                 layer.current_scale())
        packed = pack_ternary(codes, "2bit")
    return packed, scale.to(torch.float32).expand(layer.out_features, 1).reshape(-1).contiguous()


def _inference_projection(layers: list[nn.Module], names: list[str], activation_bits: int) -> nn.Module:
    """Stack ternary layers into one `PackedTernaryLinear`; a single non-ternary layer becomes `BFloat16Linear`."""
    if len(layers) == 1 and not isinstance(layers[0], TernaryLinear):
        return BFloat16Linear(layers[0])
    parts = [packed_and_row_scales(layer, name) for layer, name in zip(layers, names)]
    biases = [layer.bias for layer in layers]
    bias = None if all(b is None for b in biases) else torch.cat(
        [b.detach().float() if b is not None else torch.zeros(layer.out_features) for b, layer in zip(biases, layers)]
    )
    return PackedTernaryLinear(
        [packed for packed, _ in parts], torch.cat([scales for _, scales in parts]), bias,
        activation_bits, split_sizes=[layer.out_features for layer in layers],
    )


def _convert_group(parent: nn.Module, prefix: str, names: tuple[str, ...], fused_name: str, bits: int) -> None:
    layers = [getattr(parent, name) for name in names]
    if all(isinstance(layer, TernaryLinear) for layer in layers):
        setattr(parent, fused_name, _inference_projection(layers, [f"{prefix}.{n}" for n in names], bits))
        for name in names:
            delattr(parent, name)
        return
    for name, layer in zip(names, layers):  # mixed ternary / full precision: convert one by one
        setattr(parent, name, _inference_projection([layer], [f"{prefix}.{name}"], bits))


def convert_to_inference(model) -> None:
    """Rewrite `model` (a Ternary model, latent or with packed layers) for packed CPU inference, in place."""
    if getattr(model, "is_inference", False):
        return
    base = model.model if hasattr(model, "model") else model
    bits = 8 if model.config.activation_quant == "per_token_int8" else 16
    for index, layer in enumerate(base.layers):
        prefix = f"model.layers.{index}"
        _convert_group(layer.self_attn, f"{prefix}.self_attn", ("q_proj", "k_proj", "v_proj"), "qkv_proj", bits)
        layer.self_attn.o_proj = _inference_projection([layer.self_attn.o_proj], [f"{prefix}.self_attn.o_proj"], bits)
        _convert_group(layer.mlp, f"{prefix}.mlp", ("gate_proj", "up_proj"), "gate_up_proj", bits)
        layer.mlp.down_proj = _inference_projection([layer.mlp.down_proj], [f"{prefix}.mlp.down_proj"], bits)
        layer.input_layernorm = FusedRMSNorm(layer.input_layernorm)
        layer.post_attention_layernorm = FusedRMSNorm(layer.post_attention_layernorm)
    base.norm = FusedRMSNorm(base.norm)
    base.embed_tokens = BFloat16Embedding(base.embed_tokens)
    for head_name in ("lm_head", "score"):
        if isinstance(getattr(model, head_name, None), nn.Linear):
            setattr(model, head_name, BFloat16Linear(getattr(model, head_name)))
    for parameter in model.parameters():  # norms: float32 (buffers above keep their bfloat16 / uint8)
        parameter.data = parameter.data.float()
        parameter.requires_grad_(False)
    model.is_inference = True
    model.config.checkpoint_format = "latent"  # the in-memory model no longer expects packed tensors
    model.config.packing_layout = None
    model.config.packing_format_version = None
    nn.Module.train(model, False)


def memory_report(model, cache_tokens: int = 0, batch_size: int = 1) -> dict[str, int]:
    """Bytes held by each part of an inference-mode model, and by a float32 KV cache of `cache_tokens` tokens.

    Returns:
        `{"ternary layers": ..., "embeddings": ..., "head": ..., "norms and other": ..., "kv cache": ...,
        "total": ...}` in bytes.
    """
    parts = {"ternary layers": 0, "embeddings": 0, "head": 0, "norms and other": 0}
    for module_name, module in model.named_modules():
        own = sum(t.numel() * t.element_size() for t in list(module.parameters(recurse=False))
                  + list(module.buffers(recurse=False)) if t is not None)
        if isinstance(module, PackedTernaryLinear):
            parts["ternary layers"] += own
        elif isinstance(module, BFloat16Embedding):
            parts["embeddings"] += own
        elif module_name in ("lm_head", "score"):
            parts["head"] += own
        else:
            parts["norms and other"] += own
    config = model.config
    parts["kv cache"] = (2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim
                         * cache_tokens * batch_size * 4)
    parts["total"] = sum(parts.values())
    return parts
