"""Model cards for released checkpoints: `model_card_template.md` filled from the checkpoint and the training report.

The card is the checkpoint's `README.md`, which the Hub shows and indexes. Its YAML metadata (built with
`huggingface_hub.ModelCardData`, so it is valid Hub metadata) says `library_name: transformers`, tags `ternary`,
`1.58-bit`, `bitnet`, the license, the Hub dataset when the model was trained on one, and a `model-index` with the
metrics measured by the training run. Every number in the card is read from somewhere, never typed:

- from the checkpoint directory: the config (architecture, dimensions, quantization), the packed format and its
  version, the parameter and ternary-weight counts (from a meta-device model), the safetensors bytes and the bits
  a ternary weight takes (from the safetensors headers);
- from the training report (`report.json` of `examples/main_job.py`): perplexities of this model, its FP32 twin and
  the unigram baseline, run sizes, fine-tuning scores, training settings;
- optionally from `benchmarks/inference_speed.json`: decoding and prefill speed.

The template ships inside the package (package data) so that an installed plugin can write cards;
`model_cards/template.md` at the repository root is a link to it.

This module is not imported by `modeling_ternary.py`, so it is never copied to the Hub as remote code (it needs
jinja2, which a machine with only torch, transformers and safetensors may lack).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import struct
from importlib import metadata
from pathlib import Path

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .configuration_ternary import TernaryConfig
from .modeling_ternary import TernaryForCausalLM, TernaryForSequenceClassification, TernaryModel
from .ternary_linear import TernaryLinear

TEMPLATE_PATH = Path(__file__).with_name("model_card_template.md")
CARD_TAGS = ["ternary", "1.58-bit", "bitnet", "quantized", "modeling-ternary"]
EMBEDDED_DATASET = "default"  # examples/pretrain.py's name for its embedded corpus
_HUB_DATASET_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # "name" or "namespace/name"
# Model class, Hub pipeline tag and Auto class of each architecture.
_TASKS = {
    "TernaryForCausalLM": (TernaryForCausalLM, "text-generation", "AutoModelForCausalLM"),
    "TernaryForSequenceClassification": (TernaryForSequenceClassification, "text-classification",
                                         "AutoModelForSequenceClassification"),
    "TernaryModel": (TernaryModel, "feature-extraction", "AutoModel"),
}
# Systems of benchmarks/inference_speed.json shown in the card: ours and the fp32 Llama baseline.
_SPEED_SYSTEMS = ("ternary-inference", "ternary-training-mode", "llama-fp32")
_SPEED_DIMS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")


def write_model_card(
    checkpoint_dir: str | os.PathLike,
    report: dict | str | os.PathLike | None = None,
    repo_id: str | None = None,
    benchmark: dict | str | os.PathLike | None = None,
    license: str = "apache-2.0",
) -> Path:
    """Render the model card of a saved checkpoint and write it as its `README.md`.

    Args:
        checkpoint_dir: a latent or packed Ternary checkpoint directory (config.json and safetensors).
        report: the training report (`report.json` of `examples/main_job.py`, as a dict or a path), or None.
        repo_id: the Hub id the card's loading instructions use (default: the directory name).
        benchmark: `benchmarks/results/inference_speed.json` (dict or path) for the speed table, or None.
        license: a Hub license id.

    Returns:
        The path of the written `README.md`.

    Example:
        >>> write_model_card("runs/main/ternary-packed", report="runs/main/report.json")  # doctest: +SKIP
    """
    card = render_model_card(checkpoint_dir, report=report, repo_id=repo_id, benchmark=benchmark, license=license)
    path = Path(checkpoint_dir) / "README.md"
    path.write_text(str(card), encoding="utf-8")
    return path


def render_model_card(
    checkpoint_dir: str | os.PathLike,
    report: dict | str | os.PathLike | None = None,
    repo_id: str | None = None,
    benchmark: dict | str | os.PathLike | None = None,
    license: str = "apache-2.0",
) -> ModelCard:
    """The model card of a saved checkpoint, as a `huggingface_hub.ModelCard`; see `write_model_card`.

    Args:
        checkpoint_dir: a latent or packed Ternary checkpoint directory.
        report: the training report (dict or path), or None.
        repo_id: the Hub id used in the loading instructions (default: the directory name).
        benchmark: the inference benchmark JSON (dict or path), or None.
        license: a Hub license id.

    Returns:
        The card; `str(card)` is the README text, `card.data` its metadata.

    Example:
        >>> card = render_model_card("ternary-packed", report="runs/main/report.json")  # doctest: +SKIP
        >>> card.data.eval_results[0].metric_value  # doctest: +SKIP
    """
    checkpoint_dir = Path(checkpoint_dir)
    config = TernaryConfig.from_pretrained(checkpoint_dir)
    architecture = (config.architectures or ["TernaryForCausalLM"])[0]
    if architecture not in _TASKS:
        raise ValueError(f"`config.architectures[0]` must be one of {sorted(_TASKS)}, got {architecture!r}.")
    _, pipeline_tag, auto_class = _TASKS[architecture]
    sizes = checkpoint_sizes(checkpoint_dir, config, architecture)
    facts = report_facts(_read_json(report, "report"), architecture, sizes["parameters"]) if report else None
    repo_id = repo_id or checkpoint_dir.resolve().name
    card_data = ModelCardData(
        model_name=repo_id.split("/")[-1],
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        license=license,
        tags=CARD_TAGS + ([pipeline_tag] if pipeline_tag != "feature-extraction" else []),
        datasets=[facts["dataset"]] if facts and facts["hub_dataset"] else None,
        eval_results=_eval_results(facts, pipeline_tag) if facts else None,
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE_PATH),
        model_name=card_data.model_name,
        repo_id=repo_id,
        architecture=architecture,
        auto_class=auto_class,
        config=config,
        format=_format_facts(config),
        sizes=sizes,
        report=facts,
        speed=speed_facts(_read_json(benchmark, "benchmark"), config) if benchmark else None,
        plugin_version=_plugin_version(),
    )


def checkpoint_sizes(checkpoint_dir: Path, config: TernaryConfig, architecture: str) -> dict:
    """Parameter and ternary-weight counts of the model, its safetensors bytes and bits per ternary weight."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        latent_config = TernaryConfig.from_dict({**config.to_dict(), "checkpoint_format": "latent",
                                                 "packing_layout": None, "packing_format_version": None})
        model = _TASKS[architecture][0](latent_config)
    ternary_names = {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, TernaryLinear)}
    ternary_weights = sum(p.numel() for name, p in model.named_parameters() if name in ternary_names)
    total_bytes, ternary_bytes = 0, 0
    for path in sorted(checkpoint_dir.glob("*.safetensors")):
        total_bytes += path.stat().st_size
        for name, (start, end) in _tensor_extents(path).items():
            # The ternary values live in `.weight_packed` (packed) or in the ternary `.weight` (latent).
            if name.endswith(".weight_packed") or name in ternary_names:
                ternary_bytes += end - start
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "ternary_weights": ternary_weights,
        "safetensors_bytes": total_bytes,
        "ternary_bits_per_weight": 8 * ternary_bytes / ternary_weights if ternary_weights else 0.0,
    }


