"""The main job: pretrain a ternary LM and its FP32 twin, evaluate, pack, reload, generate, fine-tune, report.

    python examples/main_job.py                         # embedded corpus, small model, one seed (minutes on 2 CPUs)
    python examples/main_job.py --seeds 0 1 2           # mean ± std over seeds
    python examples/main_job.py --preset paper --dataset roneneldan/TinyStories --max_steps 20000 --seeds 0 1 2

Writes to --output_dir: one directory per trained model, the packed checkpoint, the fine-tuned classifier's
metrics, `sparsity.png` and `report.md` (the table of ternary vs FP32 perplexities and their train/val ratios, the
unigram baseline, sizes, a generated sample, fine-tuning scores beside the majority baseline), plus `report.json`;
the packed checkpoint gets the model card (`README.md`) filled from that report.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).parent))
import finetune  # noqa: E402
import pretrain  # noqa: E402

from modeling_ternary.evaluation import sparsity_table  # noqa: E402
from modeling_ternary.model_card import write_model_card  # noqa: E402
from modeling_ternary.pack import pack_checkpoint  # noqa: E402


def plot_sparsity(sparsity: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = sparsity_table(sparsity)
    layers = sorted(table)
    figure, axis = plt.subplots(figsize=(7, 4))
    for projection in sorted({p for row in table.values() for p in row}):
        axis.plot(layers, [table[layer].get(projection, float("nan")) for layer in layers], marker="o",
                  label=projection)
    axis.set_xticks(layers)
    axis.set_xlabel("layer")
    axis.set_ylabel("fraction of zero weights")
    axis.set_title("Sparsity of the ternary matrices")
    axis.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="runs/main")
    parser.add_argument("--dataset", default="default")
    parser.add_argument("--preset", default="small", choices=list(pretrain.PRESETS))
    parser.add_argument("--max_steps", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--finetune_steps", type=int, default=150)
    parser.add_argument("--tokenizer", default="bert-base-uncased")
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    runs: dict[str, list[dict]] = {"ternary": [], "fp32": []}
    for seed in args.seeds:
        for kind in runs:
            run_dir = out / f"{kind}-seed{seed}"
            print(f"== pretraining {kind}, seed {seed} -> {run_dir}", flush=True)
            runs[kind].append(pretrain.main([
                "--output_dir", str(run_dir), "--dataset", args.dataset, "--preset", args.preset,
                "--max_steps", str(args.max_steps), "--batch_size", str(args.batch_size),
                "--learning_rate", str(args.learning_rate), "--seed", str(seed), "--tokenizer", args.tokenizer,
                *(["--full_precision"] if kind == "fp32" else []),
            ]))
    first = out / f"ternary-seed{args.seeds[0]}"
    packed = pack_checkpoint(str(first), str(out / "ternary-packed"))
    model = AutoModelForCausalLM.from_pretrained(packed, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(packed)
    prompt = tokenizer("once upon a time", return_tensors="pt")
    sample_ids = model.generate(**prompt, max_new_tokens=40, do_sample=False, repetition_penalty=1.2)
    sample = tokenizer.decode(sample_ids[0], skip_special_tokens=True)
    print(f"== sample from the reloaded packed model: {sample}", flush=True)
    finetuned = finetune.main(["--model", str(packed), "--task", "embedded", "--output_dir", str(out / "finetune"),
                               "--max_steps", str(args.finetune_steps), "--learning_rate", "1e-3"])
    report = build_report(args, runs, first, packed, sample, finetuned)
    plot_sparsity(runs["ternary"][0]["sparsity"], out / "sparsity.png")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(report_markdown(report))
    write_model_card(packed, report=report)  # the release checkpoint's README.md, with the measured metrics
    print(f"== wrote {out / 'report.md'} and the model card {packed / 'README.md'}")
    return report


def build_report(args, runs, first: Path, packed: Path, sample: str, finetuned: dict) -> dict:
    size = {name: sum(f.stat().st_size for f in path.glob("*.safetensors")) for name, path in
            (("latent_fp32_bytes", first), ("packed_2bit_bytes", packed))}
    return {
        "settings": vars(args),
        "runs": runs,
        "unigram_validation_perplexity": runs["ternary"][0]["unigram_validation_perplexity"],
        "sample": sample,
        "finetune": finetuned,
        **size,
    }


def report_markdown(report: dict) -> str:
    settings, runs = report["settings"], report["runs"]
    lines = [
        "# TernaryLM main job report", "",
        f"Dataset `{settings['dataset']}`, preset `{settings['preset']}`, {settings['max_steps']} steps of batch "
        f"{settings['batch_size']} x 128 tokens, lr {settings['learning_rate']}, seeds {settings['seeds']}. "
        "Perplexity = exp(token-weighted mean NLL), no label smoothing; train perplexity on up to 256 blocks.", "",
        "| model | train PPL | validation PPL | val / train | parameters |", "|---|---|---|---|---|",
    ]
    for kind, label in (("ternary", "ternary (1.58-bit)"), ("fp32", "FP32 twin")):
        rows = runs[kind]
        lines.append(
            f"| {label} | {_mean_std([r['train_perplexity'] for r in rows])} | "
            f"{_mean_std([r['validation_perplexity'] for r in rows])} | "
            f"{_mean_std([r['validation_over_train_perplexity'] for r in rows])} | {rows[0]['parameters']:,} |"
        )
    finetuned = report["finetune"]
    lines += [
        "", f"Unigram baseline validation perplexity: {report['unigram_validation_perplexity']:.1f}.", "",
        f"Checkpoint: latent fp32 {report['latent_fp32_bytes'] / 1e6:.2f} MB, packed 2-bit "
        f"{report['packed_2bit_bytes'] / 1e6:.2f} MB.", "",
        f"Sample from the reloaded packed checkpoint (greedy): \"{report['sample']}\"", "",
        "Fine-tuning the packed checkpoint on the embedded paraphrase task (validation):", "",
        "| | accuracy | F1 |", "|---|---|---|",
        f"| classifier | {finetuned['accuracy']:.3f} | {finetuned['f1']:.3f} |",
        f"| always the majority class | {finetuned['majority_accuracy']:.3f} | {finetuned['majority_f1']:.3f} |",
        "", "![sparsity](sparsity.png)", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
