"""Packed on-disk format of ternary weights, format version 1. This docstring is the specification.

The words MUST, MUST NOT, SHOULD and MAY are meant as in RFC 2119. "Writer" is code that produces packed tensors,
"reader" is code that loads them; `pack_ternary` and `unpack_ternary` below are the reference writer and reader.

1. Scope and version
   A ternary tensor T holds only the values -1, 0, +1 and has shape (out,) or (out, in); for a linear layer it is
   the weight in `nn.Linear` orientation, so dim 0 is out_features. It is stored as one packed uint8 tensor P (this
   module) plus one float32 scale S (section 7). The format version is `PACKING_FORMAT_VERSION` = 1. A writer MUST
   record the version and the layout name ("2bit" or "1.6bit") with the checkpoint (where is up to the serialization
   code, not this module); a reader MUST refuse a version or layout name it does not know.

2. Codes
   Each value v is stored as the code c = v + 1, so -1 -> 0, 0 -> 1, +1 -> 2. Code 3 does not exist: a writer MUST
   NOT produce it, and a reader MUST reject a tensor that contains it (section 3) instead of decoding it, because
   only corruption or a wrong layout produces it.

3. Layouts
   Let K be the number of codes per byte and B the radix: layout "2bit": K = 4, B = 4; layout "1.6bit": K = 5,
   B = 3. Packing runs along dim 0 (the output dimension, the same axis for both layouts). With R = ceil(out / K),
   P MUST have dtype uint8 and shape (R, in), or (R,) for a 1-D T. Dim 0 of T is split into K contiguous blocks
   of R rows; block k is digit k of every byte, least significant digit first:
       P[p, j] = sum over k = 0 .. K-1 of  code(T[k * R + p, j]) * B**k        (0 <= p < R)
   so row r of T lives in packed row r % R as digit r // R, and a reader decodes digit k of byte b as
       "2bit":   c_k = (b >> 2k) & 3       (block 0 in bits 0-1, block 1 in bits 2-3, ..., block 3 in bits 6-7)
       "1.6bit": c_k = (b // 3**k) % 3     (b = c_0 + 3 c_1 + 9 c_2 + 27 c_3 + 81 c_4)
   Valid bytes: "2bit": every bit pair in {00, 01, 10} (max 0b10101010 = 170); a byte with a bit pair 11 (code 3)
   MUST be rejected. "1.6bit": 0 .. 242 = 3**5 - 1; a byte of 243 .. 255 MUST be rejected.
   Bits per weight: 8 / K when out % K == 0, so 2.0 and 1.6; a little more otherwise (padding).

4. Padding (out not a multiple of K)
   The K * R - out slots whose row index k * R + p is >= out are padding; they are the last slots of the last
   block(s). A writer MUST write code 0 into every padding slot, so a byte is the sum over its real slots only.
   A reader MUST ignore the contents of padding slots: it decodes K * R rows and keeps the first out. Code 0 decodes
   as -1, so a reader that forgets to drop padding gets extra rows of -1 (not of 0); it MUST slice. The validity
   check of section 3 applies to whole bytes, padding slots included.

5. Compatibility of "2bit" with transformers' BitNet integration
   "2bit" is byte-identical to `transformers.integrations.bitnet.pack_weights` for every out (its padding is
   zero bits = code 0 too), and `unpack_weights(P, dtype)[:out]` returns T. Caveats: transformers' packer adds 1 to
   its argument in place (ours does not modify its input), its unpacker returns K * R rows (the caller MUST slice),
   and its `BitLinear` buffer has shape (out // 4, in) while its loader unpacks only when P.shape[0] * 4 == out: a
   checkpoint with out % 4 != 0 loads through `unpack_ternary` but not through transformers' BitNet classes.

6. "1.6bit" compared with llama.cpp's TQ1_0
   Same idea (5 trits per byte since 3**5 = 243 <= 256, codes v + 1), different details. TQ1_0 puts the first
   value in the MOST significant digit (place values 81, 27, 9, 3, 1), groups values strided by 32 inside blocks
   of 256 elements, stores ceil(byte * 256 / 243) so that digits come out with a multiply and a shift, and keeps
   an fp16 absmax scale per 256-element block. Version 1 deliberately differs: least significant digit first and
   blocks of R rows, so that both layouts are one formula (section 3) with B = 4 or B = 3 and block k <-> place
   value B**k; and the plain byte value, so that validity is the simple check byte <= 242. A GGUF converter MUST
   reverse the digit order, regroup, rescale the bytes and recompute the scales; TQ1_0 bytes are NOT valid here.

7. Scale
   S MUST be float32 with shape () (per tensor) or (out, 1) (per output channel), finite and > 0. It is the
   absmean of the latent full-precision matrix W: S = max(mean(|W|), eps) over all of W, or over each row, with
   the sum of |W| accumulated in float64 and the mean rounded once to W's dtype (then widened to float32).
   The dequantized weight is  W_q = T * S  (MULTIPLY by S; (out, 1) broadcasts along in). The opposite convention
   exists in the wild and is the known source of broken loads: storing the quantizer's multiplier 1 / mean|W| and
   DIVIDING by it, as transformers' packed `BitLinear` does (`y / (input_scale * weight_scale)`, scale shape (1,)),
   while its `AutoBitLinear` multiplies. Mixing the two gives weights off by a factor mean|W|**2 (about 1e3 to 1e4
   for typical weights) and garbage output rather than an error; a converter MUST take the reciprocal.
"""

