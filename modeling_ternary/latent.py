"""Latent weights that reproduce a packed ternary matrix exactly, so that a packed checkpoint can be fine-tuned.

A packed checkpoint stores codes W_t in {-1, 0, +1} and the scale g. A `TernaryLinear` recomputes its scale from its
latent weight on every forward (`g' = mean|W|`), so the latent weight must be chosen with `mean|W| == g` exactly,
bit for bit, and with `clamp(round(W / g), -1, 1) == W_t`. The naive choice `W = W_t * g` fails: its mean is
`g * f`, with f the fraction of non-zero codes, and its codes would all round to +-1 only by luck.

Choice here, per scale row (the whole matrix per tensor, each output row per channel) of n entries with k non-zero
codes: the non-zero entries get one of two adjacent floating-point magnitudes, c and c + 1 ulp, with c the largest
value of the weight dtype not above g * n / k, and the first j of them (in row order) get the larger one, j chosen so
that the magnitudes sum to g * n up to half an ulp of c. `absmean_scale` accumulates in float64, where that sum is
exact, so `mean|W|` rounds back to g (the sum is within half an ulp of c of g * n, i.e. within ulp(g) / k of the
mean). Every non-zero entry has |W| / g ~= n / k >= 1, so the codes come back too, and zero codes stay 0. With a
single non-zero code (k = 1) half an ulp of c can still be a whole ulp of g: such a row completes its sum with a
value below g / 2 in its first zero-code entry, which still quantizes to 0. The result is checked with
`absmean_scale` itself.
"""

from __future__ import annotations

import torch

from .quantization import absmean_scale

FLOAT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


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
        Entries with code 0 are 0, except at most one a row in rows with a single non-zero code.

    Raises:
        ArithmeticError: if some row cannot be reproduced exactly (not seen in practice).

    Example:
        >>> codes = torch.tensor([[1, 0, -1, 0]])
        >>> w = exact_latent_weight(codes, torch.tensor(0.25))
        >>> absmean_scale(w).item(), w.tolist()
        (0.25, [[0.5, 0.0, -0.5, 0.0]])
    """
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"`dtype` must be one of {list(FLOAT_DTYPES)}, got {dtype}.")
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
    # Rows with one non-zero code (or a rounding tie) can miss by an ulp: for them, all magnitudes c (sum k * c, not
    # above g * n) and the rest of the sum in their first zero-code entry, below g / 2 so that it still quantizes to 0.
    retry = (scale_rows(weight) != target) & matters & ~nonzero.all(dim=-1, keepdim=True)  # (R, 1)
    rest = ((total - k * low.to(torch.float64)).to(dtype)).clamp(min=0).minimum(target * 0.49)
    first_zero = (~nonzero).to(torch.int8).argmax(dim=-1, keepdim=True)
    low_rows = (rows * low).scatter(-1, first_zero, rest)
    weight = torch.where(retry, low_rows, weight.reshape(rows.shape)).reshape(signs.shape)
    missed = (scale_rows(weight) != target) & matters
    if missed.any():
        raise ArithmeticError(
            f"Could not find latent weights reproducing the saved scale exactly for {int(missed.sum())} row(s)."
        )
    return weight
