import math

import pytest
import torch
from torch import nn

from modeling_ternary import TernaryForCausalLM
from modeling_ternary.evaluation import layer_sparsity, perplexity, sparsity_table
from tests.conftest import tiny_config


def test_perplexity_is_token_weighted_not_batch_averaged():
    model = TernaryForCausalLM(tiny_config()).eval()
    long_batch = {"input_ids": torch.randint(3, 99, (2, 20))}
    short_batch = {"input_ids": torch.randint(3, 99, (1, 3))}
    result = perplexity(model, [long_batch, short_batch])
    # inline reference: sum of per-token NLL over all 2*19 + 2 predicted tokens
    total, count = 0.0, 0
    for batch in (long_batch, short_batch):
        logits = model(batch["input_ids"]).logits
        nll = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 99), batch["input_ids"][:, 1:].reshape(-1),
                                          reduction="sum")
        total, count = total + nll.item(), count + batch["input_ids"][:, 1:].numel()
    assert result["tokens"] == count == 40
    assert result["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-6)
    per_batch = [perplexity(model, [b])["perplexity"] for b in (long_batch, short_batch)]
    assert result["perplexity"] != pytest.approx(sum(per_batch) / 2, rel=1e-3)


def test_perplexity_ignores_padding_and_restores_training_mode():
    model = TernaryForCausalLM(tiny_config()).train()
    ids = torch.randint(3, 99, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 6, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long)], dim=1)
    a = perplexity(model, [{"input_ids": ids}])
    b = perplexity(model, [{"input_ids": padded, "attention_mask": mask}])
    assert a["tokens"] == b["tokens"] == 5
    assert a["perplexity"] == pytest.approx(b["perplexity"], rel=1e-5)
    assert model.training


def test_perplexity_of_nothing_is_an_error():
    model = TernaryForCausalLM(tiny_config())
    with pytest.raises(ValueError, match=r"`batches` holds no token to predict"):
        perplexity(model, [{"input_ids": torch.tensor([[5]])}])


def test_layer_sparsity_counts_zero_codes():
    model = TernaryForCausalLM(tiny_config())
    with torch.no_grad():
        layer = model.model.layers[1].mlp.up_proj
        layer.weight.copy_(torch.tensor([[1.0, -1.0, 0.0, 0.0] * 8] * 64))  # half zeros
    sparsity = layer_sparsity(model)
    assert len(sparsity) == 14
    assert sparsity["model.layers.1.mlp.up_proj"] == 0.5
    assert all(0.0 <= value <= 1.0 for value in sparsity.values())
    table = sparsity_table(sparsity)
    assert sorted(table) == [0, 1] and table[1]["up_proj"] == 0.5 and len(table[0]) == 7
    with pytest.raises(ValueError, match=r"no ternary layers"):
        layer_sparsity(TernaryForCausalLM(tiny_config(ternary_modules=[])))


def test_unigram_baseline_needs_validation_tokens():
    from modeling_ternary.evaluation import unigram_perplexity

    with pytest.raises(ValueError, match=r"`validation_blocks` holds no token to predict"):
        unigram_perplexity([[1, 2]], [[5]], vocab_size=4)
