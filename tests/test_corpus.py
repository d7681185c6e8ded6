"""The embedded default corpus: determinism, size, disjoint splits, variety, and the deterministic WordPiece tokenizer."""

import hashlib
import json
import os
import random
import re
import subprocess
import sys

import pytest

from modeling_ternary.corpus import (
    SPECIAL_TOKENS,
    count_tokens,
    default_corpus,
    generate_stories,
    generate_story,
    train_wordpiece_tokenizer,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_python(code: str, hash_seed: str) -> str:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="true")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120, check=True)
    return result.stdout.strip().splitlines()[-1]


def _sha(texts) -> str:
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()


def _vocab_sha(tokenizer) -> str:
    return hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode()).hexdigest()


@pytest.fixture(scope="module")
def corpus():
    return default_corpus()


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return train_wordpiece_tokenizer(corpus["train"]["text"], vocab_size=4096)


def test_same_seed_gives_identical_stories_and_different_seeds_differ():
    assert generate_stories(200, seed=3) == generate_stories(200, seed=3)
    assert generate_story(random.Random(11)) == generate_story(random.Random(11))
    other = generate_stories(200, seed=4)
    assert other != generate_stories(200, seed=3)
    assert len(set(other) & set(generate_stories(200, seed=3))) < 5


def test_train_split_is_byte_identical_in_a_fresh_process(corpus):
    code = ("import hashlib; from modeling_ternary.corpus import default_corpus; "
            "print(hashlib.sha256('\\n'.join(default_corpus()['train']['text']).encode('utf-8')).hexdigest())")
    assert _run_python(code, hash_seed="12345") == _sha(corpus["train"]["text"])


def test_default_corpus_layout_and_sizes(corpus, tokenizer):
    assert set(corpus) == {"train", "validation"}
    assert corpus["train"].column_names == ["text"] and corpus["validation"].column_names == ["text"]
    assert corpus["train"].num_rows == 6500 and corpus["validation"].num_rows == 325
    train_tokens = count_tokens(corpus["train"]["text"], tokenizer)
    validation_tokens = count_tokens(corpus["validation"]["text"], tokenizer)
    assert train_tokens >= 1_000_000, train_tokens
    assert 0.03 * train_tokens < validation_tokens < 0.08 * train_tokens, (train_tokens, validation_tokens)
    words = sum(len(story.split()) for story in corpus["train"]["text"])
    assert words >= 750_000, words


def test_splits_are_disjoint_and_free_of_duplicates(corpus):
    train, validation = corpus["train"]["text"], corpus["validation"]["text"]
    assert len(set(train)) == len(train) and len(set(validation)) == len(validation)
    assert not set(train) & set(validation)
    small = default_corpus(seed=2, train_stories=30, validation_stories=10)
    assert not set(small["train"]["text"]) & set(small["validation"]["text"])


def test_exclude_skips_given_stories():
    first = generate_stories(5, seed=7)
    redrawn = generate_stories(5, seed=7, exclude=first[:2])
    assert not set(redrawn) & set(first[:2]) and redrawn[:3] == first[2:]


def test_corpus_is_varied_and_well_formed(corpus):
    train = corpus["train"]["text"]
    sentences = {s for story in train for s in re.split(r"(?<=[.!?\"])\s+", story)}
    assert len(sentences) > 20_000, len(sentences)
    words = set(re.findall(r"[a-z]+", " ".join(train).lower()))
    assert 500 < len(words) < 5000, len(words)
    text = " ".join(train).lower()
    for marker in ("picnic", "race", "adventure", "truth", "share", "brave", "lost", "new friend", "try again", '"'):
        assert marker in text, marker
    for story in train[:500]:
        assert story[0].isupper() and story[-1] in '.!"', story
        assert "{" not in story and "}" not in story and "  " not in story
        assert 40 <= len(story.split()) <= 400


def test_tokenizer_special_ids_and_size_cap(corpus, tokenizer):
    assert tokenizer.convert_ids_to_tokens(list(range(5))) == list(SPECIAL_TOKENS)
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id,
            tokenizer.mask_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2, 3, 4, 2, 3)
    assert len(tokenizer) <= 4096
    assert sorted(tokenizer.get_vocab().values()) == list(range(len(tokenizer)))
    small = train_wordpiece_tokenizer(corpus["train"]["text"][:300], vocab_size=150)
    assert len(small) == 150
    assert any(token.startswith("##") and len(token) > 3 for token in small.get_vocab())


def test_tokenizer_encodes_held_out_text_and_round_trips(corpus, tokenizer, tmp_path):
    from transformers import AutoTokenizer

    story = corpus["validation"]["text"][0]
    ids = tokenizer(story)["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    plain = tokenizer(story, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in plain
    decoded = tokenizer.decode(plain)
    assert decoded.replace(" ", "") == story.lower().replace(" ", "")
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded(story)["input_ids"] == ids
    assert reloaded.get_vocab() == tokenizer.get_vocab()
    assert (reloaded.pad_token, reloaded.bos_token, reloaded.eos_token, reloaded.mask_token) == (
        "[PAD]", "[CLS]", "[SEP]", "[MASK]")


def test_tokenizer_training_is_deterministic_across_processes():
    texts = generate_stories(400, seed=5) + ["Héllo, wörld! Some rare words: zyx, qwerty, zebra-crossing."]
    here = train_wordpiece_tokenizer(texts, vocab_size=400)
    assert _vocab_sha(train_wordpiece_tokenizer(texts, vocab_size=400)) == _vocab_sha(here)
    code = ("import hashlib, json; from modeling_ternary.corpus import generate_stories, train_wordpiece_tokenizer; "
            "texts = generate_stories(400, seed=5) + ['Héllo, wörld! Some rare words: zyx, qwerty, zebra-crossing.']; "
            "tok = train_wordpiece_tokenizer(texts, vocab_size=400); "
            "print(hashlib.sha256(json.dumps(sorted(tok.get_vocab().items())).encode()).hexdigest())")
    assert _run_python(code, hash_seed="987") == _vocab_sha(here)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_generate_stories_rejects_bad_num_stories(bad):
    with pytest.raises(ValueError, match="num_stories"):
        generate_stories(bad)


def test_default_corpus_rejects_bad_arguments():
    with pytest.raises(ValueError, match="train_stories"):
        default_corpus(train_stories=0)
    with pytest.raises(ValueError, match="validation_stories"):
        default_corpus(validation_stories=-2)
    with pytest.raises(ValueError, match="seed"):
        default_corpus(seed=-1)


def test_tokenizer_training_rejects_bad_arguments():
    with pytest.raises(ValueError, match="texts"):
        train_wordpiece_tokenizer([])
    with pytest.raises(ValueError, match="texts"):
        train_wordpiece_tokenizer(["", "   "])
    with pytest.raises(ValueError, match="texts"):
        train_wordpiece_tokenizer("a single string")
    with pytest.raises(ValueError, match="vocab_size"):
        train_wordpiece_tokenizer(["hello world"], vocab_size=10)
    with pytest.raises(ValueError, match="min_frequency"):
        train_wordpiece_tokenizer(["hello world"], min_frequency=0)
    with pytest.raises(ValueError, match="texts"):
        count_tokens("a single string", None)
