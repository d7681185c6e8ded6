"""GGUF export, so that llama.cpp runs Ternary models: `export_gguf(...)` and

    python -m modeling_ternary.gguf CHECKPOINT OUT.gguf [--type tq2_0|tq1_0|f16|f32] [--tokenizer PATH | --no-tokenizer]

The file is a plain GGUF "llama" model, written with the `gguf` package of llama.cpp's authors. Mapping:

| Ternary (Llama names)                            | GGUF tensor             | GGUF type (tq2_0 / tq1_0 / f16 / f32)  |
|--------------------------------------------------|-------------------------|----------------------------------------|
| model.embed_tokens.weight (vocab, hidden)        | token_embd.weight       | F16 / F16 / F16 / F32                  |
| model.layers.N.input_layernorm.weight (hidden,)  | blk.N.attn_norm.weight  | F32                                    |
| model.layers.N.self_attn.{q,k,v,o}_proj.weight   | blk.N.attn_{q,k,v,output}.weight | TQ2_0 / TQ1_0 / F16 / F32     |
| model.layers.N.post_attention_layernorm.weight   | blk.N.ffn_norm.weight   | F32                                    |
| model.layers.N.mlp.{gate,up,down}_proj.weight    | blk.N.ffn_{gate,up,down}.weight | TQ2_0 / TQ1_0 / F16 / F32      |
| *_proj.bias (attention_bias / mlp_bias)          | blk.N.<same>.bias       | F32                                    |
| model.norm.weight (hidden,)                      | output_norm.weight      | F32                                    |
| lm_head.weight (vocab, hidden)                   | output.weight (none if tied) | F16 / F16 / F16 / F32             |

- Ternary weights are written as the dequantized matrix `codes * g`. TQ2_0/TQ1_0 blocks hold 256 values of one row
  with one float16 scale, the block's absmax; every non-zero entry of a row is +-g (g per tensor or per row), so the
  block scale is g rounded to float16 and the stored codes are exactly `TernaryLinear.ternary_codes()`. The export
  decodes every TQ tensor back and checks this. TQ rows must therefore be a multiple of 256 long (in_features).
- q_proj/k_proj rows are permuted like llama.cpp's convert_hf_to_gguf.py (`LlamaModel.permute`): Hugging Face's
  RoPE rotates halves of each head, llama.cpp's "llama" RoPE rotates adjacent pairs.
- Tied embeddings: output.weight is omitted, as llama.cpp's converter does; llama.cpp then reuses token_embd.
- Vocabulary: WordPiece tokenizers only, written as llama.cpp's converter writes BERT vocabularies
  (tokenizer.ggml.model "bert", i.e. llama.cpp's WPM tokenizer): "##" pieces lose the "##", other non-control
  tokens get a U+2581 prefix; ids the tokenizer lacks (config.vocab_size larger) become unused "[PAD<id>]" tokens.
  `tokenizer.ggml.add_bos_token` is written false: llama.cpp's WPM tokenizer wraps text in [CLS] ... [SEP]
  whenever it adds special tokens, which would end every prompt; start prompts with the literal "[CLS]" instead.
  Without a tokenizer (`tokenizer=False`, `--no-tokenizer`), tokenizer.ggml.model is "none": llama.cpp then
  accepts token ids only.
- Refused (ValueError): an LM-head bias, a non-SiLU `hidden_act`, a RoPE type other than "default", a model in
  quantization warm-up (quant_strength < 1) or in inference mode, full-precision projections with a TQ type (use
  f16), TQ rows not a multiple of 256, a TQ scale below float16's normal range, a non-WordPiece tokenizer.
- Not carried over: `activation_quant` (llama.cpp rounds activations itself: to 8 bits per 256-value block (Q8_K)
  against TQ weights, to float16 against F16 weights), dropout (inference only).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PreTrainedConfig, PreTrainedTokenizerBase

try:
    import gguf  # llama.cpp's own writer (gguf-py), an optional dependency
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("GGUF export needs the `gguf` package: pip install 'gguf==0.19.0'.") from error

from .modeling_ternary import TernaryForCausalLM
from .ternary_linear import TernaryLinear

# --type -> (GGUF type of the projections, GGUF type of token_embd/output, general.file_type)
TENSOR_TYPES = {
    "tq2_0": (gguf.GGMLQuantizationType.TQ2_0, gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_TQ2_0),
    "tq1_0": (gguf.GGMLQuantizationType.TQ1_0, gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_TQ1_0),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "f32": (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
}
TERNARY_GGUF_TYPES = (gguf.GGMLQuantizationType.TQ2_0, gguf.GGMLQuantizationType.TQ1_0)
TQ_BLOCK = gguf.QK_K  # 256 values per TQ block
PROJECTIONS = {  # module path inside a decoder layer -> GGUF tensor name inside blk.N
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
FP16_MIN_NORMAL = float(np.finfo(np.float16).tiny)  # 6.1e-05


def export_gguf(
    model_or_checkpoint: TernaryForCausalLM | str | os.PathLike,
    output_path: str | os.PathLike,
    tensor_type: str = "tq2_0",
    tokenizer: PreTrainedTokenizerBase | bool | None = None,
) -> Path:
    """Write a Ternary causal LM as a GGUF "llama" file that llama.cpp loads.

    Args:
        model_or_checkpoint: a `TernaryForCausalLM` (latent weights in memory) or the path of a latent or packed
            checkpoint directory (loaded in float32; its tokenizer is used when it has one).
        output_path: the .gguf file to write (overwritten). Nothing is written when a check fails.
        tensor_type: `"tq2_0"` (2 bits a weight), `"tq1_0"` (1.69 bits), `"f16"` or `"f32"` for the projections;
            see the module docstring for the other tensors.
        tokenizer: a WordPiece transformers tokenizer; `None` takes the checkpoint's own (required for a model
            object); `False` writes no vocabulary (tokenizer.ggml.model "none").

    Returns:
        `output_path` as a `Path`.

    Raises:
        ValueError: for what GGUF "llama" or the chosen type cannot express (see the module docstring), naming the
            field or tensor, its value and what is allowed.

    Example:
        >>> export_gguf("runs/ternary-132m", "ternary-132m-tq2_0.gguf", tensor_type="tq2_0")  # doctest: +SKIP
        >>> export_gguf(model, "model.gguf", tensor_type="f16", tokenizer=tokenizer)  # doctest: +SKIP
    """
    key = str(tensor_type).lower()
    if key not in TENSOR_TYPES:
        raise ValueError(f"`tensor_type` must be one of {list(TENSOR_TYPES)}, got {tensor_type!r}.")
    matrix_type, embedding_type, file_type = TENSOR_TYPES[key]
    model, tokenizer, name = _resolve_inputs(model_or_checkpoint, tokenizer)
    config = model.config
    _check_expressible(model)
    tensors = _gguf_tensors(model, matrix_type, embedding_type)  # every check runs before the file is opened
    vocab = None if tokenizer is False else wordpiece_vocab(tokenizer, config)

    output_path = Path(output_path)
    partial = output_path.with_name(output_path.name + ".partial")  # renamed once complete
    writer = gguf.GGUFWriter(str(partial), arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    try:
        _write_hyperparameters(writer, config, file_type, name)
        _write_vocab(writer, vocab)
        for tensor_name, array, raw_dtype in tensors:
            writer.add_tensor(tensor_name, array, raw_dtype=raw_dtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    os.replace(partial, output_path)
    return output_path


def _resolve_inputs(model_or_checkpoint, tokenizer):
    """(model, tokenizer or False, general.name) from a model object or a checkpoint path."""
    if isinstance(model_or_checkpoint, nn.Module):
        if not isinstance(model_or_checkpoint, TernaryForCausalLM):
            raise ValueError(f"`model_or_checkpoint` must be a TernaryForCausalLM (GGUF llama needs the LM head), "
                             f"got {type(model_or_checkpoint).__name__}.")
        if tokenizer is None:
            raise ValueError(
                "Pass the model's WordPiece tokenizer as `tokenizer=` (a model object carries none), or "
                "`tokenizer=False` for a GGUF without vocabulary (llama.cpp then accepts token ids only)."
            )
        name = Path(str(model_or_checkpoint.config.name_or_path or "ternary")).name or "ternary"
        return model_or_checkpoint, tokenizer, name
    path = str(model_or_checkpoint)
    config = AutoConfig.from_pretrained(path)
    if getattr(config, "model_type", None) != "ternary":
        raise ValueError(f"{path!r} is not a Ternary checkpoint: model_type={config.model_type!r}, expected 'ternary'.")
    architectures = config.architectures or ["TernaryForCausalLM"]
    if "TernaryForCausalLM" not in architectures:
        raise ValueError(f"{path!r} holds a {architectures[0]}; GGUF export needs a TernaryForCausalLM (LM head).")
    model, info = TernaryForCausalLM.from_pretrained(path, dtype=torch.float32, output_loading_info=True)
    if info.get("missing_keys"):
        raise ValueError(f"Checkpoint {path!r} lacks tensor(s) {sorted(info['missing_keys'])}: cannot export it.")
    if tokenizer is None:
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError, TypeError) as error:
            raise ValueError(
                f"Checkpoint {path!r} has no tokenizer ({error.__class__.__name__}): pass `tokenizer=` (CLI: "
                "--tokenizer PATH), or `tokenizer=False` (--no-tokenizer) for a GGUF that accepts token ids only."
            ) from error
    return model, tokenizer, Path(path.rstrip("/")).name


def _check_expressible(model: TernaryForCausalLM) -> None:
    config = model.config
    if getattr(model, "is_inference", False):
        raise ValueError("The model is in inference mode (packed buffers, fused q/k/v and gate/up): export the "
                         "checkpoint path, or a model loaded without `inference=True`.")
    if config.lm_head_bias or model.lm_head.bias is not None:
        raise ValueError("`lm_head_bias=True`: GGUF llama has no output bias tensor (llama.cpp would silently drop "
                         "it). Only models with `lm_head_bias=False` can be exported.")
    if config.hidden_act not in ("silu", "swish"):
        raise ValueError(f"`hidden_act` is {config.hidden_act!r}; GGUF llama's MLP is SwiGLU: only 'silu' is allowed.")
    rope = dict(config.rope_parameters or {})
    if rope.get("rope_type", "default") != "default":
        raise ValueError(f"`rope_parameters['rope_type']` is {rope['rope_type']!r}; only 'default' RoPE is exported.")
    for name, module in model.named_modules():
        if isinstance(module, TernaryLinear) and (module.is_packed or module.quant_strength < 1.0):
            raise ValueError(
                f"{name} has quant_strength={module.quant_strength} (quantization warm-up) or packed weights: "
                "the GGUF holds the fully ternary model, so export only models with quant_strength 1.0."
            )


def _gguf_tensors(model: TernaryForCausalLM, matrix_type, embedding_type) -> list[tuple[str, np.ndarray, object]]:
    """Every GGUF tensor as (name, numpy array, raw GGML type or None), all checks done."""
    config = model.config
    tensors = [("token_embd.weight", *_float_tensor("token_embd.weight", model.model.embed_tokens.weight,
                                                    embedding_type))]
    for index, layer in enumerate(model.model.layers):
        prefix = f"blk.{index}"
        tensors += [(f"{prefix}.attn_norm.weight", _f32(layer.input_layernorm.weight), None),
                    (f"{prefix}.ffn_norm.weight", _f32(layer.post_attention_layernorm.weight), None)]
        for path, short in PROJECTIONS.items():
            module = layer.get_submodule(path)
            gguf_name = f"{prefix}.{short}"
            heads = {"attn_q": config.num_attention_heads, "attn_k": config.num_key_value_heads}.get(short)
            tensors.append((f"{gguf_name}.weight", *_projection_tensor(
                f"model.layers.{index}.{path}", f"{gguf_name}.weight", module, matrix_type, heads)))
            if module.bias is not None:
                bias = _f32(module.bias)  # (out,)
                tensors.append((f"{gguf_name}.bias", _permute_rope_rows(bias, heads) if heads else bias, None))
    tensors.append(("output_norm.weight", _f32(model.model.norm.weight), None))
    if not config.tie_word_embeddings:
        tensors.append(("output.weight", *_float_tensor("output.weight", model.lm_head.weight, embedding_type)))
    return tensors


def _projection_tensor(module_name: str, gguf_name: str, module: nn.Linear, qtype, heads: int | None):
    """(array, raw_dtype) of one projection; q/k rows permuted for llama.cpp's RoPE (`heads` = their head count)."""
    out_features, in_features = module.weight.shape
    if not isinstance(module, TernaryLinear):
        if qtype in TERNARY_GGUF_TYPES:
            raise ValueError(
                f"{module_name} is full precision (not in `config.ternary_modules`), and {qtype.name} can only "
                "hold ternary weights: export with tensor_type='f16' (--type f16) or 'f32'."
            )
        weight = _f32(module.weight)  # (out, in)
        return _float_tensor(gguf_name, _permute_rope_rows(weight, heads) if heads else weight, qtype)
    if qtype in TERNARY_GGUF_TYPES and in_features % TQ_BLOCK:
        raise ValueError(
            f"{module_name} ({gguf_name}) has in_features={in_features}, not a multiple of {TQ_BLOCK}: {qtype.name} "
            f"stores each row in blocks of {TQ_BLOCK} values. Export this model with tensor_type='f16' (--type f16)."
        )
    codes = module.ternary_codes().cpu().numpy()  # (out, in) int8 in {-1, 0, +1}
    scale = np.broadcast_to(_f32(module.current_scale()).reshape(-1, 1), (out_features, 1))  # (out, 1)
    if heads:
        codes, scale = _permute_rope_rows(codes, heads), _permute_rope_rows(np.ascontiguousarray(scale), heads)
    weight = codes.astype(np.float32) * scale  # (out, in): the dequantized ternary weight codes * g
    if qtype not in TERNARY_GGUF_TYPES:
        return _float_tensor(gguf_name, weight, qtype)
    if float(scale.min()) < FP16_MIN_NORMAL:
        raise ValueError(
            f"{module_name} has scale g={float(scale.min()):.3g}, below float16's normal range "
            f"({FP16_MIN_NORMAL:.3g}): {qtype.name} block scales are float16. Export with tensor_type='f32'."
        )
    data = gguf.quants.quantize(weight, qtype)  # (out, in / 256 * bytes per block) uint8
    # The block absmax is g (or 0), so the codes come out exactly and the block scale is float16(g): check it.
    decoded = gguf.quants.dequantize(data, qtype)  # (out, in) float32
    if not np.array_equal(decoded, codes * scale.astype(np.float16).astype(np.float32)):
        raise RuntimeError(f"{gguf_name}: {qtype.name} did not reproduce the ternary codes of {module_name}.")
    return data, qtype


