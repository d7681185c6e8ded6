import pytest
import torch
from torch import nn
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from modeling_ternary import (
    TernaryForCausalLM,
    TernaryForSequenceClassification,
    TernaryLinear,
    TernaryModel,
)
from tests.conftest import tiny_config


def _llama_twin(model: TernaryForCausalLM) -> LlamaForCausalLM:
    """A transformers Llama holding `model`'s dequantized weights W_t * mean|W|, computed inline."""
    c = model.config
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, max_position_embeddings=c.max_position_embeddings,
        rms_norm_eps=c.rms_norm_eps, rope_theta=c.rope_parameters["rope_theta"], tie_word_embeddings=False,
        pad_token_id=c.pad_token_id, bos_token_id=c.bos_token_id, eos_token_id=c.eos_token_id,
    ))
    state = {}
    ternary_names = {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, TernaryLinear)}
    for key, value in model.state_dict().items():
        if key in ternary_names:
            g = value.abs().mean()
            value = torch.clamp(torch.round(value / g), -1, 1) * g
        state[key] = value
    missing, unexpected = llama.load_state_dict(state, strict=True)
    assert not missing and not unexpected
    return llama.eval()


@pytest.mark.parametrize("overrides", [{}, {"num_key_value_heads": 2}, {"ternary_modules": ["q_proj", "up_proj"]}])
def test_logits_match_transformers_llama_on_dequantized_weights(overrides):
    model = TernaryForCausalLM(tiny_config(**overrides)).eval()
    llama = _llama_twin(model)
    input_ids = torch.randint(3, 99, (3, 20))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, :4] = 0  # one left-padded row
    with torch.no_grad():
        ours = model(input_ids, attention_mask=attention_mask).logits
        theirs = llama(input_ids, attention_mask=attention_mask).logits
    torch.testing.assert_close(ours, theirs)
    assert set(model.state_dict()) == set(llama.state_dict())


def test_state_dict_uses_llama_names():
    keys = set(TernaryForCausalLM(tiny_config()).state_dict())
    assert "model.layers.1.self_attn.q_proj.weight" in keys
    assert "model.layers.0.mlp.down_proj.weight" in keys
    assert {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"} <= keys


def test_loss_is_shifted_cross_entropy():
    model = TernaryForCausalLM(tiny_config()).eval()
    input_ids = torch.randint(3, 99, (2, 12))
    labels = input_ids.clone()
    labels[0, -3:] = -100
    out = model(input_ids, labels=labels)
    expected = nn.functional.cross_entropy(
        out.logits[:, :-1].reshape(-1, 99), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    torch.testing.assert_close(out.loss, expected)


def test_greedy_generate_with_cache_equals_without():
    model = TernaryForCausalLM(tiny_config()).eval()
    prompt = torch.randint(3, 99, (1, 6))
    with_cache = model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=True)
    without = model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=False)
    assert with_cache.shape == (1, 18)
    assert torch.equal(with_cache, without)


def test_left_padded_batch_generation_matches_cache_free_and_single_rows():
    model = TernaryForCausalLM(tiny_config()).eval()
    long_prompt = torch.randint(3, 99, (7,))
    short_prompt = torch.randint(3, 99, (4,))
    input_ids = torch.zeros(2, 7, dtype=torch.long)  # pad id 0 on the left
    attention_mask = torch.zeros(2, 7, dtype=torch.long)
    input_ids[0], attention_mask[0] = long_prompt, 1
    input_ids[1, 3:], attention_mask[1, 3:] = short_prompt, 1
    kwargs = dict(attention_mask=attention_mask, max_new_tokens=10, do_sample=False, pad_token_id=0)
    batched_cache = model.generate(input_ids, use_cache=True, **kwargs)
    batched_no_cache = model.generate(input_ids, use_cache=False, **kwargs)
    assert torch.equal(batched_cache, batched_no_cache)
    single = model.generate(short_prompt[None], max_new_tokens=10, do_sample=False)
    assert torch.equal(batched_cache[1, 3:], single[0])


def test_cache_prefill_then_decode_matches_full_forward():
    model = TernaryForCausalLM(tiny_config()).eval()
    input_ids = torch.randint(3, 99, (2, 10))
    with torch.no_grad():
        full = model(input_ids).logits
        cache = DynamicCache(config=model.config)
        first = model(input_ids[:, :7], cache=cache, use_cache=True)
        rest = model(input_ids[:, 7:], cache=first.cache, use_cache=True)
    torch.testing.assert_close(torch.cat([first.logits, rest.logits], 1), full)
    assert rest.cache.get_seq_length() == 10


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = TernaryForCausalLM(tiny_config()).train()
    input_ids = torch.randint(3, 99, (2, 16))
    model(input_ids, labels=input_ids).loss.backward()
    reference = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.activation_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.model.layers)
    model(input_ids, labels=input_ids).loss.backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, reference[name], msg=name)


def test_outputs_hidden_states_attentions_and_tuples():
    model = TernaryForCausalLM(tiny_config(attn_implementation="eager")).eval()
    input_ids = torch.randint(3, 99, (2, 5))
    out = model(input_ids, output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 3 and out.hidden_states[0].shape == (2, 5, 32)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 4, 5, 5)
    as_tuple = model(input_ids, return_dict=False, use_cache=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], out.logits)
    base = TernaryModel(tiny_config())
    assert base(input_ids).last_hidden_state.shape == (2, 5, 32)


