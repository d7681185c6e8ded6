"""Latent weights that reproduce a packed ternary matrix exactly, so that a packed checkpoint can be fine-tuned.

A packed checkpoint stores codes W_t in {-1, 0, +1} and the scale g. A `TernaryLinear` recomputes its scale from its
latent weight on every forward (`g' = mean|W|`), so the latent weight must be chosen with `mean|W| == g` exactly,
bit for bit, and with `clamp(round(W / g), -1, 1) == W_t`. The naive choice `W = W_t * g` fails: its mean is
`g * f`, with f the fraction of non-zero codes, and its codes would all round to +-1 only by luck.

Choice here, per scale row (the whole matrix per tensor, each output row per channel) of n entries with k non-zero
codes: the non-zero entries get one of two adjacent floating-point magnitudes, c and c + 1 ulp, with c the largest
value of the weight dtype not above g * n / k, and the first j of them (in row order) get the larger one, j chosen so
that the magnitudes sum to g * n up to half an ulp of c. `absmean_scale` accumulates in float64, where that sum is
exact, so `mean|W|` rounds back to g. Every non-zero entry has |W| / g ~= n / k >= 1, so the codes come back too;
zero codes stay exactly 0. The result is checked with `absmean_scale` itself; rows that still miss (only seen with a
handful of non-zero codes) are fixed by a bisection over the first entry's neighbours, kept within [0.75 c, 1.5 c].
"""

from __future__ import annotations

import torch

from .quantization import absmean_scale

_INT_VIEW = {torch.float32: torch.int32, torch.float64: torch.int64, torch.bfloat16: torch.int16,
             torch.float16: torch.int16}


def exact_latent_weight(
    codes: torch.Tensor,
    scale: torch.Tensor,
    granularity: str = "per_tensor",
    eps: float = 1e-5,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A latent weight whose absmean quantization is exactly `codes * scale`.

    Args:
        codes: ternary codes in {-1, 0, +1}, shape (out, in), any integer or float dtype.
        scale: the saved absmean scale g, shape () per tensor or (out, 1) per channel.
        granularity: `"per_tensor"` or `"per_channel"`, as the `TernaryLinear` that will hold the weight.
        eps: the layer's `quant_eps`.
        dtype: floating dtype of the latent weight.

    Returns:
        W of shape (out, in) and `dtype` with `absmean_scale(W) == scale.to(dtype)` and
        `clamp(round(W / scale), -1, 1) == codes` (rows whose codes are all 0 quantize to 0 whatever their scale).

    Raises:
        ArithmeticError: if some row cannot be reproduced exactly (not seen in practice).

    Example:
        >>> codes = torch.tensor([[1, 0, -1, 0]])
        >>> w = exact_latent_weight(codes, torch.tensor(0.25))
        >>> absmean_scale(w).item(), w.tolist()
        (0.25, [[0.5, 0.0, -0.5, 0.0]])
    """
    if dtype not in _INT_VIEW:
        raise TypeError(f"`dtype` must be one of {list(_INT_VIEW)}, got {dtype}.")
    signs = codes.to(dtype)  # (out, in)
    rows = signs if granularity == "per_channel" else signs.reshape(1, -1)  # (R, n): one scale per row
    target = scale.to(dtype).reshape(-1, 1).expand(rows.shape[0], 1)  # (R, 1)
    nonzero = rows.ne(0)
    k = nonzero.sum(dim=-1, keepdim=True).to(torch.float64)  # (R, 1)
    total = target.to(torch.float64) * rows.shape[-1]  # the sum of |W| each row needs, exact in float64
    low = (total / k.clamp(min=1)).to(dtype)
    low = torch.where(low.to(torch.float64) * k > total, torch.nextafter(low, torch.zeros_like(low)), low)
    high = torch.nextafter(low, torch.full_like(low, float("inf")))
    step = high.to(torch.float64) - low.to(torch.float64)
    raised = ((total - k * low.to(torch.float64)) / step).round().clamp(min=0)  # j, (R, 1)
    rank = nonzero.cumsum(dim=-1)  # 1-based position among the row's non-zero entries
    weight = (rows * torch.where(rank <= raised, high, low)).reshape(signs.shape)
    matters = k > 0  # rows of zero codes quantize to 0 whatever their scale (then clamped at eps)

    def scale_rows(candidate: torch.Tensor) -> torch.Tensor:
        return absmean_scale(candidate, granularity, eps).reshape(-1, 1).expand(rows.shape[0], 1)

    if torch.equal(scale_rows(weight)[matters], target[matters]):
        return weight
    first = nonzero.to(torch.int8).argmax(dim=-1, keepdim=True)  # (R, 1) index of the first non-zero code
    sign = rows.gather(-1, first)
    current = weight.reshape(rows.shape)

    def with_first_entry(magnitude: torch.Tensor) -> torch.Tensor:
        return current.scatter(-1, first, sign * magnitude).reshape(signs.shape)

    entry = _largest_accepted(low, lambda m: scale_rows(with_first_entry(m)) <= target, 0.75, 1.5)
    weight = with_first_entry(entry)
    missed = (scale_rows(weight) != target) & matters
    if missed.any():
        raise ArithmeticError(
            f"Could not find latent weights reproducing the saved scale exactly for {int(missed.sum())} row(s)."
        )
    return weight


def _largest_accepted(start: torch.Tensor, accept, low_factor: float, high_factor: float) -> torch.Tensor:
    """Per row, the largest float in [low_factor * start, high_factor * start] for which the monotone `accept`
    holds (or the lower end if it holds nowhere); `start` is positive, shape (R, 1)."""
    int_dtype = _INT_VIEW[start.dtype]
    low = (start * low_factor).view(int_dtype).to(torch.int64)  # positive floats are ordered like their bits
    high = (start * high_factor).view(int_dtype).to(torch.int64)

    def as_float(bits: torch.Tensor) -> torch.Tensor:
        return bits.to(int_dtype).view(start.dtype)

    while bool((low < high).any()):
        middle = (low + high + 1) // 2
        ok = accept(as_float(middle))
        low = torch.where(ok, middle, low)
        high = torch.where(ok, high, middle - 1)
    return as_float(low)
