"""Model cards: valid Hub metadata, numbers read from the report and the checkpoint, clear errors on bad reports."""

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from modeling_ternary import TernaryForCausalLM, TernaryForSequenceClassification
from modeling_ternary.model_card import CARD_TAGS, TEMPLATE_PATH, render_model_card, write_model_card
from tests.conftest import tiny_config

ROOT = Path(__file__).parent.parent


def tiny_report(parameters: int, seeds=(0,)) -> dict:
    """A report shaped like examples/main_job.py's report.json (values chosen so each one is recognisable)."""
    run = {"train_perplexity": 2.0913, "validation_perplexity": 2.1418, "parameters": parameters}
    return {
        "settings": {"dataset": "default", "preset": "tiny", "max_steps": 12, "batch_size": 4, "learning_rate": 0.01,
                     "seeds": list(seeds)},
        "runs": {"ternary": [dict(run, validation_perplexity=2.1418 + 0.1 * i) for i, _ in enumerate(seeds)],
                 "fp32": [{"train_perplexity": 3.2711, "validation_perplexity": 3.4044, "parameters": parameters}]},
        "unigram_validation_perplexity": 194.31,
        "finetune": {"accuracy": 0.8351, "f1": 0.8882, "majority_accuracy": 0.6621, "majority_f1": 0.7973,
                     "task": "embedded"},
        "latent_fp32_bytes": 15_460_000,
        "packed_2bit_bytes": 2_200_000,
    }


@pytest.fixture
def packed_dir(tmp_path) -> Path:
    return TernaryForCausalLM(tiny_config()).save_packed(tmp_path / "packed")


def _parameters() -> int:
    """Parameters of the tiny causal LM (what the main job's report records)."""
    return sum(p.numel() for p in TernaryForCausalLM(tiny_config()).parameters())


def test_save_packed_writes_a_card_that_parses_as_hub_metadata(packed_dir):
    card = ModelCard.load(packed_dir / "README.md")
    assert card.data.library_name == "transformers"
    assert card.data.license == "apache-2.0"
    assert card.data.pipeline_tag == "text-generation"
    assert set(CARD_TAGS) <= set(card.data.tags) and {"ternary", "1.58-bit", "bitnet"} <= set(card.data.tags)
    assert card.data.eval_results is None  # no report given: no metrics are claimed
    assert "No training report was given" in card.text
    assert "Packed checkpoint, format version 1, layout `2bit`" in card.text
    assert "trust_remote_code=True" in card.text and 'from_pretrained("packed")' in card.text
    assert "arxiv.org/abs/2602.07374" in card.text


def test_save_packed_can_leave_the_card_out(tmp_path):
    TernaryForCausalLM(tiny_config()).save_packed(tmp_path, model_card=False)
    assert not (tmp_path / "README.md").exists()


def test_card_numbers_come_from_the_report_and_the_files(packed_dir):
    report = tiny_report(_parameters(), seeds=(0, 1))
    card = ModelCard(str(render_model_card(packed_dir, report=report, repo_id="me/tiny")))
    results = {(r.metric_name, r.dataset_split): r.metric_value for r in card.data.eval_results}
    assert results == {("validation perplexity", "validation"): report["runs"]["ternary"][0]["validation_perplexity"],
                       ("train perplexity", "train"): report["runs"]["ternary"][0]["train_perplexity"]}
    assert card.data.model_name == "tiny"
    text = card.text
    assert "| this model (ternary) | 2.09 | 2.14 |" in text
    assert "| FP32 twin (same architecture and steps) | 3.27 | 3.40 |" in text
    assert "| unigram baseline | | 194.3 |" in text
    assert "2.19 ± 0.07 over 2 seeds" in text
    assert "accuracy\n0.835, F1 0.888" in text and "0.662 / 0.797" in text
    assert "| training run: latent fp32 checkpoint | 15.46 MB |" in text
    safetensors_mb = (packed_dir / "model.safetensors").stat().st_size / 1e6
    assert f"| safetensors in this repository | {safetensors_mb:.2f} MB |" in text
    assert "| storage of the ternary weights | 2.000 bits a weight |" in text  # 64 rows: no padding
    assert f"with {_parameters():,} parameters, 20,480 of them ternary" in text
    assert 'AutoModelForCausalLM.from_pretrained("me/tiny", trust_remote_code=True)' in text


def test_card_of_a_latent_checkpoint_reports_32_bits_and_the_latent_format(tmp_path):
    TernaryForCausalLM(tiny_config()).save_pretrained(tmp_path)
    text = str(render_model_card(tmp_path, repo_id="me/latent"))
    assert "Latent checkpoint: the full-precision weights of training (`float32`)" in text
    assert "| storage of the ternary weights | 32.000 bits a weight |" in text


