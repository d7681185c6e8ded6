import inspect

import pytest
import torch
from torch import nn

from modeling_ternary import (
    StraightThroughEstimator,
    TernaryLinear,
    absmean_scale,
    quantize_activation,
    quantize_weight,
    replace_linear_with_ternary,
    set_quant_strength,
    warmup_strength,
)


def _reference_ternary(weight, per_channel=False, eps=1e-5):
    # Written out from the BitNet b1.58 formula, independently of the package (mean accumulated in float64).
    if per_channel:
        g = weight.abs().double().mean(dim=1, keepdim=True).to(weight.dtype).clamp(min=eps)
    else:
        g = weight.abs().double().mean().to(weight.dtype).clamp(min=eps)
    return torch.clamp(torch.round(weight / g), -1, 1), g


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 64), (64, 17)])
def test_quantized_weight_is_exactly_minus_g_zero_plus_g(shape):
    weight = torch.randn(shape) * 0.02
    quantized = quantize_weight(weight)
    g = weight.abs().double().mean().float()
    assert absmean_scale(weight) == g
    values = set(quantized.unique().tolist())
    assert values <= {-g.item(), 0.0, g.item()}
    codes, _ = _reference_ternary(weight)
    assert torch.equal(quantized, codes * g)


def test_per_channel_scale_is_mean_abs_of_each_row():
    weight = torch.randn(8, 16) * torch.arange(1, 9).unsqueeze(1)
    quantized = quantize_weight(weight, "per_channel")
    codes, g = _reference_ternary(weight, per_channel=True)
    assert g.shape == (8, 1)
    assert torch.equal(quantized, codes * g)
    for row in range(8):
        assert set(quantized[row].unique().tolist()) <= {-g[row].item(), 0.0, g[row].item()}


def test_scale_is_clamped_at_eps_for_an_all_zero_matrix():
    weight = torch.zeros(4, 4)
    assert absmean_scale(weight, eps=1e-5) == torch.tensor(1e-5)
    assert torch.equal(quantize_weight(weight), torch.zeros(4, 4))


def test_unknown_granularity_is_refused():
    with pytest.raises(ValueError, match=r"`granularity` must be one of .*'per_block'"):
        absmean_scale(torch.ones(2, 2), "per_block")


def test_straight_through_gradient_equals_inline_reference():
    torch.manual_seed(1)
    layer = TernaryLinear(16, 8, bias=True)
    x = torch.randn(4, 16, requires_grad=True)
    upstream = torch.randn(4, 8)
    (layer(x) * upstream).sum().backward()

    # Reference: y = x @ Wq^T + b with Wq treated as a constant in the forward, and dL/dW := dL/dWq (identity STE).
    codes, g = _reference_ternary(layer.weight.detach())
    w_q = codes * g
    expected_grad_w = upstream.t() @ x.detach()  # dL/dWq, shape (8, 16)
    expected_grad_x = upstream @ w_q  # (4, 16)
    torch.testing.assert_close(layer.weight.grad, expected_grad_w)
    torch.testing.assert_close(x.grad, expected_grad_x)
    torch.testing.assert_close(layer.bias.grad, upstream.sum(0))


def test_straight_through_estimator_backward_is_identity():
    x = torch.randn(5, requires_grad=True)
    y = StraightThroughEstimator.apply(x, torch.round)
    assert torch.equal(y, torch.round(x.detach()))
    y.backward(torch.arange(5.0))
    assert torch.equal(x.grad, torch.arange(5.0))


def test_activation_quantization_error_within_8bit_bound():
    x = torch.randn(3, 7, 64) * torch.logspace(-3, 3, 7).view(1, 7, 1)
    quantized = quantize_activation(x)
    bound = x.abs().amax(-1, keepdim=True) / 254  # half a step of 127 levels per sign
    assert ((quantized - x).abs() <= bound * (1 + 1e-5)).all()
    # at most 255 distinct levels per token
    for token in quantized.reshape(-1, 64):
        assert token.unique().numel() <= 255
    # the token's absmax is representable exactly (up to float rounding)
    torch.testing.assert_close(quantized.abs().amax(-1), x.abs().amax(-1))


