"""Inference and training speed, memory, checkpoint bytes and load time: this project against transformers' Llama
(fp32, bf16), transformers' BitNet `BitLinear`, and llama.cpp on GGUF files exported by this project.

    python benchmarks/inference_speed.py            # the 132M architecture (about 10-15 minutes on 2 cores)
    python benchmarks/inference_speed.py --quick    # a small model, under 2 minutes

Every system runs in a fresh subprocess, one after the other (memory = peak RSS of that process minus its RSS after
the imports); speeds are medians of repeats, and ratios are against transformers' Llama fp32 of the same
dimensions, measured in the same run. Weights are random: speed and size do not depend on their values. Writes
benchmarks/results/inference_speed.md and .json (not in quick mode).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import describe_machine, write_results  # noqa: E402
FULL = dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12, vocab_size=30522,
            max_position_embeddings=512)
QUICK = dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4, vocab_size=30522,
             max_position_embeddings=512)
SYSTEMS = ["llama-fp32", "llama-bf16", "ternary-inference", "ternary-training-mode", "bitnet-bitlinear",
           "llamacpp-tq2_0", "llamacpp-tq1_0", "llamacpp-f16"]


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak resident), in MB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field)) / 1024


def _median_seconds(function, repeats: int) -> float:
    function()  # warm-up (kernel compilation, caches, thread pools)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- worker: runs one system in its own process -----------------------------------------------------------------


def _load_system(system: str, workdir: Path, dims: dict):
    """Load `system` from the checkpoints in `workdir`; returns (generate(prompt, n), forward(ids), file bytes)."""
    import torch

    if system.startswith("llamacpp"):
        import llama_cpp

        path = workdir / f"model-{system.split('-')[1]}.gguf"
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, n_batch=512, n_threads=torch.get_num_threads(),
                              logits_all=False, verbose=False)

        def generate(prompt, new_tokens):
            llm.reset()
            llm.eval(prompt[0].tolist())
            for _ in range(new_tokens):
                token = int(llm.sample(temp=0.0))  # greedy
                llm.eval([token])

        def forward(input_ids):  # llama.cpp batches one sequence at a time
            for row in input_ids:
                llm.reset()
                llm.eval(row.tolist())

        return generate, forward, path.stat().st_size
    if system.startswith("llama-"):
        from transformers import LlamaForCausalLM

        dtype = torch.float32 if system == "llama-fp32" else torch.bfloat16
        model = LlamaForCausalLM.from_pretrained(workdir / "llama", dtype=dtype).eval()
        files = workdir / "llama"
    elif system == "bitnet-bitlinear":
        model = _bitnet_model(workdir, dims)
        files = workdir / "packed-2bit"
    else:
        import modeling_ternary  # noqa: F401
        from modeling_ternary import TernaryForCausalLM

        if system == "ternary-inference":
            model = TernaryForCausalLM.from_pretrained(workdir / "packed-2bit", inference=True)
            files = workdir / "packed-2bit"
        else:
            model = TernaryForCausalLM.from_pretrained(workdir / "latent", dtype=torch.float32).eval()
            files = workdir / "latent"

    def generate(prompt, new_tokens):
        with torch.no_grad():
            model.generate(prompt, max_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0)

    def forward(input_ids):
        with torch.no_grad():
            model(input_ids, use_cache=False, logits_to_keep=1)

    return generate, forward, sum(f.stat().st_size for f in files.glob("*.safetensors"))


def _bitnet_model(workdir: Path, dims: dict):
    """transformers' Llama with every projection a BitNet `BitLinear` holding our packed codes (bf16 compute)."""
    import torch
    from safetensors.torch import load_file
    from transformers import LlamaForCausalLM
    from transformers.integrations.bitnet import BitLinear

    model = LlamaForCausalLM.from_pretrained(workdir / "llama", dtype=torch.bfloat16).eval()
    packed = load_file(workdir / "packed-2bit" / "model.safetensors")
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            key = f"{name}.{child_name}"
            if f"{key}.weight_packed" not in packed:
                continue
            layer = BitLinear(child.in_features, child.out_features, bias=False, dtype=torch.bfloat16)
            layer.weight = packed[f"{key}.weight_packed"]
            layer.weight_scale = (1.0 / packed[f"{key}.weight_scale"]).reshape(1).to(torch.bfloat16)  # it divides
            setattr(module, child_name, layer)
    return model


