"""Packed checkpoints: writing them (`save_packed`) and loading them safely (`load_pretrained`).

A packed checkpoint is an ordinary `save_pretrained` directory whose config says `checkpoint_format="packed"`,
`packing_layout` and `packing_format_version`, and whose safetensors hold, for every ternary layer,
`<layer>.weight_packed` (uint8 codes, see `packing.py`) and `<layer>.weight_scale` (float32 absmean scale) instead of
`<layer>.weight`; every other tensor (embeddings, norms, head, biases) is stored in a chosen float dtype. The
safetensors metadata repeats the format (`ternary_checkpoint_format`, `ternary_packing_layout`,
`ternary_packing_format_version`).

`from_pretrained` of a Ternary model loads such a checkpoint into packed buffers, checks every tensor, and unpacks
them into latent weights that reproduce the packed model exactly (`latent.py`), so the loaded model can be used and
fine-tuned like one loaded from a latent checkpoint.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .packing import PACKING_FORMAT_VERSION, as_layout, pack_ternary
from .quantization import ternary_codes
from .ternary_linear import TernaryLinear

PACKED_TENSOR_SUFFIXES = (".weight_packed", ".weight_scale")
FLOAT_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def save_packed(
    model,
    save_directory: str | os.PathLike,
    layout: str = "2bit",
    float_dtype: torch.dtype | str = torch.bfloat16,
    model_card: bool = True,
    **save_kwargs,
) -> Path:
    """Write `model` as a packed checkpoint (the release format), with a model card; `model` is not changed.

    Args:
        model: a `TernaryPreTrainedModel` with latent weights.
        save_directory: output directory (created if needed).
        layout: `"2bit"` (4 codes a byte, BitNet-compatible) or `"1.6bit"` (5 codes a byte, base 3).
        float_dtype: dtype of every tensor that is not a ternary code or scale (`torch.bfloat16` by default).
        model_card: write `README.md`, the model card of `model_card.py` (format, sizes, how to load; metrics
            when given a training report there). False leaves the card to the caller.
        **save_kwargs: passed to `save_pretrained` (e.g. `push_to_hub=True`, `max_shard_size`).

    Returns:
        The directory, as a `Path`.

    Example:
        >>> save_packed(model, "ternary-132m-packed", layout="1.6bit")  # doctest: +SKIP
        >>> AutoModelForCausalLM.from_pretrained("ternary-132m-packed", dtype=torch.float32)  # doctest: +SKIP
    """
    if getattr(model, "is_inference", False):
        raise ValueError("`model` is in inference mode and holds no latent weights: pack the checkpoint it came from.")
    layout = as_layout(layout)
    float_dtype = _as_float_dtype(float_dtype)
    ternary_layers = _ternary_layers(model)
    if any(layer.is_packed for layer in ternary_layers.values()):
        raise ValueError("`model` holds packed weights that were never unpacked; load it with `from_pretrained`.")
    if not ternary_layers:
        raise ValueError("`model` has no ternary layers (`config.ternary_modules` is empty): there is nothing to pack.")
    packed_config = copy.deepcopy(model.config)
    packed_config.checkpoint_format = "packed"
    packed_config.packing_layout = layout.value
    packed_config.packing_format_version = PACKING_FORMAT_VERSION
    packed_config.dtype = float_dtype
    state = _packed_state_dict(model, ternary_layers, layout, float_dtype)
    # Build the packed module structure (on the meta device: no memory, no init) and save it through
    # save_pretrained, so that config, generation config, auto_map and remote code are written as for any model.
    with torch.device("meta"):
        packed_model = type(model)(packed_config)
    packed_model.load_state_dict(state, strict=True, assign=True)
    packed_model.save_pretrained(save_directory, **save_kwargs)
    _write_format_metadata(Path(save_directory), layout.value)
    if model_card:
        _write_model_card(Path(save_directory))
    return Path(save_directory)


def _write_model_card(directory: Path) -> None:
    # Imported by name at run time, not with `from .model_card import ...`: this file is copied to the Hub as remote
    # code together with the modules it imports, and model_card.py (jinja2, huggingface_hub) must not be. Where the
    # code runs as remote code, model_card.py is absent and no card is written.
    try:
        model_card = importlib.import_module(".model_card", __package__)
    except ModuleNotFoundError as error:
        if error.name != f"{__package__}.model_card":
            raise
        return
    model_card.write_model_card(directory)


def _packed_state_dict(model, ternary_layers: dict, layout, float_dtype: torch.dtype) -> dict[str, torch.Tensor]:
    state = {}
    for key, value in model.state_dict().items():
        module_name, _, attribute = key.rpartition(".")
        if module_name in ternary_layers and attribute == "weight":
            layer = ternary_layers[module_name]
            scale = layer.current_scale()  # computed once for the codes and the stored scale
            codes = ternary_codes(layer.weight.detach(), scale).to(torch.int8)
            state[f"{module_name}.weight_packed"] = pack_ternary(codes, layout)
            state[f"{module_name}.weight_scale"] = scale.to(torch.float32)
        elif value.is_floating_point():
            state[key] = value.detach().to(float_dtype)
        else:
            state[key] = value.detach()
    return state


def _write_format_metadata(directory: Path, layout: str) -> None:
    """Add the format to the metadata of every safetensors file in `directory` (rewrites the small files)."""
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(path, framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        metadata.update(
            ternary_checkpoint_format="packed",
            ternary_packing_layout=layout,
            ternary_packing_format_version=str(PACKING_FORMAT_VERSION),
        )
        save_file(tensors, path, metadata=metadata)


def load_pretrained(base_from_pretrained, *args, inference: bool = False, **kwargs):
    """`PreTrainedModel.from_pretrained`, then the checks and unpacking of a packed checkpoint.

    Every checkpoint tensor whose shape does not match the model is an error naming it (unless the caller passed
    `ignore_mismatched_sizes=True`, which never applies to packed tensors); so is a missing packed tensor.
    """
    wants_loading_info = kwargs.pop("output_loading_info", False)
    ignore_mismatched_sizes = kwargs.pop("ignore_mismatched_sizes", False)
    try:
        model, loading_info = base_from_pretrained(
            *args, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
        )
    except SafetensorError as error:
        source = args[0] if args else kwargs.get("pretrained_model_name_or_path")
        raise ValueError(f"Could not read the checkpoint {source!r}: {describe_damaged_safetensors(source) or error}") \
            from error
    _raise_on_bad_keys(model, loading_info, ignore_mismatched_sizes)
    if inference:
        model.to_inference()
    elif model.config.checkpoint_format == "packed":
        unpack_packed_weights(model)
    return (model, loading_info) if wants_loading_info else model


def describe_damaged_safetensors(directory) -> str | None:
    """For a local checkpoint directory, say which safetensors file is damaged and which tensors it cuts off."""
    if directory is None or not Path(directory).is_dir():
        return None
    for path in sorted(Path(directory).glob("*.safetensors")):
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                return f"{path.name} is truncated: {size} bytes, shorter than its 8-byte header length."
            header_length = struct.unpack("<Q", prefix)[0]
            if 8 + header_length > size:
                return f"{path.name} is truncated inside its header ({size} bytes, header ends at {8 + header_length})."
            header = json.loads(handle.read(header_length))
        data_start = 8 + header_length
        cut = [name for name, info in header.items()
               if name != "__metadata__" and data_start + info["data_offsets"][1] > size]
        if cut:
            return (f"{path.name} is truncated ({size} bytes): tensor(s) {', '.join(sorted(cut))} extend past the "
                    "end of the file.")
    return None


def _raise_on_bad_keys(model, loading_info: dict, ignore_mismatched_sizes: bool) -> None:
    mismatched = []
    for entry in loading_info.get("mismatched_keys", []):
        key = entry[0] if isinstance(entry, (tuple, list)) else entry
        if ignore_mismatched_sizes and not key.endswith(PACKED_TENSOR_SUFFIXES):
            continue
        shapes = f" (checkpoint {tuple(entry[1])}, model {tuple(entry[2])})" if isinstance(entry, (tuple, list)) \
            and len(entry) >= 3 else ""
        mismatched.append(f"{key}{shapes}")
    if mismatched:
        raise ValueError(
            f"Checkpoint tensors do not match the shapes the config implies: {', '.join(mismatched)}. "
            "The checkpoint is corrupt or belongs to another configuration."
        )
    missing_packed = [key for key in loading_info.get("missing_keys", []) if key.endswith(PACKED_TENSOR_SUFFIXES)]
    if missing_packed:
        raise ValueError(f"Packed checkpoint is missing tensor(s): {', '.join(sorted(missing_packed))}.")


def unpack_packed_weights(model) -> None:
    """Unpack every packed ternary layer of `model` in place and mark its config as latent.

    The latent dtype is the dtype of the model's other floating-point parameters.
    """
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    for name, layer in _ternary_layers(model).items():
        if layer.is_packed:
            layer.unpack_(name=name, dtype=dtype)
    model.config.checkpoint_format = "latent"
    model.config.packing_layout = None
    model.config.packing_format_version = None


def _ternary_layers(model) -> dict[str, TernaryLinear]:
    return {name: module for name, module in model.named_modules() if isinstance(module, TernaryLinear)}


def _as_float_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, str):
        if dtype not in FLOAT_DTYPES:
            raise ValueError(f"`float_dtype` must be one of {list(FLOAT_DTYPES)}, got {dtype!r}.")
        return FLOAT_DTYPES[dtype]
    if dtype not in FLOAT_DTYPES.values():
        raise ValueError(f"`float_dtype` must be one of {list(FLOAT_DTYPES.values())}, got {dtype!r}.")
    return dtype


__all__ = ["describe_damaged_safetensors", "load_pretrained", "save_packed", "unpack_packed_weights"]
