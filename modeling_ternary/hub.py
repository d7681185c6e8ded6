"""Publishing to the Hugging Face Hub: a release directory uploaded in one commit, loadable with and without the plugin.

    python -m modeling_ternary.hub CHECKPOINT REPO_ID [--packed | --latent] [--layout 2bit|1.6bit]
        [--float-dtype bfloat16|float16|float32] [--private] [--revision BRANCH] [--commit-message TEXT]
        [--report runs/main/report.json] [--benchmark benchmarks/results/inference_speed.json] [--tokenizer PATH]
        [--output-dir DIR] [--license apache-2.0]

CHECKPOINT is a local latent or packed checkpoint directory. The release directory (`build_release`) holds:

- `config.json` with `auto_map`, `generation_config.json`;
- the model code (`modeling_ternary.py` and the files it imports: what `trust_remote_code=True` runs on a machine
  with only torch, transformers and safetensors);
- `model.safetensors`, packed (`--packed`, the default: a latent checkpoint is packed, a packed one is re-written
  with its layout and float dtype, giving the same tensors) or latent (`--latent`: only from a latent checkpoint);
- the tokenizer (from CHECKPOINT or `--tokenizer`; a release without one is refused);
- `README.md`, the model card (`model_card.py`), filled from `--report` and `--benchmark`.

It is uploaded with `huggingface_hub.HfApi` (`create_repo`, `create_branch` for a `--revision` other than main,
`upload_folder`), to `HF_ENDPOINT` (huggingface.co by default) with the token of `hf auth login` or `HF_TOKEN`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch
from huggingface_hub import CommitInfo, HfApi, constants
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .checkpoint import FLOAT_DTYPES, save_packed
from .model_card import write_model_card
from .pack import ternary_config_and_class
from .packing import TernaryLayout

try:  # the HTTP library under huggingface_hub: httpx2 from 2.x, httpx before
    from httpx2 import TransportError
except ImportError:  # pragma: no cover (huggingface_hub 1.x)
    from httpx import TransportError

# Files whose presence shows that a directory holds a tokenizer (fast, WordPiece, BPE or SentencePiece).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "tokenizer.model")
# Errors that mean "no answer from the Hub" rather than "the Hub said no".
NETWORK_ERRORS = (TransportError, ConnectionError, TimeoutError)


def push_to_hub(
    checkpoint: str | os.PathLike,
    repo_id: str,
    *,
    packed: bool = True,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    output_dir: str | os.PathLike | None = None,
    **release_kwargs,
) -> CommitInfo:
    """Build the release directory of `checkpoint` and upload it to the Hub repo `repo_id` in one commit.

    Args:
        checkpoint: a local latent or packed Ternary checkpoint directory.
        repo_id: `"namespace/name"` (created if it does not exist).
        packed: upload packed weights (the release format) or, with False, the latent weights.
        private: create the repo private (an existing repo keeps its visibility).
        revision: the branch to commit to (created from main if missing); None for main.
        commit_message: the commit's summary (a default names the format).
        token: a Hub token (default: the saved login or `HF_TOKEN`).
        endpoint: the Hub URL (default: `HF_ENDPOINT`, else https://huggingface.co).
        output_dir: keep the release directory here (default: a temporary directory, deleted after the upload).
        **release_kwargs: `layout`, `float_dtype`, `tokenizer`, `report`, `benchmark`, `license`: see
            `build_release`.

    Returns:
        The `huggingface_hub.CommitInfo` of the commit (`.oid` is its sha, usable as `revision=`).

    Example:
        >>> push_to_hub("runs/main/ternary-seed0", "me/ternary-small", report="runs/main/report.json")  # doctest: +SKIP
        >>> AutoModelForCausalLM.from_pretrained("me/ternary-small", trust_remote_code=True)  # doctest: +SKIP
    """
    api = HfApi(endpoint=endpoint, token=token)
    if constants.HF_HUB_OFFLINE:
        raise ConnectionError(
            f"Cannot push to the Hub at {api.endpoint}: offline mode is on (HF_HUB_OFFLINE=1). Unset it to publish."
        )
    with tempfile.TemporaryDirectory(prefix="ternary-release-") as scratch:
        release = build_release(checkpoint, output_dir or scratch, packed=packed, repo_id=repo_id, **release_kwargs)
        message = commit_message or f"Upload {'packed' if packed else 'latent'} ternary checkpoint (modeling-ternary)"
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision not in (None, constants.DEFAULT_REVISION):
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            return api.upload_folder(repo_id=repo_id, folder_path=release, revision=revision,
                                     commit_message=message)
        except NETWORK_ERRORS as error:
            raise ConnectionError(
                f"Could not reach the Hugging Face Hub at {api.endpoint} ({type(error).__name__}: {error}). Check "
                "the network connection and HF_ENDPOINT. An upload is a single commit, so running the same command "
                "again is safe."
            ) from error


def build_release(
    checkpoint: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    packed: bool = True,
    layout: str | None = None,
    float_dtype: str | None = None,
    tokenizer: str | os.PathLike | PreTrainedTokenizerBase | None = None,
    report: dict | str | os.PathLike | None = None,
    benchmark: dict | str | os.PathLike | None = None,
    repo_id: str | None = None,
    license: str = "apache-2.0",
) -> Path:
    """Write the release directory of a checkpoint: config with `auto_map`, model code, safetensors, tokenizer, card.

    Args:
        checkpoint: a local latent or packed Ternary checkpoint directory.
        output_dir: the release directory (created; files of the same names are overwritten).
        packed: write packed weights (a latent checkpoint is packed) or, with False, latent weights (a packed
            checkpoint is refused: its trained latent weights were never stored).
        layout: packed layout, `"2bit"` or `"1.6bit"` (default: the packed checkpoint's own, else `"2bit"`).
        float_dtype: `"bfloat16"`, `"float16"` or `"float32"` for the non-ternary tensors of a packed release
            (default: the packed checkpoint's own, else `"bfloat16"`).
        tokenizer: a tokenizer or the path holding one (default: the one saved in `checkpoint`).
        report: the training report for the card (`report.json` of `examples/main_job.py`, dict or path).
        benchmark: `benchmarks/results/inference_speed.json` (dict or path) for the card's speed table.
        repo_id: the Hub id the card's loading instructions name.
        license: the card's license id.

    Returns:
        `output_dir` as a `Path`.

    Example:
        >>> build_release("runs/main/ternary-seed0", "release", report="runs/main/report.json")  # doctest: +SKIP
    """
    checkpoint = _as_checkpoint_dir(checkpoint)
    if not isinstance(packed, bool):
        raise TypeError(f"`packed` must be True or False, got {packed!r}.")
    config, model_class = ternary_config_and_class(checkpoint)
    check_checkpoint_files(checkpoint, config.checkpoint_format)
    source_packed = config.checkpoint_format == "packed"
    if source_packed and not packed:
        raise ValueError(
            f"{str(checkpoint)!r} is a packed checkpoint: its trained latent weights were never stored, so it cannot "
            "be published as latent (unpacking gives weights that reproduce the packed model, not the trained ones). "
            "Publish it packed, or publish the latent checkpoint it was packed from."
        )
    tokenizer = _load_tokenizer(checkpoint, tokenizer)
    output_dir = Path(output_dir)
    if packed:
        # float32 latents unpack exactly; re-packing them gives the stored codes and scales back.
        model = model_class.from_pretrained(checkpoint, dtype=torch.float32)
        save_packed(model, output_dir, layout=layout or config.packing_layout or TernaryLayout.TWO_BIT.value,
                    float_dtype=float_dtype or (_dtype_name(config.dtype) if source_packed else "bfloat16"),
                    model_card=False)
    else:
        if layout is not None or float_dtype is not None:
            raise ValueError(f"`layout` and `float_dtype` apply to packed releases only, got {layout!r} and "
                             f"{float_dtype!r} with packed=False.")
        model_class.from_pretrained(checkpoint, dtype="auto").save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    write_model_card(output_dir, report=report, repo_id=repo_id, benchmark=benchmark, license=license)
    check_checkpoint_files(output_dir, "packed" if packed else "latent")
    return output_dir


def check_checkpoint_files(checkpoint_dir: Path, checkpoint_format: str) -> None:
    """Refuse a directory whose safetensors do not hold what its config says (e.g. a latent, unpacked model whose
    config was marked packed): the Hub would serve it, and every loader would then fail."""
    files = sorted(Path(checkpoint_dir).glob("*.safetensors"))
    if not files:
        raise ValueError(f"{str(checkpoint_dir)!r} has no safetensors file: save the model with save_pretrained "
                         "or save_packed first.")
    packed_keys = []
    for path in files:
        with open(path, "rb") as handle:  # the JSON header only: no tensor is read
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        packed_keys += [key for key in header if key.endswith(".weight_packed")]
    if checkpoint_format == "packed" and not packed_keys:
        raise ValueError(
            f"{str(checkpoint_dir)!r} is marked packed (config.json checkpoint_format='packed') but its safetensors "
            "hold unpacked weights (no `.weight_packed` tensor): this is an unpacked, latent model labelled packed. "
            "Save it with `save_pretrained` and publish it with packed=True (it is packed on the way), or pack it "
            "with `model.save_packed` / `python -m modeling_ternary.pack`."
        )
    if checkpoint_format == "latent" and packed_keys:
        raise ValueError(
            f"{str(checkpoint_dir)!r} is marked latent (config.json checkpoint_format='latent') but holds packed "
            f"tensors ({packed_keys[0]}, ...): its config does not belong to these weights."
        )


def _load_tokenizer(checkpoint: Path, tokenizer) -> PreTrainedTokenizerBase:
    if isinstance(tokenizer, PreTrainedTokenizerBase):
        return tokenizer
    source = Path(tokenizer) if tokenizer is not None else checkpoint
    if not source.is_dir() or not any((source / name).is_file() for name in TOKENIZER_FILES):
        raise ValueError(
            f"No tokenizer in {str(source)!r} (none of {', '.join(TOKENIZER_FILES)}): a release without one cannot "
            "be used. Save it there with `tokenizer.save_pretrained(...)` or pass `tokenizer=` / `--tokenizer`."
        )
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"The tokenizer in {str(source)!r} could not be loaded: {error}") from error


def _as_checkpoint_dir(checkpoint) -> Path:
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"`checkpoint` must be the path of a checkpoint directory, got {type(checkpoint).__name__}.")
    path = Path(checkpoint)
    if not (path / "config.json").is_file():
        raise ValueError(f"`checkpoint` must be a local checkpoint directory with a config.json, got {str(path)!r}.")
    return path


def _dtype_name(dtype) -> str:
    name = str(dtype).removeprefix("torch.") if dtype is not None else "float32"
    return name if name in FLOAT_DTYPES else "bfloat16"


def main(argv: list[str] | None = None) -> CommitInfo:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="local latent or packed checkpoint directory")
    parser.add_argument("repo_id", help="Hub repository, namespace/name")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--packed", dest="packed", action="store_true", default=True,
                      help="upload packed weights (default; a latent checkpoint is packed)")
    kind.add_argument("--latent", dest="packed", action="store_false", help="upload the latent weights")
    parser.add_argument("--layout", choices=[layout.value for layout in TernaryLayout], default=None)
    parser.add_argument("--float-dtype", choices=list(FLOAT_DTYPES), default=None)
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--revision", default=None, help="branch to commit to (created if missing)")
    parser.add_argument("--commit-message", default=None)
    parser.add_argument("--report", default=None, help="report.json of examples/main_job.py, for the model card")
    parser.add_argument("--benchmark", default=None, help="benchmarks/results/inference_speed.json, for the card")
    parser.add_argument("--tokenizer", default=None, help="directory of the tokenizer (default: CHECKPOINT's)")
    parser.add_argument("--output-dir", default=None, help="keep the release directory here")
    parser.add_argument("--license", default="apache-2.0")
    args = parser.parse_args(argv)
    info = push_to_hub(
        args.checkpoint, args.repo_id, packed=args.packed, private=args.private, revision=args.revision,
        commit_message=args.commit_message, output_dir=args.output_dir, layout=args.layout,
        float_dtype=args.float_dtype, tokenizer=args.tokenizer, report=args.report, benchmark=args.benchmark,
        license=args.license,
    )
    print(f"Pushed {args.checkpoint} ({'packed' if args.packed else 'latent'}) to {args.repo_id}: {info.commit_url}")
    return info


if __name__ == "__main__":
    main()
