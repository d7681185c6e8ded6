"""Checkpoint sizes of the default 132M TernaryLM: latent fp32 / bf16 versus packed 2-bit / 1.6-bit.

    python benchmarks/checkpoint_size.py            # the 132M model (about 1 minute, 1 GB of temporary files)
    python benchmarks/checkpoint_size.py --quick    # a small model, seconds

Writes benchmarks/results/checkpoint_size.md and .json. Sizes do not depend on training, so the weights are random.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors import safe_open

import modeling_ternary  # noqa: F401  (registers the Auto classes)
from modeling_ternary import TernaryConfig, TernaryForCausalLM, TernaryLinear
from transformers import AutoModelForCausalLM

sys.path.insert(0, str(Path(__file__).parent))
from common import describe_machine, write_results  # noqa: E402


def _safetensors_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.glob("*.safetensors"))


def _packed_code_bytes(directory: Path) -> int:
    total = 0
    for path in directory.glob("*.safetensors"):
        with safe_open(path, framework="pt") as handle:
            for key in handle.keys():
                if key.endswith(".weight_packed"):
                    shape = handle.get_slice(key).get_shape()
                    total += shape[0] * shape[1]
    return total


def _load_seconds(directory: Path) -> float:
    start = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    return time.perf_counter() - start


def measure(config: TernaryConfig, workdir: Path) -> dict:
    torch.manual_seed(0)
    model = TernaryForCausalLM(config)
    ternary_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, TernaryLinear))
    parameters = sum(p.numel() for p in model.parameters())
    writers = {
        "latent fp32": lambda d: model.save_pretrained(d),
        "latent bf16": lambda d: model.to(torch.bfloat16).save_pretrained(d) or model.to(torch.float32),
        "packed 2bit (bf16 rest)": lambda d: model.save_packed(d, layout="2bit"),
        "packed 1.6bit (bf16 rest)": lambda d: model.save_packed(d, layout="1.6bit"),
    }
    rows = []
    for name, write in writers.items():
        directory = workdir / name.replace(" ", "_").replace("(", "").replace(")", "")
        write(directory)
        size = _safetensors_bytes(directory)
        code_bytes = _packed_code_bytes(directory)
        rows.append({
            "checkpoint": name,
            "bytes": size,
            "ternary_bits_per_weight": 8 * code_bytes / ternary_weights if code_bytes else 32.0 if "fp32" in name
            else 16.0,
            "load_seconds": _load_seconds(directory),
        })
    fp32_bytes = rows[0]["bytes"]
    for row in rows:
        row["ratio_to_fp32"] = row["bytes"] / fp32_bytes
    return {"parameters": parameters, "ternary_weights": ternary_weights, "rows": rows}


def to_markdown(result: dict, machine: str) -> str:
    lines = [
        f"Checkpoint sizes, {result['parameters'] / 1e6:.1f}M parameters "
        f"({result['ternary_weights'] / 1e6:.1f}M ternary). Machine: {machine}.",
        "",
        "| checkpoint | safetensors MB | ternary bits / weight | size vs fp32 | load s (to fp32, unpack included) |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(f"| {row['checkpoint']} | {row['bytes'] / 1e6:.1f} | {row['ternary_bits_per_weight']:.3f} | "
                     f"{row['ratio_to_fp32']:.3f}x | {row['load_seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small model instead of the 132M one")
    args = parser.parse_args()
    config = TernaryConfig(hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=4) \
        if args.quick else TernaryConfig()
    machine = describe_machine()
    with tempfile.TemporaryDirectory() as workdir:
        result = measure(config, Path(workdir))
    result["machine"] = machine
    markdown = to_markdown(result, machine)
    print(markdown)
    if not args.quick:
        write_results("checkpoint_size", markdown, result)


if __name__ == "__main__":
    main()
