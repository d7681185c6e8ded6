import pytest
from datasets import Dataset, DatasetDict

from modeling_ternary.data import chunk_dataset
from tests.conftest import tiny_tokenizer


def _corpus(texts):
    return Dataset.from_dict({"text": texts})


def test_blocks_are_the_token_stream_cut_in_order():
    tokenizer = tiny_tokenizer()
    texts = ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9"]
    blocks = chunk_dataset(_corpus(texts), tokenizer, block_size=4)
    # stream: 5 6 7 [SEP]=2 8 9 [SEP] 10 11 12 13 [SEP] -> 12 tokens, 3 blocks of 4
    assert blocks["input_ids"] == [[5, 6, 7, 2], [8, 9, 2, 10], [11, 12, 13, 2]]
    assert blocks["labels"] == blocks["input_ids"]


def test_dataset_dict_keeps_its_splits_and_drops_the_tail():
    tokenizer = tiny_tokenizer()
    corpus = DatasetDict({"train": _corpus(["w1 w2 w3 w4 w5 w6 w7"]), "validation": _corpus(["w8 w9 w10"])})
    blocks = chunk_dataset(corpus, tokenizer, block_size=3)
    assert set(blocks) == {"train", "validation"}
    assert len(blocks["train"]) == 2 and len(blocks["validation"]) == 1  # 8 tokens -> 2 blocks, 4 -> 1


def test_bad_input_is_refused():
    tokenizer = tiny_tokenizer()
    with pytest.raises(ValueError, match=r"Split 'data' is empty: the corpus holds no text"):
        chunk_dataset(_corpus([]), tokenizer)
    with pytest.raises(ValueError, match=r"has no text column 'text'; its columns are \['story'\]"):
        chunk_dataset(Dataset.from_dict({"story": ["w1"]}), tokenizer)
    with pytest.raises(ValueError, match=r"`block_size` \(1024\) is longer than the model's context"):
        chunk_dataset(_corpus(["w1"]), tokenizer, block_size=1024, max_position_embeddings=512)
    with pytest.raises(ValueError, match=r"yields no block of 128 tokens: the corpus is too small"):
        chunk_dataset(_corpus(["w1 w2"]), tokenizer, block_size=128)
    with pytest.raises(ValueError, match=r"token id 12, outside the model's vocabulary \[0, 10\)"):
        chunk_dataset(_corpus(["w1 w2 w3 w4 w5 w6 w7 w8 w9"]), tokenizer, block_size=4, vocab_size=10)
    with pytest.raises(ValueError, match=r"`block_size` must be an integer >= 2, got 1"):
        chunk_dataset(_corpus(["w1"]), tokenizer, block_size=1)