def test_classifier_card_indexes_the_fine_tuning_scores(tmp_path):
    TernaryForSequenceClassification(tiny_config(num_labels=2)).save_pretrained(tmp_path)
    report = tiny_report(parameters=1)  # a classifier's parameter count differs from its LM's: not compared
    card = ModelCard(str(render_model_card(tmp_path, report=report)))
    assert card.data.pipeline_tag == "text-classification"
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {"accuracy": 0.8351, "f1": 0.8882}
    assert "AutoModelForSequenceClassification.from_pretrained(" in card.text


def test_card_speed_table_comes_from_the_benchmark_json(packed_dir, tmp_path):
    benchmark = {"dims": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                          "num_attention_heads": 4, "vocab_size": 99}, "machine": "test machine", "decode_tokens": 64,
                 "systems": [{"system": "ternary-inference", "decode_tokens_per_second": 147.64,
                              "prefill_tokens_per_second": 1010.3, "model_memory_mb": 194.9},
                             {"system": "llamacpp-f16", "decode_tokens_per_second": 1.0,
                              "prefill_tokens_per_second": 1.0, "model_memory_mb": 1.0}]}
    (tmp_path / "speed.json").write_text(json.dumps(benchmark))
    text = str(render_model_card(packed_dir, benchmark=tmp_path / "speed.json"))
    assert "| ternary-inference | 147.6 | 1010 | 195 |" in text
    assert "llamacpp-f16" not in text and "an order of magnitude only" not in text  # same dimensions as this model


def test_write_model_card_writes_readme(packed_dir):
    path = write_model_card(packed_dir, report=tiny_report(_parameters()), repo_id="me/tiny")
    assert path == packed_dir / "README.md"
    assert ModelCard.load(path).data.eval_results[0].metric_value == 2.1418


def test_report_of_another_model_is_refused(packed_dir):
    with pytest.raises(ValueError, match=r"report describes a model with 123 parameters but the checkpoint has"):
        render_model_card(packed_dir, report=tiny_report(parameters=123))


@pytest.mark.parametrize("remove, missing", [
    (lambda r: r.pop("runs"), "runs"),
    (lambda r: r["runs"].pop("ternary"), "runs.ternary"),
    (lambda r: r.pop("settings"), "settings"),
    (lambda r: r["runs"]["ternary"][0].pop("validation_perplexity"), r"runs.ternary\[0\].validation_perplexity"),
])
def test_report_without_a_required_field_is_refused(packed_dir, remove, missing):
    report = tiny_report(_parameters())
    remove(report)
    with pytest.raises(ValueError, match=rf"The report has no `{missing}`: is it a report.json of examples/main_job"):
        render_model_card(packed_dir, report=report)


def test_report_argument_types_are_checked(packed_dir, tmp_path):
    with pytest.raises(TypeError, match="`report` must be a dict or the path of a JSON file, got int"):
        render_model_card(packed_dir, report=3)
    with pytest.raises(ValueError, match="`report` file .*nothing.json' does not exist"):
        render_model_card(packed_dir, report=tmp_path / "nothing.json")


def test_template_is_package_data_linked_from_model_cards():
    assert TEMPLATE_PATH.is_file() and TEMPLATE_PATH.parent.name == "modeling_ternary"
    assert (ROOT / "model_cards" / "template.md").resolve() == TEMPLATE_PATH.resolve()
    assert '"model_card_template.md"' in (ROOT / "pyproject.toml").read_text()


def test_card_dtype_follows_the_checkpoint(tmp_path):
    TernaryForCausalLM(tiny_config()).save_packed(tmp_path, float_dtype=torch.float16)
    assert "every other tensor (embeddings, norms, LM head) is `float16`" in (tmp_path / "README.md").read_text()


def test_pack_command_writes_the_card_with_the_report(tmp_path):
    from modeling_ternary.pack import main

    TernaryForCausalLM(tiny_config()).save_pretrained(tmp_path / "latent")
    (tmp_path / "report.json").write_text(json.dumps(tiny_report(_parameters())))
    main([str(tmp_path / "latent"), str(tmp_path / "packed"), "--report", str(tmp_path / "report.json")])
    assert ModelCard.load(tmp_path / "packed" / "README.md").data.eval_results[0].metric_value == 2.1418


@pytest.mark.parametrize("dataset, hub_datasets, dataset_type", [
    ("roneneldan/TinyStories", ["roneneldan/TinyStories"], "roneneldan/TinyStories"),
    ("default", None, "modeling-ternary-embedded-stories"),
    ("LOCAL", None, "local-files"),  # a local file pretrain.py read: not a Hub dataset
])
def test_card_datasets_metadata_names_hub_datasets_only(packed_dir, tmp_path, dataset, hub_datasets, dataset_type):
    if dataset == "LOCAL":
        dataset = str(tmp_path / "stories.txt")
        Path(dataset).write_text("once upon a time")
    report = tiny_report(_parameters())
    report["settings"]["dataset"] = dataset
    card = ModelCard(str(render_model_card(packed_dir, report=report)))
    assert card.data.datasets == hub_datasets
    assert card.data.eval_results[0].dataset_type == dataset_type
