import pytest
import torch
from transformers import AutoModelForCausalLM, DynamicCache
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

import modeling_ternary.inference as inference
from modeling_ternary import TernaryForCausalLM, TernaryForSequenceClassification, TernaryLinear, kernels
from modeling_ternary.packing import pack_ternary
from modeling_ternary.quantization import quantize_activation
from tests.conftest import tiny_config


def _relative_error(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def _pair(tmp_path, **overrides):
    """A latent model and the same model loaded in inference mode from its packed checkpoint."""
    latent = TernaryForCausalLM(tiny_config(hidden_size=64, intermediate_size=128, **overrides)).eval()
    latent.save_packed(tmp_path, float_dtype="float32")
    return latent, AutoModelForCausalLM.from_pretrained(tmp_path, inference=True)


# --- kernels against inline references ---------------------------------------------------------------------------


@pytest.mark.parametrize("out_features, in_features, rows", [(13, 70, 3), (64, 64, 1), (130, 200, 5)])
def test_ternary_matmul_kernel_against_references(out_features, in_features, rows):
    codes = torch.randint(-1, 2, (out_features, in_features), dtype=torch.int8)
    scales = torch.rand(out_features) * 0.05 + 0.01
    x = torch.randn(rows, in_features) * 3
    packed = pack_ternary(codes, "2bit")
    dense = codes.float() * scales[:, None]
    one_pass = kernels.ternary_matmul(x, packed, scales, out_features, 1)
    torch.testing.assert_close(one_pass, quantize_activation(x) @ dense.t(), rtol=1e-5, atol=1e-5)  # exactly A8
    two_pass = kernels.ternary_matmul(x, packed, scales, out_features, 2)
    assert _relative_error(two_pass, x @ dense.t()) < 2e-4  # ~15-bit activations
    assert kernels.ternary_matmul(x.bfloat16(), packed, scales, out_features, 2).dtype == torch.bfloat16


def test_ternary_matmul_of_stacked_parts_equals_the_concatenated_matrix():
    """q/k/v-style stacking: parts of different heights (padding rows included) multiplied in one call."""
    sizes = [13, 6, 64]
    codes = [torch.randint(-1, 2, (n, 70), dtype=torch.int8) for n in sizes]
    scales = torch.rand(sum(sizes)) * 0.05 + 0.01
    x = torch.randn(3, 70)
    stacked = kernels.ternary_matmul(x, [pack_ternary(c, "2bit") for c in codes], scales, sizes, 1)
    single = kernels.ternary_matmul(x, pack_ternary(torch.cat(codes), "2bit"), scales, sum(sizes), 1)
    torch.testing.assert_close(stacked, single, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="packed rows do not match out_features"):
        kernels.ternary_matmul(x, [pack_ternary(c, "2bit") for c in codes], scales, [12, 7, 64], 1)


def test_small_kernels_against_torch():
    weight = torch.randn(300, 96).bfloat16()
    x = torch.randn(2, 3, 96)
    torch.testing.assert_close(kernels.bf16_matmul(x, weight), x.bfloat16().float() @ weight.float().t(),
                               rtol=1e-4, atol=1e-4)
    norm_weight = torch.rand(96)
    expected = norm_weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(kernels.rms_norm(x, norm_weight, 1e-6), expected)
    fused = torch.randn(4, 2 * 48)
    torch.testing.assert_close(kernels.silu_mul(fused), torch.nn.functional.silu(fused[:, :48]) * fused[:, 48:])
    qkv, cos, sin = torch.randn(5, 3 * 32), torch.randn(5, 16), torch.randn(5, 16)  # 2 heads of 16 each for q/k/v
    expected_q, expected_k = apply_rotary_pos_emb(qkv[:, :32].view(5, 2, 16), qkv[:, 32:64].view(5, 2, 16), cos, sin,
                                                  unsqueeze_dim=1)
    rotated = qkv.clone()
    kernels.rope_inplace(rotated, cos, sin, 64)
    torch.testing.assert_close(rotated[:, :64], torch.cat([expected_q, expected_k], 1).view(5, 64))
    assert torch.equal(rotated[:, 64:], qkv[:, 64:])  # v is not rotated


# --- the inference model ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [{}, {"activation_quant": "per_token_int8"}, {"scale_granularity": "per_channel"},
                                       {"num_key_value_heads": 2}])