def test_activation_quantization_kernel_equals_the_torch_formula_bit_for_bit():
    """The one-pass CPU kernel computes exactly `clamp(round(x * s), -128, 127) / s`, s = 127 / max(max|x|, eps)."""
    x = torch.randn(3, 7, 96) * torch.logspace(-4, 4, 7).view(1, 7, 1)
    x[0, 0] = 0.0  # an all-zero token: the scale comes from eps
    x[1, 1, :3] = torch.tensor([0.5, -0.5, 1.5]) * 127 / x[1, 1].abs().max()  # ties: round half to even
    for eps in (1e-5, 0.3):
        scale = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=eps)
        assert torch.equal(quantize_activation(x, eps), (x * scale).round().clamp(-128, 127) / scale)


def test_activation_quantization_gradient_is_straight_through():
    torch.manual_seed(2)
    layer = TernaryLinear(16, 8, bias=False, activation_quant="per_token_int8")
    x = torch.randn(4, 16, requires_grad=True)
    upstream = torch.randn(4, 8)
    (layer(x) * upstream).sum().backward()
    codes, g = _reference_ternary(layer.weight.detach())
    x_q = quantize_activation(x.detach())
    torch.testing.assert_close(layer.weight.grad, upstream.t() @ x_q)
    torch.testing.assert_close(x.grad, upstream @ (codes * g))


def test_forward_reuses_its_quantized_weight_workspace_only_when_nothing_holds_it():
    """The forward pass writes W_t * g into a reused tensor; a graph still holding it gets a new one (exact grads)."""
    torch.manual_seed(3)
    layer = TernaryLinear(16, 8, bias=False)
    x = torch.randn(4, 16, requires_grad=True)
    upstream = torch.randn(4, 8)
    workspaces = []
    for _ in range(3):  # forward, backward, forward, ...: one workspace throughout
        x.grad, layer.weight.grad = None, None
        (layer(x) * upstream).sum().backward()
        workspaces.append(layer.__dict__["_quantized_workspace"])
        codes, g = _reference_ternary(layer.weight.detach())
        assert torch.equal(x.grad, upstream @ (codes * g))
    assert workspaces[0] is workspaces[1] is workspaces[2]
    # Two forward passes (weights flipped in between) before one backward: each graph keeps its own quantized weight.
    x.grad = None
    first = layer(x)
    first_weight = layer.quantized_weight().detach()
    with torch.no_grad():
        layer.weight.mul_(-1)
    second = layer(x)
    assert layer.__dict__["_quantized_workspace"] is not workspaces[0]
    ((first + 2 * second) * upstream).sum().backward()
    assert torch.equal(x.grad, upstream @ first_weight + (2 * upstream) @ layer.quantized_weight().detach())
    assert layer.quantized_weight() is not layer.__dict__["_quantized_workspace"]  # callers get their own tensor


def test_without_pytorch_reference_counters_nothing_is_reused(monkeypatch):
    monkeypatch.delattr(torch._C, "_storage_Use_Count")
    layer = TernaryLinear(16, 8, bias=False)
    x = torch.randn(4, 16)
    with torch.no_grad():
        first = layer(x)
        workspace = layer.__dict__["_quantized_workspace"]
        assert torch.equal(layer(x), first)
    assert layer.__dict__["_quantized_workspace"] is not workspace


def test_forward_reuses_its_quantized_activation_workspace_only_when_nothing_holds_it():
    torch.manual_seed(4)
    layer = TernaryLinear(16, 8, bias=False, activation_quant="per_token_int8")
    upstream = torch.randn(4, 8)
    inputs = [torch.randn(4, 16) for _ in range(3)]
    workspaces = []
    for x in inputs[:2]:  # one forward, one backward: the workspace is reused
        layer.weight.grad = None
        (layer(x) * upstream).sum().backward()
        assert torch.equal(layer.weight.grad, upstream.t() @ quantize_activation(x))
        workspaces.append(layer.__dict__["_activation_workspace"])
    workspace = workspaces[0]
    assert workspaces[1] is workspace
    layer.weight.grad = None
    first, second = layer(inputs[1]), layer(inputs[2])  # both graphs alive: the second needs its own workspace
    assert layer.__dict__["_activation_workspace"] is not workspace
    ((first + second) * upstream).sum().backward()
    expected = upstream.t() @ quantize_activation(inputs[1]) + upstream.t() @ quantize_activation(inputs[2])
    torch.testing.assert_close(layer.weight.grad, expected, rtol=0, atol=1e-6)


