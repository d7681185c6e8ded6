"""Ternary quantization: the absmean weight quantizer, the 8-bit activation quantizer, the straight-through
estimator that trains through both, and `TernaryLinear`, a drop-in replacement for `nn.Linear`.

Weight quantizer (BitNet b1.58 "absmean"), for a latent full-precision matrix W of shape (out, in):
    g   = max(mean(|W|), eps)                      # per tensor: shape (); per channel: shape (out, 1);
                                                   # the sum is accumulated in float64
    W_t = clamp(round(W / g), -1, 1)               # ternary codes in {-1, 0, +1}
    W_q = W_t * g                                  # what the forward pass multiplies by
Activation quantizer (8-bit absmax per token), for x of shape (..., in):
    s   = 127 / max(max(|x|, over in), eps)        # shape (..., 1)
    x_q = clamp(round(x * s), -128, 127) / s       # so |x_q - x| <= 0.5 / s = max|x| / 254
Both are trained through with the straight-through estimator: the forward pass uses the quantized value, the backward
pass hands the gradient to the full-precision input unchanged.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .configuration_ternary import ACTIVATION_QUANT_CHOICES, WEIGHT_SCALE_CHOICES


class StraightThroughEstimator(torch.autograd.Function):
    """The one place where quantization is made differentiable.

    Forward returns `quantize_fn(x)` exactly (no `x + (q - x).detach()` rounding error); backward returns the
    incoming gradient unchanged as the gradient of `x` (identity Jacobian), as if quantization were the identity.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, quantize_fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        return quantize_fn(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output, None


def absmean_scale(weight: torch.Tensor, granularity: str = "per_tensor", eps: float = 1e-5) -> torch.Tensor:
    """Scale g of the absmean quantizer: `mean|W|` clamped below at `eps`.

    Args:
        weight: matrix of shape (out, in).
        granularity: `"per_tensor"` (returns shape ()) or `"per_channel"` (returns shape (out, 1)).
        eps: lower bound of the scale.

    Returns:
        The scale, in `weight`'s dtype.
    """
    # Accumulated in float64: the scale then does not depend on the reduction order (threads, device), so the
    # same latent weights give the same ternary model everywhere and a packed checkpoint reloads bit-exactly
    # (see latent.py). Costs ~1 ms per 768x2048 matrix on 2 CPU cores, under 2% of a training step.
    if granularity == "per_tensor":
        total = weight.abs().sum(dtype=torch.float64)
        count = weight.numel()
    elif granularity == "per_channel":
        total = weight.abs().sum(dim=-1, keepdim=True, dtype=torch.float64)
        count = weight.shape[-1]
    else:
        raise ValueError(f"`granularity` must be one of {WEIGHT_SCALE_CHOICES}, got {granularity!r}.")
    return (total / max(count, 1)).to(weight.dtype).clamp(min=eps)


def ternary_codes(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Ternary codes `clamp(round(W / g), -1, 1)`, same shape and dtype as `weight`, values in {-1, 0, +1}."""
    return (weight / scale).round().clamp(-1, 1)


def quantize_weight(weight: torch.Tensor, granularity: str = "per_tensor", eps: float = 1e-5) -> torch.Tensor:
    """Absmean ternary fake-quantization `W_t * g` (no gradient logic; see `StraightThroughEstimator`).

    Args:
        weight: matrix of shape (out, in).
        granularity: `"per_tensor"` or `"per_channel"`.
        eps: lower bound of the scale.

    Returns:
        A tensor shaped like `weight` whose values are exactly in {-g, 0, +g}.

    Example:
        >>> quantize_weight(torch.tensor([[0.5, -0.1], [-2.0, 0.0]]))
        tensor([[ 0.6500, -0.0000],
                [-0.6500,  0.0000]])
    """
    scale = absmean_scale(weight, granularity, eps)
    return ternary_codes(weight, scale) * scale


def quantize_activation(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """8-bit absmax fake-quantization per token (over the last dimension), shape and dtype kept.

    Args:
        x: activations of shape (..., features).
        eps: lower bound of the per-token max|x|.

    Returns:
        `x` rounded to 255 levels per token; `|result - x| <= max|x| / 254` elementwise.
    """
    scale = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=eps)  # (..., 1)
    return (x * scale).round().clamp(-128, 127) / scale


class TernaryLinear(nn.Linear):
    """`nn.Linear` whose weight is used ternarized in the forward pass, trained by the straight-through estimator.

    `weight` stays the latent full-precision parameter (so optimizers, checkpoints and `load_state_dict` see an
    ordinary `nn.Linear`); the bias, if any, stays full precision.

    Args:
        in_features, out_features, bias, device, dtype: as in `nn.Linear`.
        weight_scale: `"per_tensor"` or `"per_channel"` absmean scale.
        activation_quant: `"none"` or `"per_token_int8"`.
        quant_eps: lower bound of the quantization scales.

    Attributes:
        quant_strength (`float`): lambda in [0, 1]; the forward pass uses `(1 - lambda) * W + lambda * Q(W)` (and
            the same for activations). 1.0 (the default) is fully ternary; smaller values are for warm-up only.

    Example:
        >>> layer = TernaryLinear(64, 32, bias=False)
        >>> layer(torch.randn(2, 64)).shape
        torch.Size([2, 32])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        weight_scale: str = "per_tensor",
        activation_quant: str = "none",
        quant_eps: float = 1e-5,
    ) -> None:
        if weight_scale not in WEIGHT_SCALE_CHOICES:
            raise ValueError(f"`weight_scale` must be one of {WEIGHT_SCALE_CHOICES}, got {weight_scale!r}.")
        if activation_quant not in ACTIVATION_QUANT_CHOICES:
            raise ValueError(
                f"`activation_quant` must be one of {ACTIVATION_QUANT_CHOICES}, got {activation_quant!r}."
            )
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.weight_scale = weight_scale
        self.activation_quant = activation_quant
        self.quant_eps = quant_eps
        self.quant_strength = 1.0

    def quantized_weight(self) -> torch.Tensor:
        """The weight the forward pass uses, `W_t * g` blended by `quant_strength`, differentiable by STE."""
        quantized = StraightThroughEstimator.apply(self.weight, self._quantize_weight)
        return _blend(self.weight, quantized, self.quant_strength)

    def ternary_codes(self) -> torch.Tensor:
        """The int8 codes in {-1, 0, +1} of the current latent weight, shape (out, in)."""
        with torch.no_grad():
            scale = absmean_scale(self.weight, self.weight_scale, self.quant_eps)
            return ternary_codes(self.weight, scale).to(torch.int8)

    def weight_scale_value(self) -> torch.Tensor:
        """The absmean scale g of the current latent weight: shape () per tensor, (out, 1) per channel."""
        with torch.no_grad():
            return absmean_scale(self.weight, self.weight_scale, self.quant_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation_quant == "per_token_int8":
            quantized_x = StraightThroughEstimator.apply(x, self._quantize_activation)
            x = _blend(x, quantized_x, self.quant_strength)
        return nn.functional.linear(x, self.quantized_weight(), self.bias)

    def _quantize_weight(self, weight: torch.Tensor) -> torch.Tensor:
        return quantize_weight(weight, self.weight_scale, self.quant_eps)

    def _quantize_activation(self, x: torch.Tensor) -> torch.Tensor:
        return quantize_activation(x, self.quant_eps)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, weight_scale={self.weight_scale}, activation_quant={self.activation_quant}"
        )


def _blend(full_precision: torch.Tensor, quantized: torch.Tensor, strength: float) -> torch.Tensor:
    # strength == 1 must return the quantized tensor bit for bit, not 0 * W + 1 * Q.
    if strength >= 1.0:
        return quantized
    return (1.0 - strength) * full_precision + strength * quantized


def replace_linear_with_ternary(
    module: nn.Module,
    module_names: list[str] | tuple[str, ...] | None = None,
    *,
    weight_scale: str = "per_tensor",
    activation_quant: str = "none",
    quant_eps: float = 1e-5,
) -> nn.Module:
    """Replace, in place, the `nn.Linear` children of `module` by `TernaryLinear`s holding the same weights.

    Works on any module, e.g. a transformers `LlamaForCausalLM`, to convert a full-precision model for ternary
    fine-tuning (combine with `quant_strength` warm-up).

    Args:
        module: the model to convert.
        module_names: only linears whose own attribute name is in this list are replaced (e.g. `["q_proj",
            "down_proj"]`); `None` replaces every `nn.Linear` except ones named `lm_head` or `score`.
        weight_scale, activation_quant, quant_eps: passed to each `TernaryLinear`.

    Returns:
        `module` itself, for chaining.

    Example:
        >>> from transformers import LlamaConfig, LlamaForCausalLM
        >>> llama = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        ...                                      num_attention_heads=4, vocab_size=99))
        >>> replace_linear_with_ternary(llama).model.layers[0].mlp.up_proj.__class__.__name__
        'TernaryLinear'
    """
    if module_names is not None and (
        isinstance(module_names, str) or any(not isinstance(name, str) for name in module_names)
    ):
        raise TypeError(f"`module_names` must be a list of attribute names, got {module_names!r}.")
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if not _should_replace(name, child, module_names):
                continue
            setattr(parent, name, _ternary_copy_of(child, weight_scale, activation_quant, quant_eps))
    return module


def _should_replace(name: str, child: nn.Module, module_names) -> bool:
    if type(child) is not nn.Linear:  # leaves TernaryLinear and other subclasses alone
        return False
    if module_names is None:
        return name not in ("lm_head", "score")
    return name in module_names


def _ternary_copy_of(linear: nn.Linear, weight_scale: str, activation_quant: str, quant_eps: float) -> TernaryLinear:
    ternary = TernaryLinear(
        linear.in_features,
        linear.out_features,
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
        weight_scale=weight_scale,
        activation_quant=activation_quant,
        quant_eps=quant_eps,
    )
    with torch.no_grad():
        ternary.weight.copy_(linear.weight)
        if linear.bias is not None:
            ternary.bias.copy_(linear.bias)
    return ternary


def set_quant_strength(module: nn.Module, strength: float) -> None:
    """Set lambda (0 = full precision, 1 = fully ternary) on every `TernaryLinear` inside `module`.

    Args:
        module: a model holding `TernaryLinear`s.
        strength: lambda in [0, 1].
    """
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0 \
            or math.isnan(strength):
        raise ValueError(f"`strength` must be a number in [0, 1], got {strength!r}.")
    for submodule in module.modules():
        if isinstance(submodule, TernaryLinear):
            submodule.quant_strength = float(strength)


def warmup_strength(step: int, warmup_steps: int) -> float:
    """Linear warm-up of lambda: `min(1, step / warmup_steps)`, and 1.0 when `warmup_steps` is 0."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, max(0, step) / warmup_steps)


__all__ = [
    "StraightThroughEstimator",
    "TernaryLinear",
    "absmean_scale",
    "quantize_activation",
    "quantize_weight",
    "replace_linear_with_ternary",
    "set_quant_strength",
    "ternary_codes",
    "warmup_strength",
]
