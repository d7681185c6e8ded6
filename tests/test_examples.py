import json
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
