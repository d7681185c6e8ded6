import json
import math
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))
import pretrain  # noqa: E402


def test_pretrain_script_trains_evaluates_and_saves_a_loadable_checkpoint(tmp_path):
    metrics = pretrain.main(["--output_dir", str(tmp_path), "--preset", "tiny", "--max_steps", "8",
                             "--batch_size", "8", "--learning_rate", "3e-3", "--eval_blocks", "16",
                             "--tokenizer", ""])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["train_perplexity"] == metrics["train_perplexity"] > 1.0
    assert saved["validation_over_train_perplexity"] > 0
    assert len(saved["sparsity"]) == 2 * 7 and all(0.0 <= v <= 1.0 for v in saved["sparsity"].values())
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert model.config.vocab_size == len(tokenizer) == saved["vocab_size"]
    ids = tokenizer("the little cat", return_tensors="pt")["input_ids"]
    assert model.generate(ids, max_new_tokens=3, do_sample=False).shape[1] == ids.shape[1] + 3
    # the perplexity the script reports is below the uniform-guess perplexity of its vocabulary
    assert saved["validation_perplexity"] < len(tokenizer)
    assert torch.isfinite(torch.tensor(saved["validation_perplexity"]))


def test_finetune_script_from_a_packed_checkpoint_and_label_check(tmp_path):
    import finetune
    import pytest

    pretrain.main(["--output_dir", str(tmp_path / "lm"), "--preset", "tiny", "--max_steps", "4", "--batch_size", "8",
                   "--eval_blocks", "8", "--tokenizer", ""])
    from modeling_ternary.pack import pack_checkpoint

    pack_checkpoint(str(tmp_path / "lm"), str(tmp_path / "packed"))
    metrics = finetune.main(["--model", str(tmp_path / "packed"), "--task", "embedded", "--output_dir",
                             str(tmp_path / "ft"), "--max_steps", "6", "--batch_size", "8"])
    saved = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert saved["accuracy"] == metrics["accuracy"] and 0.0 <= saved["accuracy"] <= 1.0
    assert {"f1", "majority_accuracy", "majority_f1"} <= set(saved)
    train = tmp_path / "train.tsv"
    train.write_text("sentence1\tsentence2\tlabel\nthe cat\tthe dog\t0\na big dog\ta large dog\t3\n")
    with pytest.raises(ValueError, match=r"has label 3, but the classifier has num_labels=2"):
        finetune.main(["--model", str(tmp_path / "lm"), "--task", "default", "--train_file", str(train),
                       "--sentence2_column", "sentence2", "--num_labels", "2", "--output_dir", str(tmp_path / "x")])


def test_unigram_baseline_perplexity_by_hand():
    from modeling_ternary.evaluation import unigram_perplexity

    # train counts: token 1 x3, token 2 x1; vocab 4 with add-one: p(1) = 4/8, p(2) = 2/8
    ppl = unigram_perplexity([[1, 1, 1, 2]], [[9, 1, 2]], vocab_size=4)
    assert abs(ppl - math.exp(-(math.log(4 / 8) + math.log(2 / 8)) / 2)) < 1e-12


def test_main_job_writes_the_report(tmp_path):
    import main_job

    report = main_job.main(["--output_dir", str(tmp_path), "--preset", "tiny", "--max_steps", "4",
                            "--finetune_steps", "4", "--tokenizer", ""])
    text = (tmp_path / "report.md").read_text()
    assert "| ternary (1.58-bit) |" in text and "| FP32 twin |" in text and "Unigram baseline" in text
    assert "| always the majority class |" in text
    assert (tmp_path / "sparsity.png").stat().st_size > 1000
    assert report["packed_2bit_bytes"] < report["latent_fp32_bytes"]
    assert json.loads((tmp_path / "report.json").read_text())["runs"]["fp32"][0]["full_precision"] is True
    # The packed release checkpoint carries the model card, its metrics read from this report.
    from huggingface_hub import ModelCard

    card = ModelCard.load(tmp_path / "ternary-packed" / "README.md")
    assert card.data.eval_results[0].metric_value == report["runs"]["ternary"][0]["validation_perplexity"]


def test_pretrain_reads_local_text_and_json_files(tmp_path):
    import pytest

    folder = tmp_path / "stories"
    folder.mkdir()
    (folder / "a.txt").write_text("\n".join(f"story number {i} about a cat" for i in range(40)))
    (folder / "b.txt").write_text("\n".join(f"story number {i} about a dog" for i in range(40)))
    corpus = pretrain.load_corpus(str(folder), "text", seed=0)
    assert set(corpus) == {"train", "validation"} and len(corpus["train"]) + len(corpus["validation"]) == 80
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": f"line {i}"}) for i in range(20)))
    assert len(pretrain.load_corpus(str(jsonl), "text", seed=0)["train"]) == 19
    with pytest.raises(ValueError, match=r"unsupported file type 'xml'"):
        pretrain.load_corpus(str(tmp_path / "x.xml") if (tmp_path / "x.xml").write_text("<a/>") else "", "text", 0)