def test_ternary_linear_keeps_nn_linear_signature_and_state_dict():
    linear_params = list(inspect.signature(nn.Linear.__init__).parameters)
    ternary_params = list(inspect.signature(TernaryLinear.__init__).parameters)
    assert ternary_params[: len(linear_params)] == linear_params
    layer = TernaryLinear(6, 4, True, None, torch.float64)
    assert isinstance(layer, nn.Linear)
    assert layer.weight.dtype == torch.float64
    assert set(layer.state_dict()) == set(nn.Linear(6, 4).state_dict()) == {"weight", "bias"}


def test_ternary_linear_rejects_unknown_options():
    with pytest.raises(ValueError, match=r"`activation_quant` must be one of .*'int4'"):
        TernaryLinear(4, 4, activation_quant="int4")
    with pytest.raises(ValueError, match=r"`scale_granularity` must be one of .*'row'"):
        TernaryLinear(4, 4, scale_granularity="row")


def test_ternary_codes_and_scale_accessors():
    layer = TernaryLinear(32, 16, bias=False)
    codes = layer.ternary_codes()
    assert codes.dtype == torch.int8 and set(codes.unique().tolist()) <= {-1, 0, 1}
    assert torch.equal(codes.float() * layer.current_scale(), layer.quantized_weight().detach())


def test_warmup_blends_full_precision_into_ternary():
    layer = TernaryLinear(8, 8, bias=False)
    w = layer.weight.detach()
    q = quantize_weight(w)
    layer.quant_strength = 0.0
    assert torch.equal(layer.quantized_weight().detach(), w)
    layer.quant_strength = 0.25
    torch.testing.assert_close(layer.quantized_weight().detach(), 0.75 * w + 0.25 * q)
    layer.quant_strength = 1.0
    assert torch.equal(layer.quantized_weight().detach(), q)


def test_warmup_strength_schedule_and_setter():
    assert [warmup_strength(s, 4) for s in (0, 1, 2, 4, 9)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert warmup_strength(0, 0) == 1.0
    model = nn.Sequential(TernaryLinear(4, 4), nn.Linear(4, 4), TernaryLinear(4, 4))
    set_quant_strength(model, 0.5)
    assert model[0].quant_strength == model[2].quant_strength == 0.5
    with pytest.raises(ValueError, match=r"`strength` must be a number in \[0, 1\], got 1.5"):
        set_quant_strength(model, 1.5)


def test_replace_linear_with_ternary_converts_a_llama_and_copies_weights():
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4))
    before = {k: v.clone() for k, v in llama.state_dict().items()}
    replace_linear_with_ternary(llama, activation_quant="per_token_int8")
    after = llama.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    ternary = [name for name, m in llama.named_modules() if isinstance(m, TernaryLinear)]
    assert len(ternary) == 2 * 7
    assert not isinstance(llama.lm_head, TernaryLinear)
    assert llama.model.layers[0].mlp.up_proj.activation_quant == "per_token_int8"
    logits = llama(torch.tensor([[3, 4, 5]])).logits
    assert torch.isfinite(logits).all()


def test_replace_linear_with_ternary_only_named_modules():
    model = nn.ModuleDict({"q_proj": nn.Linear(4, 4), "v_proj": nn.Linear(4, 4)})
    replace_linear_with_ternary(model, ["q_proj"])
    assert isinstance(model["q_proj"], TernaryLinear) and type(model["v_proj"]) is nn.Linear
    with pytest.raises(TypeError, match=r"`module_names` must be a list of attribute names, got 'q_proj'"):
        replace_linear_with_ternary(model, "q_proj")