def test_sdpa_and_eager_attention_agree():
    torch.manual_seed(0)
    sdpa = TernaryForCausalLM(tiny_config(attn_implementation="sdpa")).eval()
    eager = TernaryForCausalLM(tiny_config(attn_implementation="eager")).eval()
    eager.load_state_dict(sdpa.state_dict())
    assert sdpa.config._attn_implementation == "sdpa"
    input_ids = torch.randint(3, 99, (2, 9))
    mask = torch.ones_like(input_ids)
    mask[0, :3] = 0
    torch.testing.assert_close(sdpa(input_ids, attention_mask=mask).logits[1],
                               eager(input_ids, attention_mask=mask).logits[1])
    torch.testing.assert_close(sdpa(input_ids, attention_mask=mask).logits[0, 3:],
                               eager(input_ids, attention_mask=mask).logits[0, 3:])


@pytest.mark.parametrize("bad_id", [99, -1, 10_000])
def test_token_ids_outside_vocabulary_are_refused(bad_id):
    model = TernaryForCausalLM(tiny_config())
    input_ids = torch.tensor([[5, bad_id, 6]])
    with pytest.raises(ValueError, match=rf"`input_ids` contains token id {bad_id}, outside the vocabulary \[0, 99\)"):
        model(input_ids)


def test_float_input_ids_are_refused():
    with pytest.raises(TypeError, match=r"`input_ids` must be an integer tensor, got dtype torch.float32"):
        TernaryForCausalLM(tiny_config())(torch.tensor([[1.0, 2.0]]))


def test_sequences_past_max_position_embeddings_are_refused():
    model = TernaryForCausalLM(tiny_config(max_position_embeddings=16)).eval()
    model(torch.randint(3, 99, (1, 16)))  # exactly the context: fine
    with pytest.raises(ValueError, match=r"Sequence reaches position 16, past `max_position_embeddings` \(16\)"):
        model(torch.randint(3, 99, (1, 17)))
    with pytest.raises(ValueError, match=r"past `max_position_embeddings` \(16\)"):
        model.generate(torch.randint(3, 99, (1, 10)), max_new_tokens=10, do_sample=False)


def test_input_ids_and_inputs_embeds_together_or_neither_are_refused():
    model = TernaryForCausalLM(tiny_config())
    input_ids = torch.tensor([[5, 6]])
    embeds = model.model.embed_tokens(input_ids)
    with pytest.raises(ValueError, match=r"Give exactly one of `input_ids` or `inputs_embeds`"):
        model(input_ids=input_ids, inputs_embeds=embeds)
    with pytest.raises(ValueError, match=r"Give exactly one of `input_ids` or `inputs_embeds`"):
        model()
    torch.testing.assert_close(model(inputs_embeds=embeds).logits, model(input_ids=input_ids).logits)


# --- sequence classification ---------------------------------------------------------------------------------


def _pooled_reference(classifier, input_ids, attention_mask, last_index):
    hidden = classifier.model(input_ids, attention_mask=attention_mask).last_hidden_state
    return classifier.score(hidden[torch.arange(len(last_index)), torch.tensor(last_index)])


def test_classifier_pools_the_last_non_padding_token_right_and_left_padding():
    classifier = TernaryForSequenceClassification(tiny_config(num_labels=3)).eval()
    right = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 10, 11, 12]])
    right_mask = (right != 0).long()
    logits = classifier(right, attention_mask=right_mask).logits
    assert logits.shape == (2, 3)
    torch.testing.assert_close(logits, _pooled_reference(classifier, right, right_mask, [2, 4]))
    # without attention_mask, padding is found from pad_token_id
    torch.testing.assert_close(classifier(right).logits, logits)
    left = torch.tensor([[0, 0, 5, 6, 7]])
    left_mask = (left != 0).long()
    torch.testing.assert_close(classifier(left, attention_mask=left_mask).logits,
                               _pooled_reference(classifier, left, left_mask, [4]))


def test_classifier_single_label_loss():
    classifier = TernaryForSequenceClassification(tiny_config(num_labels=3))
    input_ids = torch.randint(3, 99, (4, 6))
    labels = torch.tensor([0, 2, 1, 2])
    out = classifier(input_ids, labels=labels)
    assert classifier.config.problem_type == "single_label_classification"
    torch.testing.assert_close(out.loss, nn.functional.cross_entropy(out.logits, labels))


def test_classifier_regression_loss():
    classifier = TernaryForSequenceClassification(tiny_config(num_labels=1))
    input_ids = torch.randint(3, 99, (4, 6))
    labels = torch.tensor([0.5, -1.0, 2.0, 0.0])
    out = classifier(input_ids, labels=labels)
    assert classifier.config.problem_type == "regression"
    torch.testing.assert_close(out.loss, nn.functional.mse_loss(out.logits.squeeze(-1), labels))


def test_classifier_multi_label_loss():
    classifier = TernaryForSequenceClassification(tiny_config(num_labels=3, problem_type="multi_label_classification"))
    input_ids = torch.randint(3, 99, (4, 6))
    labels = torch.tensor([[1.0, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]])
    out = classifier(input_ids, labels=labels)
    torch.testing.assert_close(out.loss, nn.functional.binary_cross_entropy_with_logits(out.logits, labels))


def test_classifier_batch_without_pad_token_is_refused():
    classifier = TernaryForSequenceClassification(tiny_config(num_labels=2, pad_token_id=None))
    classifier(torch.randint(3, 99, (1, 6)))  # one sequence: fine
    with pytest.raises(ValueError, match=r"Cannot pool a batch of 2 sequences without `config.pad_token_id`"):
        classifier(torch.randint(3, 99, (2, 6)))
