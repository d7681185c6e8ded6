import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modeling_ternary.latent import exact_latent_weight
from modeling_ternary.quantization import absmean_scale, ternary_codes


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 40),
    zero_fraction=st.floats(0.0, 0.95),
    magnitude=st.sampled_from([1e-4, 0.02, 3.0]),
    granularity=st.sampled_from(["per_tensor", "per_channel"]),
    dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]),
    seed=st.integers(0, 2**31 - 1),
)
def test_latent_weight_quantizes_back_to_the_same_codes_and_scale(rows, cols, zero_fraction, magnitude,
                                                                  granularity, dtype, seed):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=generator) * magnitude
    weight[torch.rand(rows, cols, generator=generator) < zero_fraction] = 0.0
    weight = weight.to(dtype)
    scale = absmean_scale(weight, granularity)
    codes = ternary_codes(weight, scale)
    latent = exact_latent_weight(codes, scale, granularity, dtype=dtype)
    assert latent.dtype == dtype and latent.shape == weight.shape
    new_scale = absmean_scale(latent, granularity)
    assert torch.equal(ternary_codes(latent, new_scale) * new_scale, codes * scale)
    assert ((latent != 0) | (codes == 0)).all()  # every non-zero code has a non-zero latent entry
    # at most one zero-code entry per scale row is used to complete the sum, and it stays below g / 2
    fillers = (latent != 0) & (codes == 0)
    rows_of = fillers if granularity == "per_channel" else fillers.reshape(1, -1)
    assert (rows_of.sum(dim=-1) <= 1).all()
    assert (latent.abs()[fillers] < 0.5 * scale.expand_as(latent)[fillers]).all()


@pytest.mark.parametrize("shape", [(768, 768), (2048, 768), (768, 2048)])
@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
def test_latent_weight_is_exact_at_the_132m_shapes(shape, granularity):
    weight = torch.randn(shape) * 0.02
    scale = absmean_scale(weight, granularity)
    codes = ternary_codes(weight, scale)
    latent = exact_latent_weight(codes, scale, granularity)
    assert torch.equal(absmean_scale(latent, granularity), scale)
    assert torch.equal(ternary_codes(latent, scale), codes)
    # every non-zero latent entry sits near g * n / k, so the first optimizer steps move it like a trained weight
    assert latent.abs().max() < 4 * scale.max()


def test_latent_weight_refuses_integer_dtype():
    with pytest.raises(TypeError, match=r"`dtype` must be one of .* got torch.int8"):
        exact_latent_weight(torch.ones(2, 2), torch.tensor(0.5), dtype=torch.int8)