from __future__ import annotations

import enum
import functools
import math
from typing import Sequence

import torch

from .kernels import count_invalid_2bit_bytes, kernels_available

PACKING_FORMAT_VERSION = 1
SCALE_DTYPE = torch.float32

_SIGNED_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64)


class TernaryLayout(str, enum.Enum):
    """Name of a packed layout, as recorded in checkpoints (see the module docstring, section 3)."""

    TWO_BIT = "2bit"
    ONE_POINT_SIX = "1.6bit"


# Codes per byte (K) and radix (B) of each layout: byte = sum_k code_k * B**k.
_CODES_PER_BYTE = {TernaryLayout.TWO_BIT: 4, TernaryLayout.ONE_POINT_SIX: 5}
_RADIX = {TernaryLayout.TWO_BIT: 4, TernaryLayout.ONE_POINT_SIX: 3}


def as_layout(layout: TernaryLayout | str) -> TernaryLayout:
    """Parse a layout name.

    Args:
        layout: a `TernaryLayout` or one of the strings "2bit", "1.6bit".

    Returns:
        The `TernaryLayout` member.

    Example:
        >>> as_layout("1.6bit") is TernaryLayout.ONE_POINT_SIX
        True
    """
    if not isinstance(layout, str):
        raise TypeError(f"layout must be a TernaryLayout or a str, got {type(layout).__name__} {layout!r}")
    try:
        return TernaryLayout(layout)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in TernaryLayout)
        raise ValueError(f"unknown layout {layout!r}; allowed layouts: {allowed}") from None


def _check_shape(shape: Sequence[int], arg: str = "shape") -> tuple[int, ...]:
    """Return `shape` as a tuple after checking it is 1 or 2 non-negative ints."""
    if not isinstance(shape, (tuple, list, torch.Size)):
        raise TypeError(f"{arg} must be a tuple of ints, got {type(shape).__name__} {shape!r}")
    shape = tuple(shape)
    if len(shape) not in (1, 2):
        raise ValueError(f"{arg} must have 1 or 2 dimensions (out,) or (out, in), got {shape!r}")
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise ValueError(f"{arg} must hold non-negative ints, got {shape!r}")
    return shape


