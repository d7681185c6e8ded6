"""An embedded sentence-pair task in the style of MRPC, generated from the story corpus, for offline fine-tuning demos.

Each example is (sentence1, sentence2, label). label 1 (paraphrase): sentence2 is sentence1 with words replaced by
synonyms ("happy" -> "glad", "big" -> "large", ...). label 0: sentence2 is sentence1 with one name, animal, object,
place, colour or food changed (the meaning changes), and synonyms replaced too, so that surface overlap alone does not
give the answer. As in MRPC, about two thirds of the pairs are paraphrases, so always answering "paraphrase" scores a
high F1: report accuracy and the majority baseline beside it (`glue_metric.py`). Deterministic for a given seed.
"""

from __future__ import annotations

import random
import re

from datasets import Dataset, DatasetDict

from .corpus import ANIMALS, BOYS, COLORS, FOODS, GIRLS, OBJECTS, PLACES, generate_stories

SYNONYMS = {
    "happy": "glad", "glad": "happy", "big": "large", "large": "big", "little": "small", "small": "little",
    "sad": "unhappy", "unhappy": "sad", "scared": "afraid",
    "afraid": "scared", "very": "really", "really": "very", "started": "began", "began": "started",
    "looked": "peeked", "said": "replied", "shouted": "yelled", "nice": "kind", "kind": "nice",
    "ran": "hurried", "smiled": "grinned", "laughed": "giggled", "friend": "pal", "happily": "gladly",
}
SWAPPABLE = (GIRLS, BOYS, ANIMALS, OBJECTS, PLACES, COLORS, FOODS)
PARAPHRASE_FRACTION = 0.67


def _sentences(stories: list[str]) -> list[str]:
    pieces = []
    for story in stories:
        pieces += [s.strip() for s in re.split(r"(?<=[.!?])\s+", story) if 6 <= len(s.split()) <= 25]
    return pieces


def _with_synonyms(sentence: str, rng: random.Random) -> str:
    words = sentence.split(" ")
    positions = [i for i, w in enumerate(words) if w.strip('.,!?"').lower() in SYNONYMS]
    for i in rng.sample(positions, k=max(1, len(positions) // 2 + 1)) if positions else []:
        bare = words[i].strip('.,!?"')
        replacement = SYNONYMS[bare.lower()]
        replacement = replacement.capitalize() if bare[:1].isupper() else replacement
        words[i] = words[i].replace(bare, replacement, 1)
    return " ".join(words)


def _with_changed_fact(sentence: str, rng: random.Random) -> str | None:
    candidates = [(group, word) for group in SWAPPABLE for word in group
                  if re.search(rf"\b{re.escape(word)}\b", sentence)]
    if not candidates:
        return None
    group, word = rng.choice(candidates)
    other = rng.choice([w for w in group if w != word])
    return re.sub(rf"\b{re.escape(word)}\b", other, sentence, count=1)


def generate_pairs(num_pairs: int, seed: int = 0) -> Dataset:
    """`num_pairs` examples with columns sentence1, sentence2, label (1 = paraphrase).

    Args:
        num_pairs: how many pairs (at least 1).
        seed: random seed; the same seed gives the same pairs.

    Returns:
        A `datasets.Dataset`.

    Example:
        >>> generate_pairs(2, seed=0)["label"]  # doctest: +SKIP
        [1, 0]
    """
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 1:
        raise ValueError(f"`num_pairs` must be a positive integer, got {num_pairs!r}.")
    rng = random.Random(seed)
    sentences = _sentences(generate_stories(max(20, num_pairs // 4), seed=seed + 1000))
    rows = {"sentence1": [], "sentence2": [], "label": []}
    for _ in range(num_pairs):
        paraphrase = rng.random() < PARAPHRASE_FRACTION
        second = None
        while second is None or second == sentence:  # draw sentences until one can be rewritten this way
            sentence = rng.choice(sentences)
            second = _with_synonyms(sentence, rng) if paraphrase else _with_changed_fact(sentence, rng)
        if not paraphrase:
            second = _with_synonyms(second, rng)
        rows["sentence1"].append(sentence)
        rows["sentence2"].append(second)
        rows["label"].append(int(paraphrase))
    return Dataset.from_dict(rows)


def default_pair_task(seed: int = 0, train_pairs: int = 2000, validation_pairs: int = 400) -> DatasetDict:
    """Train and validation splits of the embedded pair task (drawn with different seeds)."""
    return DatasetDict({"train": generate_pairs(train_pairs, seed=2 * seed),
                        "validation": generate_pairs(validation_pairs, seed=2 * seed + 1)})


__all__ = ["default_pair_task", "generate_pairs"]
