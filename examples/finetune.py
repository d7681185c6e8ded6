"""Fine-tune a TernaryLM checkpoint (latent or packed) for sentence(-pair) classification with the Trainer.

    python examples/finetune.py --model runs/ternary-small --task embedded --output_dir runs/pairs   # offline demo
    python examples/finetune.py --model runs/ternary-small-packed --task mrpc --output_dir runs/mrpc  # GLUE, online
    python examples/finetune.py --model CKPT --task default --train_file train.tsv --validation_file dev.tsv \\
        --sentence1_column sentence1 --sentence2_column sentence2 --label_column label --output_dir runs/mine

Metrics come from the offline `evaluate` module `modeling_ternary/glue_metric.py` (accuracy, F1, Matthews
correlation by task) with the majority-class baseline beside them. Writes `metrics.json` to `--output_dir`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from datasets import DatasetDict, load_dataset
from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

import modeling_ternary  # noqa: F401  (registers the Auto classes)
from modeling_ternary import TernaryForSequenceClassification
from modeling_ternary.glue_metric import load_glue_metric
from modeling_ternary.pair_task import default_pair_task

GLUE_COLUMNS = {"mrpc": ("sentence1", "sentence2"), "qqp": ("question1", "question2"), "sst2": ("sentence", None),
                "cola": ("sentence", None)}


def load_task(args) -> tuple[DatasetDict, str, str | None]:
    """The train/validation splits and their text columns."""
    if args.train_file:
        files = {"train": args.train_file, "validation": args.validation_file or args.train_file}
        suffix = Path(args.train_file).suffix.lstrip(".")
        builder = {"tsv": "csv", "csv": "csv", "json": "json", "jsonl": "json"}.get(suffix)
        if builder is None:
            raise ValueError(f"--train_file {args.train_file!r}: unsupported type {suffix!r} (tsv, csv, json, jsonl).")
        extra = {"delimiter": "\t"} if suffix == "tsv" else {}
        data = load_dataset(builder, data_files=files, **extra)
        return data, args.sentence1_column, args.sentence2_column
    if args.task == "embedded":
        return default_pair_task(seed=args.seed), "sentence1", "sentence2"
    data = load_dataset("glue", args.task)
    first, second = GLUE_COLUMNS[args.task]
    return DatasetDict({"train": data["train"], "validation": data["validation"]}), first, second


def check_labels(data: DatasetDict, label_column: str, num_labels: int) -> None:
    """Every label must be an integer class id in [0, num_labels)."""
    for name, split in data.items():
        if label_column not in split.column_names:
            raise ValueError(f"Split {name!r} has no label column {label_column!r}; columns: {split.column_names}.")
        labels = list(split[label_column])
        bad = [label for label in labels if not isinstance(label, int) or not 0 <= label < num_labels]
        if bad:
            raise ValueError(
                f"Split {name!r} has label {bad[0]!r}, but the classifier has num_labels={num_labels} "
                f"(labels must be integers in [0, {num_labels}))."
            )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="latent or packed Ternary checkpoint (directory or Hub id)")
    parser.add_argument("--task", default="embedded", choices=["embedded", "mrpc", "qqp", "sst2", "cola", "default"])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--train_file")
    parser.add_argument("--validation_file")
    parser.add_argument("--sentence1_column", default="sentence1")
    parser.add_argument("--sentence2_column", default=None)
    parser.add_argument("--label_column", default="label")
    parser.add_argument("--num_labels", type=int, default=None, help="default: 2, or the number of distinct labels")
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--max_steps", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    set_seed(args.seed)
    data, first, second = load_task(args)
    num_labels = args.num_labels or max(2, len(set(data["train"][args.label_column])))
    check_labels(data, args.label_column, num_labels)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = TernaryForSequenceClassification.from_pretrained(
        args.model, num_labels=num_labels, dtype=torch.float32, pad_token_id=tokenizer.pad_token_id
    )

    def encode(batch):
        texts = (batch[first],) if second is None else (batch[first], batch[second])
        encoded = tokenizer(*texts, truncation=True, max_length=args.max_length)
        encoded["labels"] = batch[args.label_column]
        return encoded

    encoded = data.map(encode, batched=True, remove_columns=data["train"].column_names)
    metric_task = args.task if args.task in ("mrpc", "qqp", "sst2", "cola") else "default"
    metric = load_glue_metric(metric_task if args.task != "embedded" else "mrpc")

    def compute_metrics(prediction):
        return metric.compute(predictions=np.argmax(prediction.predictions, axis=-1),
                              references=prediction.label_ids)

    training_args = TrainingArguments(
        output_dir=args.output_dir, max_steps=args.max_steps, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size, learning_rate=args.learning_rate, adam_beta2=0.98,
        weight_decay=0.01, max_grad_norm=1.0, warmup_steps=max(1, args.max_steps // 20), lr_scheduler_type="cosine",
        logging_steps=25, save_strategy="no", report_to=[], seed=args.seed,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=encoded["train"],
                      eval_dataset=encoded["validation"], data_collator=DataCollatorWithPadding(tokenizer),
                      compute_metrics=compute_metrics)
    trainer.train()
    metrics = {key.removeprefix("eval_"): value for key, value in trainer.evaluate().items()}
    metrics.update(task=args.task, model=args.model, num_labels=num_labels, max_steps=args.max_steps)
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    Path(args.output_dir, "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":
    main()
