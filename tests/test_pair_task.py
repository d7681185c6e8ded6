import pytest

from modeling_ternary.pair_task import SYNONYMS, default_pair_task, generate_pairs


def test_pairs_are_deterministic_and_mostly_paraphrases_like_mrpc():
    first, again = generate_pairs(300, seed=3), generate_pairs(300, seed=3)
    assert first["sentence2"] == again["sentence2"] and first["label"] == again["label"]
    assert generate_pairs(300, seed=4)["sentence1"] != first["sentence1"]
    share = sum(first["label"]) / len(first)
    assert 0.55 < share < 0.8  # majority class = paraphrase, as in MRPC


def test_paraphrases_only_swap_synonyms_and_negatives_change_a_word():
    pairs = generate_pairs(200, seed=0)
    for a, b, label in zip(pairs["sentence1"], pairs["sentence2"], pairs["label"]):
        assert a != b
        words_a, words_b = a.split(" "), b.split(" ")
        assert len(words_a) <= len(words_b) + 2
        if label == 1:
            assert len(words_a) == len(words_b)
            for x, y in zip(words_a, words_b):
                if x != y:
                    assert SYNONYMS[x.strip('.,!?"').lower()] == y.strip('.,!?"').lower()


def test_splits_and_bad_input():
    task = default_pair_task(train_pairs=50, validation_pairs=20)
    assert (len(task["train"]), len(task["validation"])) == (50, 20)
    with pytest.raises(ValueError, match=r"`num_pairs` must be a positive integer, got 0"):
        generate_pairs(0)