def packed_shape(shape: Sequence[int], layout: TernaryLayout | str = TernaryLayout.TWO_BIT) -> tuple[int, ...]:
    """Shape of the packed uint8 tensor that stores a ternary tensor of `shape`.

    Args:
        shape: (out,) or (out, in) of the unpacked ternary tensor.
        layout: "2bit" or "1.6bit".

    Returns:
        (ceil(out / K),) or (ceil(out / K), in), with K = 4 ("2bit") or 5 ("1.6bit").

    Example:
        >>> packed_shape((13, 7), "2bit"), packed_shape((13, 7), "1.6bit")
        ((4, 7), (3, 7))
    """
    shape = _check_shape(shape)
    rows = -(-shape[0] // _CODES_PER_BYTE[as_layout(layout)])  # ceil(out / K)
    return (rows, *shape[1:])


def bits_per_weight(shape: Sequence[int], layout: TernaryLayout | str = TernaryLayout.TWO_BIT) -> float:
    """Storage cost of the packed codes (padding included, scale excluded) in bits per ternary weight.

    Args:
        shape: (out,) or (out, in) of the unpacked ternary tensor, with at least one element.
        layout: "2bit" or "1.6bit".

    Returns:
        8 * numel(packed) / numel(shape): 2.0 / 1.6 when out is a multiple of 4 / 5, more otherwise.

    Example:
        >>> bits_per_weight((10, 3), "1.6bit"), bits_per_weight((10, 3), "2bit")
        (1.6, 2.4)
    """
    numel = math.prod(_check_shape(shape))
    if numel == 0:
        raise ValueError(f"bits_per_weight needs a shape with at least one element, got {tuple(shape)!r}")
    return 8 * math.prod(packed_shape(shape, layout)) / numel


def _values_to_codes(values: torch.Tensor) -> torch.Tensor:
    """Check that `values` holds only -1/0/1 and return a new uint8 tensor of codes value + 1 (same shape)."""
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"values must be a torch.Tensor, got {type(values).__name__}")
    if values.dim() not in (1, 2):
        raise ValueError(f"values must be 1-D (out,) or 2-D (out, in), got shape {tuple(values.shape)}")
    if not (values.dtype.is_floating_point or values.dtype in _SIGNED_INT_DTYPES):
        raise ValueError(
            f"values has dtype {values.dtype}, which cannot hold -1/0/1 as numbers; allowed: a signed integer or "
            "floating dtype (a uint8 tensor is usually already-packed bytes or codes)"
        )
    if values.dtype == torch.int8:
        # Fast path for the usual input (codes from `ternary_codes`): v + 1 wraps around for -128 and 127, so as
        # uint8 every value other than -1, 0, 1 lands outside 0..2: one add and one comparison over the tensor.
        codes = (values + 1).view(torch.uint8)  # new tensor
        if not bool((codes > 2).any()):
            return codes
    ok = (values == -1) | (values == 0) | (values == 1)  # (out, in) bool; NaN fails every test
    if not bool(ok.all()):
        index = tuple((~ok).nonzero()[0].tolist())
        raise ValueError(
            f"values must hold only -1, 0, 1; got {values[index].item()!r} at index {index} "
            f"({int((~ok).sum())} bad element(s))"
        )
    return (values.to(torch.int8) + 1).to(torch.uint8)  # new tensor, never a view of `values`


