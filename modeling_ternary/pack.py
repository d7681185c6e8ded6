"""Command line: pack a latent checkpoint into the packed release format.

    python -m modeling_ternary.pack CHECKPOINT OUT [--layout 2bit|1.6bit] [--float-dtype bfloat16|float16|float32]
        [--report runs/main/report.json]

CHECKPOINT is a directory or Hub id written by `save_pretrained` (or a Trainer checkpoint); OUT receives the packed
checkpoint, with the tokenizer copied when CHECKPOINT has one, and its model card (`README.md`, with the measured
metrics of `--report` when given).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from transformers import AutoConfig, AutoTokenizer, PretrainedConfig

from .checkpoint import FLOAT_DTYPES, save_packed
from .model_card import write_model_card
from .modeling_ternary import TernaryForCausalLM, TernaryForSequenceClassification, TernaryModel
from .packing import TernaryLayout

_CLASSES = {cls.__name__: cls for cls in (TernaryForCausalLM, TernaryForSequenceClassification, TernaryModel)}


def ternary_config_and_class(checkpoint: str | os.PathLike) -> tuple[PretrainedConfig, type]:
    """The config of a Ternary checkpoint and the model class its `architectures` names (TernaryForCausalLM when it
    names none); a checkpoint of another model type is a ValueError."""
    config = AutoConfig.from_pretrained(checkpoint)
    if getattr(config, "model_type", None) != "ternary":
        raise ValueError(f"{str(checkpoint)!r} is not a Ternary checkpoint (model_type={config.model_type!r}).")
    return config, _CLASSES.get((config.architectures or ["TernaryForCausalLM"])[0], TernaryForCausalLM)


def pack_checkpoint(checkpoint: str, output_dir: str, layout: str = "2bit", float_dtype: str = "bfloat16",
                    report: dict | str | None = None) -> Path:
    """Load a latent Ternary checkpoint and write it packed, tokenizer and model card included.

    Args:
        checkpoint: directory or Hub id of a latent checkpoint.
        output_dir: where to write the packed checkpoint.
        layout: `"2bit"` or `"1.6bit"`.
        float_dtype: `"bfloat16"`, `"float16"` or `"float32"`, for the non-ternary tensors.
        report: the training report (`report.json` of `examples/main_job.py`, dict or path) for the model card.

    Returns:
        `output_dir` as a `Path`.

    Example:
        >>> pack_checkpoint("runs/ternary-132m", "runs/ternary-132m-packed", layout="1.6bit")  # doctest: +SKIP
    """
    config, model_class = ternary_config_and_class(checkpoint)
    if config.checkpoint_format != "latent":
        raise ValueError(f"{checkpoint!r} is already packed ({config.packing_layout}); nothing to do.")
    model = model_class.from_pretrained(checkpoint, dtype="float32")
    save_packed(model, output_dir, layout=layout, float_dtype=float_dtype, model_card=False)
    try:
        AutoTokenizer.from_pretrained(checkpoint).save_pretrained(output_dir)
    except (OSError, ValueError, TypeError):
        print(f"No tokenizer found in {checkpoint}: the packed checkpoint has none.")
    write_model_card(output_dir, report=report)  # once, with the measured metrics when a report is given
    return Path(output_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="latent checkpoint directory or Hub id")
    parser.add_argument("output_dir", help="directory for the packed checkpoint")
    parser.add_argument("--layout", choices=[layout.value for layout in TernaryLayout], default="2bit")
    parser.add_argument("--float-dtype", choices=list(FLOAT_DTYPES), default="bfloat16")
    parser.add_argument("--report", default=None, help="report.json of examples/main_job.py, for the model card")
    args = parser.parse_args(argv)
    output = pack_checkpoint(args.checkpoint, args.output_dir, args.layout, args.float_dtype, args.report)
    size = sum(f.stat().st_size for f in output.glob("*.safetensors"))
    print(f"Packed {args.checkpoint} -> {output} ({args.layout}, {size / 1e6:.2f} MB of safetensors)")


if __name__ == "__main__":
    main()