def _import_libraries(system: str) -> None:
    """Import what `system` needs (and load the compiled kernels), so that RSS after imports excludes them."""
    if system.startswith("llamacpp"):
        import llama_cpp  # noqa: F401
    else:
        import transformers  # noqa: F401
        from transformers.integrations import bitnet  # noqa: F401

        import modeling_ternary

        modeling_ternary.kernels.kernels_available()


def worker(system: str, workdir: Path, dims: dict, decode_tokens: int, prefill_shape: tuple[int, int],
           repeats: int) -> dict:
    import torch

    torch.manual_seed(0)
    _import_libraries(system)
    rss_after_imports = _status_mb("VmRSS")
    start = time.perf_counter()
    generate, forward, file_bytes = _load_system(system, workdir, dims)
    load_seconds = time.perf_counter() - start
    prompt = torch.randint(1000, 2000, (1, 16))
    batch = torch.randint(1000, 2000, prefill_shape)
    if system == "bitnet-bitlinear":  # ~1 token/s: fewer tokens and one repeat keep the run short
        decode_tokens, repeats = max(4, decode_tokens // 16), 1
    memory_after_load = _status_mb("VmRSS") - rss_after_imports
    decode = _median_seconds(lambda: generate(prompt, decode_tokens), repeats)
    decode_memory = _status_mb("VmHWM") - rss_after_imports  # weights touched, KV cache of 80 tokens
    prefill = _median_seconds(lambda: forward(batch), max(1, repeats // 2))
    return {
        "system": system, "load_seconds": load_seconds, "checkpoint_bytes": file_bytes,
        "memory_after_load_mb": memory_after_load, "model_memory_mb": decode_memory,
        "decode_tokens_per_second": decode_tokens / decode,
        "prefill_tokens_per_second": batch.numel() / prefill,
    }


def train_worker(dims: dict, steps: int) -> dict:
    """Training step time (batch 8 x 128, AdamW) of TernaryForCausalLM variants against Llama fp32."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    import modeling_ternary  # noqa: F401
    from modeling_ternary import TernaryConfig, TernaryForCausalLM

    torch.manual_seed(0)
    batch = torch.randint(1000, 2000, (8, 128))
    variants = {
        "llama fp32": (lambda: LlamaForCausalLM(LlamaConfig(**dims)), None),
        "ternary, weights only": (lambda: TernaryForCausalLM(TernaryConfig(**dims)), None),
        "ternary, weights + 8-bit activations": (
            lambda: TernaryForCausalLM(TernaryConfig(**dims, activation_quant="per_token_int8")), None),
        "llama bf16 autocast": (lambda: LlamaForCausalLM(LlamaConfig(**dims)), torch.bfloat16),
        "ternary bf16 autocast": (lambda: TernaryForCausalLM(TernaryConfig(**dims)), torch.bfloat16),
    }
    steps_by_variant = {}
    for name, (build, autocast_dtype) in variants.items():
        model = build().train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.98), weight_decay=0.01)
        steps_by_variant[name] = _training_step(model, optimizer, batch, autocast_dtype)
        steps_by_variant[name]()  # warm-up: allocates gradients and optimizer state
    # Interleaved rounds (one step of each variant per round), so that drifts of the machine's speed hit every
    # variant alike; the median over rounds is reported.
    times = {name: [] for name in variants}
    for _ in range(steps):
        for name, step in steps_by_variant.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    # Ratios are taken within each round (paired), then their median and range are reported: on this kind of machine
    # a whole round can be slower than the next (allocation and page-fault costs vary), which pairing cancels.
    base = times["llama fp32"]
    return {
        name: {
            "ms": statistics.median(values) * 1000,
            "ratio": statistics.median(v / b for v, b in zip(values, base)),
            "ratio_range": [min(v / b for v, b in zip(values, base)), max(v / b for v, b in zip(values, base))],
        }
        for name, values in times.items()
    }


def _training_step(model, optimizer, batch, autocast_dtype):
    import torch

    def step():
        with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            loss = model(batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


# --- orchestration ----------------------------------------------------------------------------------------------


def prepare(workdir: Path, dims: dict, systems: list[str]) -> list[str]:
    """Write the checkpoints all systems load; returns the systems that can run here."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    import modeling_ternary  # noqa: F401
    from modeling_ternary import TernaryConfig, TernaryForCausalLM

    torch.manual_seed(0)
    model = TernaryForCausalLM(TernaryConfig(**dims))
    model.save_pretrained(workdir / "latent")
    model.save_packed(workdir / "packed-2bit")
    LlamaForCausalLM(LlamaConfig(**dims)).save_pretrained(workdir / "llama")
    runnable = [s for s in systems if not s.startswith("llamacpp")]
    wanted = [s for s in systems if s.startswith("llamacpp")]
    if wanted:
        try:
            import llama_cpp  # noqa: F401

            from modeling_ternary.gguf import export_gguf
        except ImportError as error:
            print(f"llama.cpp rows skipped: {error}")
            return runnable
        tokenizer = _benchmark_tokenizer(dims["vocab_size"])
        for system in wanted:
            kind = system.split("-")[1]
            export_gguf(model, workdir / f"model-{kind}.gguf", tensor_type=kind, tokenizer=tokenizer)
            runnable.append(system)
    return runnable


def _benchmark_tokenizer(vocab_size: int):
    """A WordPiece tokenizer with `vocab_size` entries (GGUF files carry one; its contents do not affect speed)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = [f"w{i}" for i in range(vocab_size - len(specials))]
    backend = Tokenizer(models.WordPiece({t: i for i, t in enumerate(specials + words)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def _run_worker(args: list[str]) -> dict:
    output = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True,
                            env=dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1"))
    return json.loads(output.stdout.strip().splitlines()[-1])


def to_markdown(result: dict) -> str:
    rows = result["systems"]
    base = next(r for r in rows if r["system"] == "llama-fp32")
    lines = [
        f"Model: {result['dims']}. Machine: {result['machine']}. Decode: batch 1, prompt 16, "
        f"{result['decode_tokens']} new tokens, greedy, KV cache. Prefill: batch {result['prefill_shape'][0]} x "
        f"{result['prefill_shape'][1]} tokens. Model memory: peak RSS of a fresh process while loading and decoding, "
        "minus its RSS after imports (libraries and compiled kernels loaded); RSS after loading in brackets.",
        "",
        "| system | decode tok/s | vs Llama fp32 | prefill tok/s | vs Llama fp32 | model memory MB | checkpoint MB | "
        "load s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['system']} | {r['decode_tokens_per_second']:.1f} | "
            f"{r['decode_tokens_per_second'] / base['decode_tokens_per_second']:.2f}x | "
            f"{r['prefill_tokens_per_second']:.0f} | "
            f"{r['prefill_tokens_per_second'] / base['prefill_tokens_per_second']:.2f}x | "
            f"{r['model_memory_mb']:.0f} ({r['memory_after_load_mb']:.0f}) | {r['checkpoint_bytes'] / 1e6:.1f} | "
            f"{r['load_seconds']:.2f} |"
        )
    if "training" in result:
        lines += ["", "| training step, batch 8 x 128, AdamW | median ms | vs Llama fp32 (median of per-round ratios) "
                  "| range over rounds |", "|---|---|---|---|"]
        for name, row in result["training"].items():
            low, high = row["ratio_range"]
            lines.append(f"| {name} | {row['ms']:.0f} | {row['ratio']:.3f}x | {low:.2f}-{high:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small model and fewer tokens (< 2 minutes)")
    parser.add_argument("--systems", nargs="*", default=SYSTEMS, choices=SYSTEMS)
    parser.add_argument("--no-training", action="store_true", help="skip the training-step timings")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    dims = QUICK if args.quick else FULL
    decode_tokens = 16 if args.quick else 64
    prefill_shape = (2, 64) if args.quick else (8, 128)
    repeats = 3 if args.quick else 5
    if args.worker == "train":
        print(json.dumps(train_worker(dims, steps=2 if args.quick else 11)))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.workdir), dims, decode_tokens, prefill_shape, repeats)))
        return
    machine = describe_machine()
    with tempfile.TemporaryDirectory() as workdir:
        systems = prepare(Path(workdir), dims, args.systems)
        quick = ["--quick"] if args.quick else []
        rows = []
        for system in systems:
            print(f"running {system} ...", flush=True)
            rows.append(_run_worker([*quick, "--worker", system, "--workdir", workdir]))
    result = {"dims": dims, "machine": machine, "decode_tokens": decode_tokens, "prefill_shape": prefill_shape,
              "systems": rows}
    if not args.no_training:
        print("running training steps ...", flush=True)
        result["training"] = _run_worker([*quick, "--worker", "train"])
    markdown = to_markdown(result)
    print(markdown)
    if not args.quick:
        write_results("inference_speed", markdown, result)


if __name__ == "__main__":
    main()
