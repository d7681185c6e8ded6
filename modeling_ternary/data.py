"""Language-modelling data: tokenize a text dataset and cut it into fixed-length blocks (128 tokens in the paper).

Texts are tokenized without special tokens, joined with the tokenizer's separator token between documents (so the
model sees where a story ends), and the stream is cut into blocks of `block_size` tokens; the incomplete tail is
dropped. Labels equal `input_ids` (the model shifts them). Token ids are checked against the model's vocabulary
here, once, instead of being clamped silently as in the paper's notebook.
"""

from __future__ import annotations

from datasets import Dataset, DatasetDict


def chunk_dataset(
    dataset: Dataset | DatasetDict,
    tokenizer,
    block_size: int = 128,
    text_column: str = "text",
    max_position_embeddings: int | None = None,
    vocab_size: int | None = None,
    num_proc: int | None = None,
) -> Dataset | DatasetDict:
    """Tokenize `dataset[text_column]` and regroup it into blocks of `block_size` tokens.

    Args:
        dataset: a `Dataset` or `DatasetDict` with a string column `text_column`.
        tokenizer: a transformers tokenizer; its `sep_token_id` (or `eos_token_id`) separates documents.
        block_size: tokens per block.
        text_column: the column holding the texts.
        max_position_embeddings: the model's context; `block_size` must not exceed it.
        vocab_size: the model's vocabulary size; every token id must be below it.
        num_proc: processes for `datasets.map`.

    Returns:
        The same kind of object with columns `input_ids` and `labels` (lists of `block_size` ints).

    Example:
        >>> blocks = chunk_dataset(corpus, tokenizer, block_size=128, max_position_embeddings=512)  # doctest: +SKIP
    """
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 2:
        raise ValueError(f"`block_size` must be an integer >= 2, got {block_size!r}.")
    if max_position_embeddings is not None and block_size > max_position_embeddings:
        raise ValueError(
            f"`block_size` ({block_size}) is longer than the model's context "
            f"(max_position_embeddings={max_position_embeddings})."
        )
    splits = dataset if isinstance(dataset, DatasetDict) else DatasetDict({"data": dataset})
    separator = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    for name, split in splits.items():
        _check_split(name, split, text_column)

    def tokenize_and_group(batch):
        stream: list[int] = []
        for text in batch[text_column]:
            stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
            if separator is not None:
                stream.append(separator)
        usable = len(stream) // block_size * block_size
        blocks = [stream[start:start + block_size] for start in range(0, usable, block_size)]
        return {"input_ids": blocks, "labels": [list(block) for block in blocks]}

    chunked = DatasetDict({
        name: split.map(tokenize_and_group, batched=True, batch_size=1000, num_proc=num_proc,
                        remove_columns=split.column_names, desc=f"tokenizing {name}")
        for name, split in splits.items()
    })
    for name, split in chunked.items():
        if len(split) == 0:
            raise ValueError(f"Split {name!r} yields no block of {block_size} tokens: the corpus is too small.")
        if vocab_size is not None:
            _check_vocabulary(name, split, vocab_size)
    return chunked if isinstance(dataset, DatasetDict) else chunked["data"]


def _check_split(name: str, split: Dataset, text_column: str) -> None:
    if text_column not in split.column_names:
        raise ValueError(
            f"Split {name!r} has no text column {text_column!r}; its columns are {split.column_names}."
        )
    if len(split) == 0:
        raise ValueError(f"Split {name!r} is empty: the corpus holds no text.")


def _check_vocabulary(name: str, split: Dataset, vocab_size: int) -> None:
    largest = max(max(block) for block in split["input_ids"])
    if largest >= vocab_size:
        raise ValueError(
            f"Split {name!r} holds token id {largest}, outside the model's vocabulary [0, {vocab_size}): the "
            "tokenizer does not match the model config."
        )


__all__ = ["chunk_dataset"]