def pack_ternary(values: torch.Tensor, layout: TernaryLayout | str = TernaryLayout.TWO_BIT) -> torch.Tensor:
    """Pack a ternary tensor into the on-disk uint8 format (module docstring, sections 3-4). `values` is not modified.

    Args:
        values: (out,) or (out, in) tensor of a signed integer or floating dtype holding only -1, 0, 1.
        layout: "2bit" (4 values per byte, transformers-compatible) or "1.6bit" (5 values per byte).

    Returns:
        uint8 tensor of shape `packed_shape(values.shape, layout)` on the device of `values`.

    Example:
        >>> pack_ternary(torch.tensor([-1, 0, 1, 1, 0]), "2bit")  # bytes 0 + 4*2 + 16*1, 1 + 4*2
        tensor([24,  9], dtype=torch.uint8)
    """
    layout = as_layout(layout)
    codes = _values_to_codes(values)  # (out,) or (out, in) uint8 in {0, 1, 2}
    k, radix = _CODES_PER_BYTE[layout], _RADIX[layout]
    out, cols = codes.shape[0], (codes.shape[1] if codes.dim() == 2 else 1)
    codes_2d = codes.reshape(out, cols)  # (out, in); in = 1 for a 1-D tensor
    rows = -(-out // k)  # R = ceil(out / K)
    padded = torch.zeros((k * rows, cols), dtype=torch.uint8, device=codes.device)  # (K * R, in), padding = code 0
    padded[:out] = codes_2d
    blocks = padded.view(k, rows, cols)  # (K, R, in): block i = digit i
    packed = torch.zeros((rows, cols), dtype=torch.uint8, device=codes.device)  # (R, in)
    for digit in range(k):
        packed += blocks[digit] * radix**digit  # at most 170 ("2bit") or 242 ("1.6bit"): no uint8 overflow
    return packed.reshape(packed_shape(tuple(values.shape), layout))


@functools.lru_cache(maxsize=None)
def _trit_table(device: torch.device) -> torch.Tensor:
    """(5, 256) uint8 table: entry [k, b] is base-3 digit k of byte b (garbage for b > 242, which is rejected)."""
    byte = torch.arange(256, dtype=torch.int64)  # (256,)
    place = 3 ** torch.arange(5, dtype=torch.int64)  # (5,) = 1, 3, 9, 27, 81
    return ((byte.unsqueeze(0) // place.unsqueeze(1)) % 3).to(torch.uint8).to(device)  # (5, 256)


def check_packed(
    packed: torch.Tensor, shape: Sequence[int], layout: TernaryLayout | str, name: str = "packed"
) -> None:
    """Raise if `packed` is not a uint8 tensor of the packed shape of `shape` holding only valid bytes.

    Args:
        packed: the packed tensor to check.
        shape: the shape of the ternary tensor it packs.
        layout: `"2bit"` or `"1.6bit"`.
        name: the tensor's name, for error messages.

    Raises:
        TypeError: if `packed` is not a tensor.
        ValueError: for a wrong dtype or shape, or an invalid byte (code 3 in "2bit", a byte > 242 in "1.6bit").
    """
    layout = as_layout(layout)
    shape = _check_shape(shape)
    if not isinstance(packed, torch.Tensor):
        raise TypeError(f"{name}: packed must be a torch.Tensor, got {type(packed).__name__}")
    if packed.dtype != torch.uint8:
        raise ValueError(
            f"{name}: packed tensor has dtype {packed.dtype}; the {layout.value!r} layout needs torch.uint8"
        )
    expected = packed_shape(shape, layout)
    if tuple(packed.shape) != expected:
        raise ValueError(
            f"{name}: packed tensor has shape {tuple(packed.shape)}, but a ternary tensor of shape {shape} in layout "
            f"{layout.value!r} packs to {expected}"
        )
    if layout is TernaryLayout.TWO_BIT:
        if packed.device.type == "cpu" and kernels_available() and count_invalid_2bit_bytes(packed) == 0:
            return  # the common case in one pass (loading checks every byte); below, only to describe an error
        bad = (packed & (packed >> 1) & 0x55) != 0  # bit pair 11 (code 3) anywhere in the byte
        allowed = "bit pairs 00, 01, 10 (codes 0-2); code 3 is unused"
    else:
        bad = packed > 242  # 3**5 - 1
        allowed = "bytes 0..242 (5 base-3 digits)"
    if bool(bad.any()):
        index = tuple(bad.nonzero()[0].tolist())
        byte = int(packed[index])
        raise ValueError(
            f"{name}: invalid byte {byte} (0b{byte:08b}) at packed index {index} ({int(bad.sum())} invalid byte(s)); "
            f"layout {layout.value!r} allows only {allowed}. The checkpoint is corrupt or uses another layout"
        )


def _check_out_dtype(dtype: torch.dtype) -> None:
    """Raise unless `dtype` can represent -1, 0 and 1."""
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {type(dtype).__name__} {dtype!r}")
    if not (dtype.is_floating_point or dtype in _SIGNED_INT_DTYPES):
        raise ValueError(f"dtype {dtype} cannot hold -1; allowed: torch.int8/16/32/64 or a floating dtype")


def unpack_ternary(
    packed: torch.Tensor,
    shape: Sequence[int],
    layout: TernaryLayout | str = TernaryLayout.TWO_BIT,
    dtype: torch.dtype = torch.int8,
    name: str = "tensor",
) -> torch.Tensor:
    """Check and unpack a packed ternary tensor (module docstring, sections 3-4). `packed` is not modified.

    Meant for loading untrusted checkpoints: every check raises a ValueError naming `name` instead of decoding
    garbage. Padding slots are ignored.

    Args:
        packed: uint8 tensor of shape `packed_shape(shape, layout)`.
        shape: (out,) or (out, in) of the ternary tensor to recover.
        layout: "2bit" or "1.6bit".
        dtype: dtype of the result: torch.int8/16/32/64 or a floating dtype.
        name: name of the tensor (e.g. its checkpoint key), used in error messages.

    Returns:
        A new tensor of `shape` and `dtype` holding only -1, 0, 1, on the device of `packed`.

    Example:
        >>> unpack_ternary(torch.tensor([24, 9], dtype=torch.uint8), (5,), "2bit")
        tensor([-1,  0,  1,  1,  0], dtype=torch.int8)
    """
    layout = as_layout(layout)
    shape = _check_shape(shape)
    _check_out_dtype(dtype)
    check_packed(packed, shape, layout, name)
    k = _CODES_PER_BYTE[layout]
    cols = shape[1] if len(shape) == 2 else 1
    bytes_2d = packed.reshape(packed.shape[0], cols)  # (R, in); in = 1 for a 1-D tensor
    if layout is TernaryLayout.TWO_BIT:
        shifts = torch.arange(0, 8, 2, dtype=torch.uint8, device=packed.device).view(k, 1, 1)  # (4, 1, 1)
        digits = (bytes_2d.unsqueeze(0) >> shifts) & 3  # (4, R, in)
    else:
        digits = _trit_table(packed.device)[:, bytes_2d.long()]  # (5, R, in)
    codes = digits.reshape(k * packed.shape[0], cols)[: shape[0]]  # (K * R, in) -> (out, in): padding dropped
    return (codes.to(dtype) - 1).reshape(shape)


def check_scale(scale: torch.Tensor, out_features: int, name: str = "scale") -> None:
    """Check a stored scale against section 7 of the spec: float32, shape () or (out_features, 1), finite, > 0.

    Args:
        scale: the stored scale tensor.
        out_features: dim 0 of the ternary weight it belongs to.
        name: name of the tensor (e.g. its checkpoint key), used in error messages.

    Returns:
        None; raises TypeError/ValueError naming `name` when the scale breaks the spec.

    Example:
        >>> check_scale(torch.tensor(0.02), out_features=8)
    """
    if not isinstance(scale, torch.Tensor):
        raise TypeError(f"{name}: scale must be a torch.Tensor, got {type(scale).__name__}")
    if scale.dtype != SCALE_DTYPE:
        raise ValueError(f"{name}: scale has dtype {scale.dtype}; the format needs {SCALE_DTYPE}")
    if tuple(scale.shape) not in ((), (out_features, 1)):
        raise ValueError(
            f"{name}: scale has shape {tuple(scale.shape)}; allowed: () per tensor or ({out_features}, 1) per channel"
        )
    if not bool((torch.isfinite(scale) & (scale > 0)).all()):
        raise ValueError(f"{name}: scale must be finite and > 0 (it is mean|W|), got min {scale.min().item()!r}")
