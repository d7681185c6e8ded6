"""Shared tiny configs: hidden 32-64, 2 layers, so that the whole suite runs in minutes on 2 CPU cores."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

from modeling_ternary import TernaryConfig

TINY_VOCAB = 99


def tiny_config(**overrides) -> TernaryConfig:
    """A 2-layer, hidden-32 TernaryConfig with vocab 99 (pad 0, bos 1, eos 2)."""
    kwargs = dict(
        vocab_size=TINY_VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    kwargs.update(overrides)
    return TernaryConfig(**kwargs)


@pytest.fixture
def config() -> TernaryConfig:
    return tiny_config()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny_tokenizer():
    """A word-level fast tokenizer of 99 ids built offline with `tokenizers` ([PAD]=0, [CLS]=1, [SEP]=2, [UNK]=3)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]
    words = [f"w{i}" for i in range(TINY_VOCAB - len(specials))]
    vocab = {token: index for index, token in enumerate(specials + words)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", bos_token="[CLS]", eos_token="[SEP]", unk_token="[UNK]"
    )
