"""Run by tests/test_distributed.py under torchrun: a few DDP steps (gloo, CPU) with the Trainer, then each rank
writes a digest of its weights and its logged losses to OUT/rank<R>.json."""

import hashlib
import json
import os
import sys
from pathlib import Path

import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

sys.path.insert(0, str(Path(__file__).parent.parent))
from modeling_ternary import TernaryForCausalLM  # noqa: E402
from tests.conftest import tiny_config  # noqa: E402

out = Path(sys.argv[1])
torch.manual_seed(0)
model = TernaryForCausalLM(tiny_config(hidden_size=64, intermediate_size=128, activation_quant="per_token_int8"))
input_ids = torch.randint(4, 99, (32, 16), generator=torch.Generator().manual_seed(0))
dataset = Dataset.from_dict({"input_ids": input_ids.tolist(), "labels": input_ids.tolist()})
args = TrainingArguments(
    output_dir=str(out), per_device_train_batch_size=4, max_steps=12, learning_rate=1e-2, logging_steps=1,
    report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0, ddp_backend="gloo",
)
trainer = Trainer(model=model, args=args, train_dataset=dataset)
trainer.train()
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
(out / f"rank{rank}.json").write_text(json.dumps({"world": world, "digest": digest, "losses": losses}))
if torch.distributed.is_initialized():
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