def test_inference_logits_match_training_mode_for_prefill_and_cached_decoding(tmp_path, overrides):
    latent, fast = _pair(tmp_path, **overrides)
    input_ids = torch.randint(3, 99, (2, 12))
    with torch.no_grad():
        assert _relative_error(fast(input_ids).logits, latent(input_ids).logits) <= 1e-2
        caches = [DynamicCache(config=latent.config), DynamicCache(config=fast.config)]
        prefill = [m(input_ids[:, :8], cache=c, use_cache=True) for m, c in zip((latent, fast), caches)]
        for step in range(8, 12):
            outs = [m(input_ids[:, step:step + 1], cache=c, use_cache=True) for m, c in zip((latent, fast), caches)]
            assert _relative_error(outs[1].logits, outs[0].logits) <= 1e-2, step
        assert _relative_error(prefill[1].logits, prefill[0].logits) <= 1e-2


def test_inference_model_holds_the_same_ternary_codes(tmp_path):
    latent, fast = _pair(tmp_path, scale_granularity="per_channel")
    for index in range(2):
        attention = latent.model.layers[index].self_attn
        stacked = fast.model.layers[index].self_attn.qkv_proj
        codes = stacked.codes()
        expected = torch.cat([attention.q_proj.ternary_codes(), attention.k_proj.ternary_codes(),
                              attention.v_proj.ternary_codes()])
        assert torch.equal(codes, expected)
        scales = torch.cat([attention.q_proj.current_scale(), attention.k_proj.current_scale(),
                            attention.v_proj.current_scale()]).reshape(-1)
        assert torch.equal(stacked.row_scales, scales)


def test_inference_model_holds_no_latent_weights(tmp_path):
    latent, fast = _pair(tmp_path)
    tensors = list(fast.parameters()) + [b for b in fast.buffers() if b is not None]
    assert not any(isinstance(m, TernaryLinear) for m in fast.modules())
    ternary_count = sum(m.weight.numel() for m in latent.modules() if isinstance(m, TernaryLinear))
    packed_bytes = sum(b.numel() for n, b in fast.named_buffers() if ".weight_packed_" in n)
    assert packed_bytes == ternary_count // 4  # 2 bits a weight (all dimensions here are multiples of 4)
    float_bytes = sum(t.numel() * t.element_size() for t in tensors if t.is_floating_point())
    non_ternary = sum(p.numel() for p in latent.parameters()) - ternary_count
    # floats: bf16 embeddings and head, float32 norms, per-row scales, rotary tables; nothing like 4 B a weight
    assert float_bytes < 2 * non_ternary + 4 * 3000
    report = fast.inference_memory_report(cache_tokens=10)
    assert report["ternary layers"] == packed_bytes + 4 * sum(
        m.row_scales.numel() for m in fast.modules() if isinstance(m, inference.PackedTernaryLinear))
    assert report["kv cache"] == 2 * 2 * 4 * 16 * 10 * 4


def _mapped_ranges(file_name: str) -> list[tuple[int, int]]:
    with open("/proc/self/maps") as maps:
        lines = [line.split() for line in maps if line.rstrip().endswith(file_name)]
    return [tuple(int(bound, 16) for bound in line[0].split("-")) for line in lines]


def test_2bit_checkpoint_loads_into_inference_mode_without_copying_the_codes(tmp_path):
    """The packed codes of a "2bit" checkpoint are used in place: views of the memory-mapped file, not copies."""
    TernaryForCausalLM(tiny_config(hidden_size=64, intermediate_size=128)).save_packed(tmp_path)
    fast = AutoModelForCausalLM.from_pretrained(tmp_path, inference=True)
    ranges = _mapped_ranges(str(tmp_path / "model.safetensors"))
    parts = [part for m in fast.modules() if isinstance(m, inference.PackedTernaryLinear) for part in m.packed_parts]
    assert len(parts) == 2 * 7 and ranges
    assert all(any(low <= part.data_ptr() < high for low, high in ranges) for part in parts)


def test_inference_model_refuses_training_backward_and_saving(tmp_path):
    _, fast = _pair(tmp_path)
    message = r"in inference mode \(packed weights, no latent weights\): it cannot be trained or saved"
    with pytest.raises(RuntimeError, match=message):
        fast.train()
    input_ids = torch.randint(3, 99, (1, 6))
    loss = fast(input_ids, labels=input_ids).loss
    with pytest.raises(RuntimeError, match=message):
        loss.backward()
    with pytest.raises(RuntimeError, match=message):
        fast.save_pretrained(tmp_path / "again")
    with pytest.raises(ValueError, match=r"in inference mode and holds no latent weights"):
        fast.save_packed(tmp_path / "again")


