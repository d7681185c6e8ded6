"""Helpers shared by the benchmark scripts: describing the machine and writing results."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def describe_machine() -> str:
    """One line: architecture, cores, PyTorch threads and versions."""
    import torch

    return (f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def write_results(name: str, markdown: str, result: dict) -> None:
    """Write benchmarks/results/NAME.md and NAME.json."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(markdown)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