def _float_tensor(gguf_name: str, value, qtype) -> tuple[np.ndarray, object]:
    array = _f32(value) if isinstance(value, torch.Tensor) else value
    if qtype == gguf.GGMLQuantizationType.F16:
        array = array.astype(np.float16)
        if not np.isfinite(array).all():
            raise ValueError(f"{gguf_name} overflows float16 (|value| > 65504): export with tensor_type='f32'.")
    return np.ascontiguousarray(array), None


def _f32(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).numpy()


def _permute_rope_rows(rows: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's `LlamaModel.permute`: rows (n_head * head_dim, ...) of each head from [half 1, half 2] order to
    interleaved pairs (row i of half 1 next to row i of half 2), so that llama.cpp's pairwise RoPE equals HF's."""
    shape = rows.shape
    return rows.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def wordpiece_vocab(tokenizer: PreTrainedTokenizerBase, config: PreTrainedConfig) -> dict:
    """The GGUF vocabulary of a WordPiece tokenizer, as llama.cpp's converter writes a BERT vocabulary.

    Args:
        tokenizer: a transformers tokenizer backed by a `tokenizers` WordPiece model with "##" continuations.
        config: the model config (`vocab_size`, and `bos/eos/pad_token_id`, which win over the tokenizer's).

    Returns:
        A dict with `tokens` (list of str, length `vocab_size`), `token_types` (list of `gguf.TokenType`),
        `special_ids` (e.g. `{"bos": 101, ...}`) and `lowercase` / `strip_accents` (the normalizer's settings).

    Example:
        >>> bert = AutoTokenizer.from_pretrained("bert-base-uncased")  # doctest: +SKIP
        >>> wordpiece_vocab(bert, config)["tokens"][1996]  # doctest: +SKIP
        '▁the'
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    state = json.loads(backend.to_str()) if backend is not None else {}
    model_state = state.get("model") or {}
    if model_state.get("type") != "WordPiece" or model_state.get("continuing_subword_prefix") != "##":
        kind = model_state.get("type") or type(tokenizer).__name__
        raise ValueError(
            f"The tokenizer is a {kind} tokenizer; the GGUF export writes WordPiece vocabularies with '##' "
            "continuations only (llama.cpp's 'bert' WPM tokenizer), such as bert-base-uncased's. Pass that "
            "tokenizer, or tokenizer=False (--no-tokenizer) for a GGUF that accepts token ids only."
        )
    vocab = tokenizer.get_vocab()  # token -> id, added tokens included
    if len(vocab) > config.vocab_size or max(vocab.values()) >= config.vocab_size:
        raise ValueError(
            f"The tokenizer has {len(vocab)} tokens (largest id {max(vocab.values())}), more than the model's "
            f"`vocab_size` ({config.vocab_size}): it belongs to another model."
        )
    by_id = {index: token for token, index in vocab.items()}
    added = {index: entry for index, entry in getattr(tokenizer, "added_tokens_decoder", {}).items()}
    special = set(tokenizer.all_special_ids)
    tokens, types = [], []
    for index in range(config.vocab_size):
        token = by_id.get(index)
        if token is None:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif index in special or (index in added and added[index].special):
            tokens.append(token)  # control tokens ([CLS], [SEP], ...) keep their text
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(token[2:] if token.startswith("##") else "\u2581" + token)
            types.append(gguf.TokenType.USER_DEFINED if index in added else gguf.TokenType.NORMAL)
    lowercase, strip_accents = _normalizer_options(state.get("normalizer"))
    special_ids = {
        "bos": _first_id(config.bos_token_id, tokenizer.bos_token_id, tokenizer.cls_token_id),
        "eos": _first_id(config.eos_token_id, tokenizer.eos_token_id, tokenizer.sep_token_id),
        "unk": tokenizer.unk_token_id, "sep": tokenizer.sep_token_id,
        "pad": _first_id(config.pad_token_id, tokenizer.pad_token_id),
        "cls": tokenizer.cls_token_id, "mask": tokenizer.mask_token_id,
    }
    return {"tokens": tokens, "token_types": types, "lowercase": lowercase, "strip_accents": strip_accents,
            "special_ids": {key: value for key, value in special_ids.items() if value is not None}}


def _first_id(*candidates) -> int | None:
    """The first candidate that is an id (a list, like `eos_token_id=[2, 3]`, gives its first element)."""
    for candidate in candidates:
        candidate = candidate[0] if isinstance(candidate, list) and candidate else candidate
        if isinstance(candidate, int):
            return candidate
    return None


def _normalizer_options(normalizer: dict | None) -> tuple[bool, bool]:
    """(lowercase, strip_accents) of a `tokenizers` normalizer, as JSON; BertNormalizer's strip_accents=None
    follows lowercase, as in `tokenizers`."""
    if not normalizer:
        return False, False
    if normalizer.get("type") == "BertNormalizer":
        lowercase = bool(normalizer.get("lowercase", True))
        strip = normalizer.get("strip_accents")
        return lowercase, lowercase if strip is None else bool(strip)
    parts = normalizer.get("normalizers", []) if normalizer.get("type") == "Sequence" else [normalizer]
    kinds = {part.get("type") for part in parts}
    return "Lowercase" in kinds, "StripAccents" in kinds


def _write_hyperparameters(writer: gguf.GGUFWriter, config, file_type, name: str) -> None:
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_rope_freq_base(float((config.rope_parameters or {}).get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(int(file_type))
    if file_type in (gguf.LlamaFileType.MOSTLY_TQ2_0, gguf.LlamaFileType.MOSTLY_TQ1_0):
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _write_vocab(writer: gguf.GGUFWriter, vocab: dict | None) -> None:
    if vocab is None:
        writer.add_tokenizer_model("none")  # llama.cpp: LLAMA_VOCAB_TYPE_NONE, vocab_size dummy tokens
        return
    writer.add_tokenizer_model("bert")  # llama.cpp's WPM tokenizer
    writer.add_tokenizer_pre("default")
    writer.add_token_list(vocab["tokens"])
    writer.add_token_types(vocab["token_types"])
    ids = vocab["special_ids"]
    for key, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                     ("unk", writer.add_unk_token_id), ("sep", writer.add_sep_token_id),
                     ("pad", writer.add_pad_token_id), ("mask", writer.add_mask_token_id)):
        if key in ids:
            add(ids[key])
    if "cls" in ids:
        writer.add_uint32("tokenizer.ggml.cls_token_id", ids["cls"])  # informative: llama.cpp uses bos as CLS
    writer.add_add_bos_token(False)  # see the module docstring: WPM would also append [SEP] to every prompt
    writer.add_add_eos_token(False)
    writer.add_add_sep_token(False)
    writer.add_bool("tokenizer.ggml.normalizer.lowercase", vocab["lowercase"])
    writer.add_bool("tokenizer.ggml.normalizer.strip_accents", vocab["strip_accents"])


def main(argv: list[str] | None = None) -> None:
    """Command line: `python -m modeling_ternary.gguf CHECKPOINT OUT.gguf [--type ...] [--tokenizer PATH |
    --no-tokenizer]`; an unknown --type exits with status 2.

    Args:
        argv: the arguments (default: `sys.argv[1:]`).

    Example:
        >>> main(["runs/ternary-132m", "ternary-132m.gguf", "--type", "tq1_0"])  # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(description="Export a Ternary causal LM checkpoint to GGUF for llama.cpp.")
    parser.add_argument("checkpoint", help="latent or packed Ternary checkpoint directory")
    parser.add_argument("output", help="the .gguf file to write")
    parser.add_argument("--type", dest="tensor_type", type=str.lower, choices=list(TENSOR_TYPES), default="tq2_0",
                        help="type of the ternary projections (default tq2_0)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--tokenizer", help="tokenizer directory, when the checkpoint has none")
    source.add_argument("--no-tokenizer", action="store_true", help="write no vocabulary (token ids only)")
    args = parser.parse_args(argv)
    tokenizer = False if args.no_tokenizer else AutoTokenizer.from_pretrained(args.tokenizer) if args.tokenizer \
        else None
    output = export_gguf(args.checkpoint, args.output, args.tensor_type, tokenizer=tokenizer)
    print(f"Wrote {output} ({args.tensor_type}, {output.stat().st_size / 1e6:.2f} MB)")


__all__ = ["TENSOR_TYPES", "export_gguf", "main", "wordpiece_vocab"]


if __name__ == "__main__":
    main()