def test_inference_generate_batched_and_left_padded(tmp_path):
    latent, fast = _pair(tmp_path)
    input_ids = torch.randint(3, 99, (2, 7))
    attention_mask = torch.ones_like(input_ids)
    input_ids[1, :3], attention_mask[1, :3] = 0, 0
    kwargs = dict(attention_mask=attention_mask, max_new_tokens=8, do_sample=False, pad_token_id=0)
    cached = fast.generate(input_ids, **kwargs)
    assert torch.equal(cached, fast.generate(input_ids, use_cache=False, **kwargs))
    assert torch.equal(cached, latent.generate(input_ids, **kwargs))
    single = fast.generate(input_ids[1:, 3:], max_new_tokens=8, do_sample=False)
    assert torch.equal(cached[1, 3:], single[0])


@pytest.mark.parametrize("layout", ["2bit", "1.6bit"])
def test_inference_from_packed_and_latent_checkpoints_agree(tmp_path, layout):
    model = TernaryForCausalLM(tiny_config()).eval()
    model.save_pretrained(tmp_path / "latent")
    model.save_packed(tmp_path / "packed", layout=layout, float_dtype="float32")
    from_latent = AutoModelForCausalLM.from_pretrained(tmp_path / "latent", inference=True)
    from_packed = AutoModelForCausalLM.from_pretrained(tmp_path / "packed", inference=True)
    input_ids = torch.randint(3, 99, (2, 9))
    assert torch.equal(from_latent(input_ids).logits, from_packed(input_ids).logits)
    assert from_packed.is_inference and not from_packed.training


def test_reference_path_without_kernels_agrees(tmp_path, monkeypatch):
    latent, fast = _pair(tmp_path)
    input_ids = torch.randint(3, 99, (2, 9))
    with torch.no_grad():
        with_kernels = fast(input_ids).logits
        monkeypatch.setattr(inference, "kernels_available", lambda: False)
        without = fast(input_ids).logits
    assert _relative_error(without, with_kernels) <= 1e-2
    assert _relative_error(without, latent(input_ids).logits) <= 1e-2


def test_sequence_classifier_in_inference_mode(tmp_path):
    classifier = TernaryForSequenceClassification(tiny_config(num_labels=3)).eval()
    classifier.save_packed(tmp_path, float_dtype="float32")
    fast = TernaryForSequenceClassification.from_pretrained(tmp_path, inference=True)
    input_ids = torch.randint(3, 99, (2, 7))
    assert _relative_error(fast(input_ids).logits, classifier(input_ids).logits) <= 1e-2


def test_portable_kernels_match_the_native_ones():
    """The plain C++ loops (CPUs without AVX512) compute what the AVX512 code computes."""
    portable = kernels.build_extension(native=False)
    native = kernels.build_extension(native=True)
    codes = torch.randint(-1, 2, (70, 130), dtype=torch.int8)
    packed, scales = pack_ternary(codes, "2bit"), torch.rand(70) * 0.05 + 0.01
    x = torch.randn(3, 130)
    for passes in (1, 2):
        torch.testing.assert_close(portable.ternary_matmul(x, [packed], scales, [70], passes),
                                   native.ternary_matmul(x, [packed], scales, [70], passes), rtol=1e-6, atol=1e-6)
    weight = torch.randn(50, 96).bfloat16()
    torch.testing.assert_close(portable.bf16_matmul(x[:, :96], weight), native.bf16_matmul(x[:, :96], weight),
                               rtol=1e-4, atol=1e-4)
    matrix = torch.randn(33, 70)
    assert torch.equal(portable.abs_row_sums(matrix), native.abs_row_sums(matrix))
    scale = torch.tensor(0.5)
    for function, args in (("ternary_fake_quantize_into", (matrix, scale)), ("activation_fake_quantize_into",
                                                                           (matrix, 1e-5))):
        outputs = [torch.empty_like(matrix), torch.empty_like(matrix)]
        getattr(portable, function)(*args, outputs[0])
        getattr(native, function)(*args, outputs[1])
        assert torch.equal(*outputs), function
    damaged = packed.clone()
    invalid_invalid_valid = torch.tensor([0b11, 0b1100_0000, 0b0110_0110], dtype=torch.uint8)
    damaged.view(-1)[[3, 40, 41]] = invalid_invalid_valid
    assert portable.count_invalid_2bit_bytes(damaged) == native.count_invalid_2bit_bytes(damaged) == 2
    assert native.count_invalid_2bit_bytes(packed) == 0