def report_facts(report: dict, architecture: str, parameters: int) -> dict:
    """The numbers the card shows, read from a `examples/main_job.py` report; missing required keys are errors.

    The pushed checkpoint is the first seed's ternary model (the one the main job packs), so the metrics are that
    run's; with several seeds the card adds the mean ± std. For a causal LM, the report's parameter count must
    match the checkpoint's, so that a report of another model is not attached by mistake.
    """
    ternary_runs = _require(report, "runs", "ternary")
    if not isinstance(ternary_runs, list) or not ternary_runs:
        raise ValueError(f"report `runs.ternary` must be a non-empty list of runs, got {ternary_runs!r}.")
    run = ternary_runs[0]
    for key in ("train_perplexity", "validation_perplexity"):
        if key not in run:
            raise ValueError(f"The report has no `runs.ternary[0].{key}`: is it a report.json of examples/main_job.py?")
    if architecture == "TernaryForCausalLM" and run.get("parameters") not in (None, parameters):
        raise ValueError(
            f"The report describes a model with {run['parameters']:,} parameters but the checkpoint has "
            f"{parameters:,}: pass the report of the run that produced this checkpoint."
        )
    settings = _require(report, "settings")
    dataset = str(settings.get("dataset", EMBEDDED_DATASET))
    fp32_runs = report.get("runs", {}).get("fp32") or [{}]
    validation = [r["validation_perplexity"] for r in ternary_runs if "validation_perplexity" in r]
    return {
        "dataset": dataset,
        "embedded": dataset == EMBEDDED_DATASET,
        # pretrain.py also reads local files: those are no Hub dataset and stay out of the `datasets` metadata.
        "hub_dataset": dataset != EMBEDDED_DATASET and bool(_HUB_DATASET_ID.match(dataset))
        and not os.path.exists(dataset),
        "preset": settings.get("preset"),
        "max_steps": settings.get("max_steps"),
        "batch_size": settings.get("batch_size"),
        "learning_rate": settings.get("learning_rate"),
        "seeds": settings.get("seeds", []),
        "train_perplexity": run["train_perplexity"],
        "validation_perplexity": run["validation_perplexity"],
        "fp32_train_perplexity": fp32_runs[0].get("train_perplexity"),
        "fp32_validation_perplexity": fp32_runs[0].get("validation_perplexity"),
        "unigram_validation_perplexity": report.get("unigram_validation_perplexity"),
        "seed_summary": (f"{statistics.mean(validation):.2f} ± {statistics.stdev(validation):.2f} over "
                         f"{len(validation)} seeds") if len(validation) > 1 else None,
        "latent_fp32_bytes": report.get("latent_fp32_bytes"),
        "packed_2bit_bytes": report.get("packed_2bit_bytes"),
        "finetune": _finetune_facts(report.get("finetune")),
    }


