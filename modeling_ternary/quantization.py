"""Ternary quantization: the absmean weight quantizer, the 8-bit activation quantizer and the straight-through
estimator that trains through both (`TernaryLinear` in ternary_linear.py applies them).

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

from typing import Callable

import torch

from .kernels import abs_row_sums, activation_fake_quantize, kernels_available, ternary_fake_quantize



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
    # (see latent.py). On the CPU a compiled kernel sums each row in a fixed order without temporaries.
    if granularity not in ("per_tensor", "per_channel"):
        raise ValueError(f"`granularity` must be one of ('per_tensor', 'per_channel'), got {granularity!r}.")
    if _use_cpu_kernels(weight):
        row_sums = abs_row_sums(weight)  # (out,) float64
        total = row_sums.unsqueeze(-1) if granularity == "per_channel" else row_sums.sum()
    elif granularity == "per_channel":
        total = weight.abs().sum(dim=-1, keepdim=True, dtype=torch.float64)
    else:
        total = weight.abs().sum(dtype=torch.float64)
    count = weight.shape[-1] if granularity == "per_channel" else weight.numel()
    return (total / max(count, 1)).to(weight.dtype).clamp(min=eps)


def _use_cpu_kernels(weight: torch.Tensor) -> bool:
    return weight.device.type == "cpu" and weight.dtype == torch.float32 and weight.dim() == 2 \
        and kernels_available()


def ternary_codes(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Ternary codes `clamp(round(W / g), -1, 1)`, same shape and dtype as `weight`, values in {-1, 0, +1}."""
    return (weight / scale).round().clamp(-1, 1)


def quantize_weight(weight: torch.Tensor, granularity: str = "per_tensor", eps: float = 1e-5,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    """Absmean ternary fake-quantization `W_t * g` (no gradient logic; see `StraightThroughEstimator`).

    Args:
        weight: matrix of shape (out, in).
        granularity: `"per_tensor"` or `"per_channel"`.
        eps: lower bound of the scale.
        out: optional contiguous float32 tensor of `weight`'s shape to write the result into (CPU kernel path only;
            elsewhere it is ignored and a new tensor is returned).

    Returns:
        A tensor shaped like `weight` whose values are exactly in {-g, 0, +g}.

    Example:
        >>> quantize_weight(torch.tensor([[0.5, -0.1], [-2.0, 0.0]]))
        tensor([[ 0.6500, -0.0000],
                [-0.6500,  0.0000]])
    """
    scale = absmean_scale(weight, granularity, eps)
    # One pass (compiled kernel on the CPU) or in place on the one temporary `weight / scale`: a training step
    # quantizes every matrix, and each fresh temporary of a matrix's size costs page faults on the CPU. Same
    # values as `ternary_codes(weight, scale) * scale`.
    if _use_cpu_kernels(weight):
        return ternary_fake_quantize(weight.detach(), scale, out)
    return (weight / scale).round_().clamp_(-1, 1).mul_(scale)


def quantize_activation(x: torch.Tensor, eps: float = 1e-5, out: torch.Tensor | None = None) -> torch.Tensor:
    """8-bit absmax fake-quantization per token (over the last dimension), shape and dtype kept.

    Args:
        x: activations of shape (..., features).
        eps: lower bound of the per-token max|x|.
        out: optional contiguous float32 tensor of `x`'s shape to write the result into (CPU kernel path only;
            elsewhere it is ignored and a new tensor is returned).

    Returns:
        `x` rounded to 255 levels per token; `|result - x| <= max|x| / 254` elementwise.
    """
    if x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() >= 1 and kernels_available():
        return activation_fake_quantize(x.detach(), eps, out)  # one pass; each op below would be a pass of its own
    scale = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=eps)  # (..., 1)
    return (x * scale).round_().clamp_(-128, 127).div_(scale)


__all__ = [
    "StraightThroughEstimator",
    "absmean_scale",
    "quantize_activation",
    "quantize_weight",
    "ternary_codes",
]
