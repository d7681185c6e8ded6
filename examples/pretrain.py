"""Pretrain a ternary LM (or its full-precision twin) with the Trainer, then evaluate it the right way.

    python examples/pretrain.py --output_dir runs/ternary-small                    # embedded corpus, small model
    python examples/pretrain.py --output_dir runs/fp32-small --full_precision      # the FP32 twin, same recipe
    python examples/pretrain.py --preset paper --dataset roneneldan/TinyStories --output_dir runs/paper  # on a GPU
    torchrun --nproc_per_node 2 examples/pretrain.py --output_dir runs/ddp      # DDP (or: accelerate launch ...)

Data: `--dataset default` (the generated corpus of `modeling_ternary.corpus`, offline), a Hub dataset id, or a
local text/JSON/CSV/parquet file or directory (`--text_column`, default "text"). Tokenizer: `--tokenizer` (e.g.
bert-base-uncased, when it can be loaded), else a WordPiece tokenizer trained on the training split; it is saved
with the checkpoint. Recipe (the paper's): AdamW lr 3e-4, betas (0.9, 0.98), weight decay 0.01, gradient clipping 1.0,
linear warm-up then cosine decay, 128-token blocks. Writes the latent checkpoint, `metrics.json` (train and
validation perplexity, their ratio, per-layer sparsity) to `--output_dir`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from datasets import DatasetDict, load_dataset
from transformers import AutoTokenizer, Trainer, TrainingArguments, set_seed

import modeling_ternary  # noqa: F401  (registers the Auto classes)
from modeling_ternary import TernaryConfig, TernaryForCausalLM
from modeling_ternary.corpus import default_corpus, train_wordpiece_tokenizer
from modeling_ternary.data import chunk_dataset
from modeling_ternary.evaluation import layer_sparsity, perplexity, unigram_perplexity

PRESETS = {  # model sizes; "paper" is the 132M TernaryLM
    "tiny": dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4),
    "small": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4),
    "paper": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12),
}


def load_corpus(dataset: str, text_column: str, seed: int) -> DatasetDict:
    """The training and validation texts: the embedded corpus, a local file/directory, or a Hub dataset."""
    if dataset == "default":
        return default_corpus(seed=seed)
    path = Path(dataset)
    if path.exists():
        files = sorted(str(p) for p in path.iterdir() if p.is_file()) if path.is_dir() else [str(path)]
        suffix = Path(files[0]).suffix.lstrip(".")
        builder = {"txt": "text", "jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}.get(suffix)
        if builder is None:
            raise ValueError(f"--dataset {dataset!r}: unsupported file type {suffix!r} (txt, json, jsonl, csv, parquet).")
        corpus = load_dataset(builder, data_files=files)
    else:
        corpus = load_dataset(dataset)
    if "validation" not in corpus:
        split = corpus["train"].train_test_split(test_size=0.05, seed=seed)
        corpus = DatasetDict({"train": split["train"], "validation": split["test"]})
    return DatasetDict({"train": corpus["train"], "validation": corpus["validation"]})


def load_tokenizer(name: str | None, corpus: DatasetDict, text_column: str, vocab_size: int):
    """`name` if it loads (e.g. bert-base-uncased, online or cached), else WordPiece trained on the train split."""
    if name:
        try:
            return AutoTokenizer.from_pretrained(name)
        except OSError as error:
            print(f"Tokenizer {name!r} unavailable ({type(error).__name__}); training a WordPiece tokenizer instead.")
    return train_wordpiece_tokenizer(list(corpus["train"][text_column]), vocab_size=vocab_size)


def build_model(args, tokenizer) -> TernaryForCausalLM:
    config = TernaryConfig(
        **PRESETS[args.preset],
        vocab_size=len(tokenizer),
        max_position_embeddings=max(512, args.block_size),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id,
        eos_token_id=tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id,
        ternary_modules=[] if args.full_precision else None,
        activation_quant=args.activation_quant,
    )
    return TernaryForCausalLM(config)


def evaluate(model, blocks: DatasetDict, batch_size: int, max_blocks: int | None) -> dict:
    """Token-weighted perplexity of both splits (train capped at `max_blocks` blocks), their ratio, the unigram
    baseline, sparsity."""
    results = {}
    for split in ("train", "validation"):
        data = blocks[split]
        if max_blocks is not None:
            data = data.select(range(min(max_blocks, len(data))))
        ids = torch.tensor(data["input_ids"])
        batches = [{"input_ids": ids[i:i + batch_size]} for i in range(0, len(ids), batch_size)]
        results[f"{split}_perplexity"] = perplexity(model, batches)["perplexity"]
    results["validation_over_train_perplexity"] = results["validation_perplexity"] / results["train_perplexity"]
    results["unigram_validation_perplexity"] = unigram_perplexity(
        blocks["train"]["input_ids"], blocks["validation"]["input_ids"], model.config.vocab_size
    )
    if model.config.is_ternary:
        results["sparsity"] = layer_sparsity(model)
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--dataset", default="default", help="'default' (embedded), a Hub id, or a local path")
    parser.add_argument("--text_column", default="text")
    parser.add_argument("--tokenizer", default="bert-base-uncased")
    parser.add_argument("--vocab_size", type=int, default=4096, help="for a tokenizer trained on the corpus")
    parser.add_argument("--preset", choices=list(PRESETS), default="small")
    parser.add_argument("--full_precision", action="store_true", help="train the FP32 twin (no ternary layers)")
    parser.add_argument("--activation_quant", choices=["none", "per_token_int8"], default="none")
    parser.add_argument("--block_size", type=int, default=128)
    parser.add_argument("--max_steps", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=3e-4)
    parser.add_argument("--warmup_ratio", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval_blocks", type=int, default=256, help="train blocks used for the train perplexity")
    args = parser.parse_args(argv)

    set_seed(args.seed)
    corpus = load_corpus(args.dataset, args.text_column, args.seed)
    tokenizer = load_tokenizer(args.tokenizer, corpus, args.text_column, args.vocab_size)
    model = build_model(args, tokenizer)
    blocks = chunk_dataset(corpus, tokenizer, block_size=args.block_size, text_column=args.text_column,
                           max_position_embeddings=model.config.max_position_embeddings,
                           vocab_size=model.config.vocab_size)
    training_args = TrainingArguments(
        output_dir=args.output_dir, max_steps=args.max_steps, per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate, adam_beta1=0.9, adam_beta2=0.98, weight_decay=0.01, max_grad_norm=1.0,
        lr_scheduler_type="cosine", warmup_steps=int(args.warmup_ratio * args.max_steps), logging_steps=25,
        save_strategy="no", report_to=[], seed=args.seed, label_smoothing_factor=0.0,
        use_cpu=not torch.cuda.is_available(), disable_tqdm=False,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=blocks["train"])
    trainer.train()
    metrics = evaluate(model, blocks, args.batch_size, args.eval_blocks)
    metrics.update(preset=args.preset, full_precision=args.full_precision, max_steps=args.max_steps,
                   parameters=sum(p.numel() for p in model.parameters()), vocab_size=len(tokenizer))
    if trainer.is_world_process_zero():  # under torchrun / accelerate launch, one process writes
        model.save_pretrained(args.output_dir)
        tokenizer.save_pretrained(args.output_dir)
        Path(args.output_dir, "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps({k: v for k, v in metrics.items() if k != "sparsity"}, indent=2))
    return metrics


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