def speed_facts(benchmark: dict, config: TernaryConfig) -> dict:
    """The rows of `benchmarks/inference_speed.json` the card shows, and whether they were measured on this
    model's dimensions."""
    dims = _require(benchmark, "dims", source="benchmark")
    systems = _require(benchmark, "systems", source="benchmark")
    rows = [row for row in systems if row.get("system") in _SPEED_SYSTEMS]
    return {
        "rows": rows,
        "machine": benchmark.get("machine", "an unrecorded machine"),
        "decode_tokens": benchmark.get("decode_tokens"),
        "dims_text": ", ".join(f"{key} {dims[key]}" for key in _SPEED_DIMS if key in dims),
        "same_dims": all(dims.get(key) == getattr(config, key) for key in _SPEED_DIMS),
    }


def _eval_results(facts: dict, pipeline_tag: str) -> list[EvalResult]:
    if facts["hub_dataset"]:
        dataset = {"dataset_type": facts["dataset"], "dataset_name": facts["dataset"]}
    elif facts["embedded"]:
        dataset = {"dataset_type": "modeling-ternary-embedded-stories", "dataset_name": "embedded template stories"}
    else:
        dataset = {"dataset_type": "local-files", "dataset_name": Path(facts["dataset"]).name}
    dataset["dataset_split"] = "validation"
    if pipeline_tag == "text-classification":
        finetune = facts["finetune"]
        if not finetune:
            return []
        return [EvalResult(task_type="text-classification", metric_type=metric, metric_value=finetune[metric],
                           **{**dataset, "dataset_type": finetune["task"], "dataset_name": finetune["task"]})
                for metric in ("accuracy", "f1")]
    return [
        EvalResult(task_type="text-generation", metric_type="perplexity", metric_name="validation perplexity",
                   metric_value=facts["validation_perplexity"], **dataset),
        EvalResult(task_type="text-generation", metric_type="perplexity", metric_name="train perplexity",
                   metric_value=facts["train_perplexity"], **{**dataset, "dataset_split": "train"}),
    ]


def _finetune_facts(finetune: dict | None) -> dict | None:
    keys = ("accuracy", "f1", "majority_accuracy", "majority_f1")
    if not finetune or any(key not in finetune for key in keys):
        return None
    return {"task": finetune.get("task", "paraphrase"), **{key: finetune[key] for key in keys}}


def _format_facts(config: TernaryConfig) -> dict:
    dtype = config.dtype if config.dtype is not None else torch.float32
    return {
        "checkpoint_format": config.checkpoint_format,
        "layout": config.packing_layout,
        "version": config.packing_format_version,
        "float_dtype": str(dtype).removeprefix("torch."),
    }


def _tensor_extents(path: Path) -> dict[str, tuple[int, int]]:
    """Byte range of each tensor of a safetensors file, from its JSON header (no tensor is read)."""
    with open(path, "rb") as handle:
        header_length = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(header_length))
    return {name: tuple(info["data_offsets"]) for name, info in header.items() if name != "__metadata__"}


def _read_json(value: dict | str | os.PathLike, name: str) -> dict:
    if isinstance(value, dict):
        return value
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"`{name}` must be a dict or the path of a JSON file, got {type(value).__name__}.")
    path = Path(value)
    if not path.is_file():
        raise ValueError(f"`{name}` file {str(path)!r} does not exist.")
    return json.loads(path.read_text(encoding="utf-8"))


def _require(mapping: dict, *keys: str, source: str = "report"):
    value = mapping
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            origin = ("a report.json of examples/main_job.py" if source == "report"
                      else "a JSON of benchmarks/inference_speed.py")
            raise ValueError(f"The {source} has no `{'.'.join(keys[:depth + 1])}`: is it {origin}?")
        value = value[key]
    return value


def _plugin_version() -> str:
    try:
        return metadata.version("modeling-ternary")
    except metadata.PackageNotFoundError:
        return "(not installed as a package)"


__all__ = ["CARD_TAGS", "TEMPLATE_PATH", "checkpoint_sizes", "render_model_card", "report_facts", "speed_facts",
           "write_model_card"]
