"""Tests of the packed on-disk format (`modeling_ternary.packing`): round trips, the exact bytes of the spec, byte
compatibility of "2bit" with transformers' BitNet packer/unpacker, and the errors of safe loading."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.integrations.bitnet import pack_weights as hf_pack_weights
from transformers.integrations.bitnet import unpack_weights as hf_unpack_weights_compiled

from modeling_ternary.packing import (
    PACKING_FORMAT_VERSION,
    TernaryLayout,
    bits_per_weight,
    check_scale,
    pack_ternary,
    packed_shape,
    unpack_ternary,
)

# transformers decorates unpack_weights with @torch.compile; the eager function it compiles is fast to call on
# many shapes. One test below also calls the compiled object once.
hf_unpack_weights = hf_unpack_weights_compiled.__wrapped__

LAYOUTS = ["2bit", "1.6bit"]
VALUE_DTYPES = [torch.int8, torch.int16, torch.int32, torch.int64, torch.float16, torch.bfloat16, torch.float32]
DIMS = st.one_of(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 16, 17, 20, 21]), st.integers(1, 70))


@st.composite
def ternary_tensors(draw, min_dim=1):
    """A 1-D or 2-D tensor of -1/0/1 of a random signed int or float dtype; sometimes constant (all -1, 0 or 1)."""
    dims = st.integers(min_dim, 70) if min_dim == 0 else DIMS
    shape = tuple(draw(st.lists(dims, min_size=1, max_size=2)))
    seed = draw(st.integers(0, 2**31 - 1))
    fill = draw(st.sampled_from(["random", "random", -1, 0, 1]))
    dtype = draw(st.sampled_from(VALUE_DTYPES))
    if fill == "random":
        values = torch.randint(-1, 2, shape, generator=torch.Generator().manual_seed(seed))
    else:
        values = torch.full(shape, fill)
    return values.to(dtype)


def reference_pack(values, layout):
    """The formula of spec section 3 written out element by element, independently of the package."""
    k, radix = {"2bit": (4, 4), "1.6bit": (5, 3)}[layout]
    v2 = values.reshape(values.shape[0], -1).tolist()  # (out, in) as nested lists
    out, cols = len(v2), (len(v2[0]) if v2 else 1)
    rows = (out + k - 1) // k
    packed = [[0] * cols for _ in range(rows)]
    for r in range(out):
        for j in range(cols):
            packed[r % rows][j] += (int(v2[r][j]) + 1) * radix ** (r // rows)
    return torch.tensor(packed, dtype=torch.uint8).reshape((rows, *values.shape[1:]))


# ---------------------------------------------------------------- round trip, shapes, bytes


@settings(max_examples=150, deadline=None)
@given(values=ternary_tensors(min_dim=0), layout=st.sampled_from(LAYOUTS))
def test_pack_then_unpack_is_identity_and_input_unchanged(values, layout):
    original = values.clone()
    packed = pack_ternary(values, layout)
    assert torch.equal(values, original)
    unpacked = unpack_ternary(packed, tuple(values.shape), layout, dtype=values.dtype)
    assert unpacked.dtype == values.dtype and unpacked.shape == values.shape
    assert torch.equal(unpacked, values)
    packed_copy = packed.clone()
    unpack_ternary(packed, tuple(values.shape), layout)
    assert torch.equal(packed, packed_copy)


@settings(max_examples=100, deadline=None)
@given(values=ternary_tensors(), layout=st.sampled_from(LAYOUTS))
def test_packed_bytes_follow_the_spec_formula(values, layout):
    packed = pack_ternary(values, layout)
    k = {"2bit": 4, "1.6bit": 5}[layout]
    expected_shape = ((values.shape[0] + k - 1) // k, *values.shape[1:])
    assert packed.dtype == torch.uint8
    assert tuple(packed.shape) == expected_shape == packed_shape(tuple(values.shape), layout)
    assert torch.equal(packed, reference_pack(values, layout))
    if layout == "1.6bit":
        assert int(packed.max()) <= 242
    else:
        assert not bool(((packed & 0b11) == 3).any() | ((packed >> 2 & 0b11) == 3).any())


@pytest.mark.parametrize("dtype", [torch.int8, torch.int32, torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_unpack_returns_requested_dtype(layout, dtype):
    values = torch.tensor([[1, 0, -1], [0, -1, 1], [-1, -1, 0]])
    unpacked = unpack_ternary(pack_ternary(values, layout), (3, 3), layout, dtype=dtype)
    assert unpacked.dtype == dtype
    assert torch.equal(unpacked, values.to(dtype))


def test_worked_example_2bit():
    values = torch.tensor([[-1, 0], [1, 1], [0, -1], [1, 0], [-1, 1]])  # (out=5, in=2): R = 2, codes v + 1
    # packed row 0 holds rows 0, 2, 4 in bits 0-1, 2-3, 4-5; row 1 holds rows 1, 3; every other bit pair is padding 00
    expected = torch.tensor(
        [
            [0b00_00_01_00, 0b00_10_00_01],  # col 0: codes 0, 1, 0;  col 1: codes 1, 0, 2
            [0b00_00_10_10, 0b00_00_01_10],  # col 0: codes 2, 2;     col 1: codes 2, 1
        ],
        dtype=torch.uint8,
    )
    assert torch.equal(pack_ternary(values, "2bit"), expected)
    assert torch.equal(unpack_ternary(expected, (5, 2), "2bit"), values.to(torch.int8))


def test_worked_example_1_6bit():
    values = torch.tensor([1, -1, 0, 1, 1, -1, 0])  # (out=7,): R = 2, codes 2 0 1 2 2 0 1
    # byte 0 = codes of rows 0, 2, 4, 6 (+ padding 0) = 2 + 3*1 + 9*2 + 27*1 = 50; byte 1 = rows 1, 3, 5 = 0 + 3*2 + 9*0
    expected = torch.tensor([50, 6], dtype=torch.uint8)
    assert torch.equal(pack_ternary(values, "1.6bit"), expected)
    assert torch.equal(unpack_ternary(expected, (7,), "1.6bit"), values.to(torch.int8))
    all_plus = torch.ones(5, 1)  # every digit 2: 2 * (1 + 3 + 9 + 27 + 81) = 242, the largest valid byte
    assert pack_ternary(all_plus, "1.6bit").tolist() == [[242]]


def test_zero_size_dimensions():
    for layout in LAYOUTS:
        for shape in [(0,), (0, 3), (4, 0), (7, 0)]:
            packed = pack_ternary(torch.zeros(shape), layout)
            assert tuple(packed.shape) == packed_shape(shape, layout)
            assert unpack_ternary(packed, shape, layout).shape == shape


def test_packed_shape_and_bits_per_weight():
    assert packed_shape((13, 7), "2bit") == (4, 7)
    assert packed_shape((13, 7), "1.6bit") == (3, 7)
    assert packed_shape((8,), TernaryLayout.TWO_BIT) == (2,)
    assert bits_per_weight((768, 768), "2bit") == 2.0
    assert bits_per_weight((770, 768), "1.6bit") == 1.6
    assert bits_per_weight((5, 3), "2bit") == pytest.approx(8 * 2 / 5)
    assert PACKING_FORMAT_VERSION == 1
    assert TernaryLayout("1.6bit") is TernaryLayout.ONE_POINT_SIX and TernaryLayout.TWO_BIT == "2bit"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_unpacker_ignores_padding_slots(layout):
    values = torch.tensor([[1, -1], [0, 1], [-1, 0], [1, 1], [0, 0], [-1, 1]])  # out = 6: padding in both layouts
    packed = pack_ternary(values, layout)
    # fill every padding slot with code 1 or 2 instead of 0: the decoded values must not change
    k, radix = {"2bit": (4, 4), "1.6bit": (5, 3)}[layout]
    rows = packed.shape[0]
    dirty = packed.clone()
    for slot in range(values.shape[0], k * rows):
        dirty[slot % rows] += (1 + slot % 2) * radix ** (slot // rows)
    assert not torch.equal(dirty, packed)
    assert torch.equal(unpack_ternary(dirty, (6, 2), layout), values.to(torch.int8))


# ---------------------------------------------------------------- compatibility with transformers' BitNet


@settings(max_examples=100, deadline=None)
@given(values=ternary_tensors())
def test_transformers_unpack_weights_reads_our_2bit(values):
    packed = pack_ternary(values, "2bit")
    theirs = hf_unpack_weights(packed.clone(), dtype=torch.float32)
    assert theirs.shape[0] == 4 * packed.shape[0]
    assert torch.equal(theirs[: values.shape[0]], values.to(torch.float32))


@settings(max_examples=100, deadline=None)
@given(values=ternary_tensors())
def test_we_read_transformers_pack_weights_and_bytes_are_identical(values):
    theirs = hf_pack_weights(values.clone())  # their packer adds 1 to its argument in place
    assert torch.equal(pack_ternary(values, "2bit"), theirs)
    assert torch.equal(unpack_ternary(theirs, tuple(values.shape), "2bit", dtype=values.dtype), values)


def test_compiled_transformers_unpack_weights_reads_our_2bit():
    values = torch.randint(-1, 2, (13, 6), generator=torch.Generator().manual_seed(1))  # out % 4 != 0: padding
    theirs = hf_unpack_weights_compiled(pack_ternary(values, "2bit"), dtype=torch.bfloat16)
    assert torch.equal(theirs[:13], values.to(torch.bfloat16))


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [2.0, -2.0, 0.5, float("nan"), float("inf")])
def test_pack_rejects_non_ternary_values(bad):
    values = torch.tensor([[1.0, 0.0], [-1.0, bad]])
    with pytest.raises(ValueError, match=r"values must hold only -1, 0, 1; got .* at index \(1, 1\)"):
        pack_ternary(values)
    with pytest.raises(ValueError, match="values must hold only"):
        pack_ternary(values.to(torch.int64) if bad in (2.0, -2.0) else values, "1.6bit")


def test_pack_rejects_bad_dtype_rank_and_type():
    with pytest.raises(ValueError, match="dtype torch.uint8"):
        pack_ternary(torch.ones(4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="dtype torch.bool"):
        pack_ternary(torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"1-D \(out,\) or 2-D .* shape \(2, 2, 2\)"):
        pack_ternary(torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match=r"shape \(\)"):
        pack_ternary(torch.tensor(1))
    with pytest.raises(TypeError, match="values must be a torch.Tensor"):
        pack_ternary([[1, 0], [0, 1]])


def test_unpack_rejects_code_3_in_2bit():
    packed = pack_ternary(torch.zeros(8, 3), "2bit")  # every real code is 1
    assert unpack_ternary(packed, (8, 3), "2bit", name="ok").abs().sum() == 0
    corrupt = packed.clone()
    corrupt[1, 2] = 0b01_11_01_01  # code 3 in bits 4-5
    with pytest.raises(ValueError, match=r"layers\.0\.q_proj\.weight: invalid byte 117 .* index \(1, 2\).*code 3"):
        unpack_ternary(corrupt, (8, 3), "2bit", name="layers.0.q_proj.weight")


def test_unpack_rejects_code_3_in_a_padding_slot():
    packed = pack_ternary(torch.zeros(5), "2bit")  # R = 2: byte 1 holds rows 1 and 3 in bits 0-3, bits 4-7 are padding
    assert packed.tolist() == [0b00_01_01_01, 0b00_00_01_01]
    corrupt = packed.clone()
    corrupt[1] |= 0b11_00_00_00
    with pytest.raises(ValueError, match="w: invalid byte 197"):
        unpack_ternary(corrupt, (5,), "2bit", name="w")


def test_unpack_rejects_byte_above_242_in_1_6bit():
    packed = torch.full((2, 4), 242, dtype=torch.uint8)
    assert torch.equal(unpack_ternary(packed, (10, 4), "1.6bit"), torch.ones(10, 4, dtype=torch.int8))
    for byte in (243, 255):
        corrupt = packed.clone()
        corrupt[0, 3] = byte
        with pytest.raises(ValueError, match=rf"mlp\.up: invalid byte {byte} .* index \(0, 3\).*0\.\.242"):
            unpack_ternary(corrupt, (10, 4), "1.6bit", name="mlp.up")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_unpack_rejects_wrong_packed_shape(layout):
    packed = pack_ternary(torch.zeros(12, 5), layout)  # (3, 5) in both layouts
    for shape in [(12, 6), (16, 5), (4, 5), (12,), (60,)]:
        message = rf"lm\.w: packed tensor has shape \(3, 5\), but .* in layout '{layout}' packs to"
        with pytest.raises(ValueError, match=message):
            unpack_ternary(packed, shape, layout, name="lm.w")
    with pytest.raises(ValueError, match="shape must have 1 or 2 dimensions"):
        unpack_ternary(packed, (12, 5, 1), layout)
    with pytest.raises(ValueError, match="non-negative ints"):
        unpack_ternary(packed, (12, -5), layout)


def test_unpack_rejects_wrong_dtypes():
    packed = pack_ternary(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"k: packed tensor has dtype torch.int8; .* needs torch.uint8"):
        unpack_ternary(packed.to(torch.int8), (4, 4), name="k")
    with pytest.raises(ValueError, match="packed tensor has dtype torch.float32"):
        unpack_ternary(packed.float(), (4, 4))
    with pytest.raises(ValueError, match="dtype torch.uint8 cannot hold -1"):
        unpack_ternary(packed, (4, 4), dtype=torch.uint8)
    with pytest.raises(TypeError, match="dtype must be a torch.dtype"):
        unpack_ternary(packed, (4, 4), dtype="int8")
    with pytest.raises(TypeError, match="packed must be a torch.Tensor"):
        unpack_ternary(packed.tolist(), (4, 4))


def test_unknown_layout_is_rejected_everywhere():
    packed = pack_ternary(torch.zeros(4, 4))
    for call in (
        lambda: pack_ternary(torch.zeros(4, 4), "3bit"),
        lambda: unpack_ternary(packed, (4, 4), "1.58bit"),
        lambda: packed_shape((4, 4), "2-bit"),
        lambda: bits_per_weight((4, 4), "tq1_0"),
    ):
        with pytest.raises(ValueError, match=r"unknown layout .*; allowed layouts: '2bit', '1.6bit'"):
            call()
    with pytest.raises(TypeError, match="layout must be"):
        pack_ternary(torch.zeros(4, 4), 2)


def test_check_scale():
    check_scale(torch.tensor(0.02), out_features=8)
    check_scale(torch.full((8, 1), 0.02), out_features=8)
    with pytest.raises(ValueError, match=r"s: scale has dtype torch.bfloat16"):
        check_scale(torch.tensor(0.02, dtype=torch.bfloat16), 8, name="s")
    for shape in [(1,), (8,), (1, 8), (4, 1)]:
        with pytest.raises(ValueError, match=r"scale has shape .* allowed: \(\) per tensor or \(8, 1\)"):
            check_scale(torch.full(shape, 0.02), 8)
    for bad in (0.0, -0.02, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite and > 0"):
            check_scale(torch.tensor(bad), 8)
