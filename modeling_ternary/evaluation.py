"""Evaluation done right: token-weighted perplexity and per-layer sparsity of the ternary matrices.

The paper's notebook averaged perplexity per batch (so a short last batch weighs as much as a full one) and kept
label smoothing on while measuring it. Here perplexity is exp of the mean negative log-likelihood over every
predicted token of the evaluation set, with plain cross-entropy (no smoothing), whatever the batching.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

import torch
from torch import nn

from .ternary_linear import TernaryLinear


@torch.no_grad()
def perplexity(model: nn.Module, batches: Iterable[dict], device: torch.device | str | None = None) -> dict:
    """Token-weighted perplexity of a causal LM.

    Args:
        model: a causal LM returning `.logits` of shape (batch, seq, vocab).
        batches: dicts with `input_ids` (batch, seq) and optionally `attention_mask` and `labels` (-100 = ignored;
            by default the labels are `input_ids` with padding ignored). Token t is predicted from tokens < t.
        device: where to run (default: the model's device).

    Returns:
        `{"perplexity": exp(nll / tokens), "nll": total negative log-likelihood, "tokens": predicted tokens}`.

    Example:
        >>> perplexity(model, [{"input_ids": torch.tensor([[5, 6, 7, 8]])}])  # doctest: +SKIP
        {'perplexity': 97.1, 'nll': 13.7, 'tokens': 3}
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_nll, total_tokens = 0.0, 0
    for batch in batches:
        input_ids = batch["input_ids"].to(device)
        attention_mask = batch.get("attention_mask")
        attention_mask = attention_mask.to(device) if attention_mask is not None else None
        labels = batch.get("labels")
        if labels is None:
            labels = input_ids if attention_mask is None else input_ids.masked_fill(attention_mask == 0, -100)
        labels = labels.to(device)
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        targets = labels[:, 1:]  # (B, T-1): token t predicted at position t-1
        nll = nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100,
            reduction="sum",
        )
        total_nll += nll.item()
        total_tokens += int((targets != -100).sum())
    if was_training:
        model.train()
    if total_tokens == 0:
        raise ValueError("`batches` holds no token to predict (every label is -100 or sequences have length 1).")
    return {"perplexity": math.exp(total_nll / total_tokens), "nll": total_nll, "tokens": total_tokens}


def unigram_perplexity(train_blocks: Iterable[list[int]], validation_blocks: Iterable[list[int]],
                       vocab_size: int) -> float:
    """Perplexity on the validation blocks (first token of each block excluded, as for the LM) of a unigram model
    fitted on the training blocks with add-one smoothing: the baseline a language model must beat.

    Example:
        >>> round(unigram_perplexity([[1, 1, 1, 2]], [[9, 1, 2]], vocab_size=4), 3)
        2.828
    """
    counts = Counter(token for block in train_blocks for token in block)
    total = sum(counts.values()) + vocab_size
    tokens = [token for block in validation_blocks for token in block[1:]]
    if not tokens:
        raise ValueError("`validation_blocks` holds no token to predict.")
    nll = -sum(math.log((counts[token] + 1) / total) for token in tokens)
    return math.exp(nll / len(tokens))


def layer_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of zero ternary codes of every `TernaryLinear` in `model`, by module name.

    Args:
        model: a model holding `TernaryLinear` layers (latent weights).

    Returns:
        `{"model.layers.0.self_attn.q_proj": 0.31, ...}` in module order.
    """
    sparsity = {}
    for name, module in model.named_modules():
        if isinstance(module, TernaryLinear) and not module.is_packed:
            sparsity[name] = float((module.ternary_codes() == 0).float().mean())
    if not sparsity:
        raise ValueError("`model` has no ternary layers with latent weights to measure.")
    return sparsity


def sparsity_table(sparsity: dict[str, float]) -> dict[int, dict[str, float]]:
    """Regroup `layer_sparsity` output as `{layer index: {projection name: zero fraction}}`.

    Example:
        >>> sparsity_table({"model.layers.0.mlp.up_proj": 0.4})
        {0: {'up_proj': 0.4}}
    """
    table: dict[int, dict[str, float]] = {}
    for name, value in sparsity.items():
        parts = name.split(".")
        if "layers" not in parts:
            continue
        layer = int(parts[parts.index("layers") + 1])
        table.setdefault(layer, {})[parts[-1]] = value
    return table


__all__ = ["layer_sparsity", "perplexity", "sparsity_table", "unigram_perplexity"]
