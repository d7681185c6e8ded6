import pytest

from modeling_ternary import TERNARY_MODULE_NAMES, TernaryConfig, TernaryForCausalLM
from tests.conftest import tiny_config


def test_defaults_are_the_132m_model():
    config = TernaryConfig()
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (12, 768, 12)
    assert (config.intermediate_size, config.vocab_size, config.max_position_embeddings) == (2048, 30522, 512)
    assert config.rms_norm_eps == 1e-6
    assert config.rope_parameters["rope_theta"] == 10000.0
    assert config.tie_word_embeddings is False and config.lm_head_bias is False
    assert config.ternary_modules == list(TERNARY_MODULE_NAMES)
    assert config.scale_granularity == "per_tensor" and config.activation_quant == "none"
    assert config.head_dim == 64 and config.num_key_value_heads == 12


def test_default_parameter_count_is_132m(capsys):
    model = TernaryForCausalLM(TernaryConfig())
    groups = {"embedding": 0, "ternary projections": 0, "norms": 0, "lm_head": 0}
    for name, parameter in model.named_parameters():
        if "embed_tokens" in name:
            groups["embedding"] += parameter.numel()
        elif name.startswith("lm_head"):
            groups["lm_head"] += parameter.numel()
        elif "norm" in name:
            groups["norms"] += parameter.numel()
        else:
            assert any(f".{m}." in name for m in TERNARY_MODULE_NAMES), name
            groups["ternary projections"] += parameter.numel()
    total = sum(p.numel() for p in model.parameters())
    with capsys.disabled():
        print("\nTernaryLM-132M parameters:")
        for group, count in groups.items():
            print(f"  {group:20s} {count:>12,d}")
        print(f"  {'total':20s} {total:>12,d}")
    assert sum(groups.values()) == total
    assert abs(total - 132e6) / 132e6 < 0.01
    assert groups["ternary projections"] == 12 * (4 * 768 * 768 + 3 * 768 * 2048)
    assert groups["embedding"] == groups["lm_head"] == 30522 * 768


def test_lm_head_bias_flag_restores_the_papers_head():
    model = TernaryForCausalLM(tiny_config(lm_head_bias=True))
    assert model.lm_head.bias is not None and model.lm_head.bias.shape == (99,)


def test_config_round_trips_through_json(tmp_path):
    config = tiny_config(ternary_modules=["q_proj", "down_proj"], activation_quant="per_token_int8",
                         scale_granularity="per_channel", quant_warmup_steps=7, hidden_dropout=0.1)
    config.save_pretrained(tmp_path)
    loaded = TernaryConfig.from_pretrained(tmp_path)
    for field in ("ternary_modules", "activation_quant", "scale_granularity", "quant_warmup_steps", "hidden_dropout",
                  "hidden_size", "rope_parameters"):
        assert getattr(loaded, field) == getattr(config, field), field


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        (dict(hidden_size=0), ValueError, r"`hidden_size` must be a positive integer, got 0"),
        (dict(hidden_size=30), ValueError, r"`hidden_size` \(30\) must be divisible by `num_attention_heads` \(4\)"),
        (dict(num_hidden_layers=2.5), ValueError, r"`num_hidden_layers` must be a positive integer, got 2.5"),
        (dict(vocab_size=-3), ValueError, r"`vocab_size` must be a positive integer, got -3"),
        (dict(num_key_value_heads=3), ValueError, r"`num_attention_heads` \(4\) must be a multiple of "),
        (dict(ternary_modules=["q_proj", "lm_head"]), ValueError, r"`ternary_modules` contains \['lm_head'\]"),
        (dict(ternary_modules="q_proj"), TypeError, r"`ternary_modules` must be a list of module names"),
        (dict(scale_granularity="per_row"), ValueError, r"`scale_granularity` must be one of .*'per_row'"),
        (dict(activation_quant="int4"), ValueError, r"`activation_quant` must be one of .*'int4'"),
        (dict(quant_eps=0.0), ValueError, r"`quant_eps` must be a positive number, got 0.0"),
        (dict(quant_warmup_steps=-1), ValueError, r"`quant_warmup_steps` must be an integer >= 0, got -1"),
        (dict(attention_dropout=1.0), ValueError, r"`attention_dropout` must be a float in \[0, 1\), got 1.0"),
        (dict(hidden_dropout=-0.1), ValueError, r"`hidden_dropout` must be a float in \[0, 1\)"),
        (dict(initializer_range=0), ValueError, r"`initializer_range` must be a positive number, got 0"),
        (dict(rms_norm_eps=-1e-6), ValueError, r"`rms_norm_eps` must be a positive number"),
        (dict(pad_token_id=99), ValueError, r"`pad_token_id` must be None or an integer in \[0, vocab_size=99\)"),
        (dict(eos_token_id=[2, -1]), ValueError, r"`eos_token_id` must be None or an integer in \[0, vocab_size"),
        (dict(max_position_embeddings=0), ValueError, r"`max_position_embeddings` must be a positive integer"),
        (dict(hidden_act=3), TypeError, r"`hidden_act` must be a string"),
    ],
)
def test_invalid_values_are_refused(overrides, error, message):
    with pytest.raises(error, match=message):
        tiny_config(**overrides)


def test_full_precision_twin_has_no_ternary_layers():
    from modeling_ternary import TernaryLinear

    model = TernaryForCausalLM(tiny_config(ternary_modules=[]))
    assert not model.config.is_ternary
    assert not any(isinstance(m, TernaryLinear) for m in model.modules())
