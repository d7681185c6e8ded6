"""GGUF export (`modeling_ternary/gguf.py`): llama.cpp, through llama-cpp-python 0.3.36, loads the exported files
and agrees with our model: next-token logits, greedy decoding, tokenization; the TQ codes decode back to ours.

Models: hidden 256 (TQ rows are 256-value blocks), 2 layers, intermediate 512, 4 heads, a ~300-token WordPiece
vocabulary built offline with `tokenizers`. llama-cpp-python is a test dependency: without it the tests that run
llama.cpp fail with an ImportError (they are not skipped).
"""

import itertools
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertTokenizerFast

import modeling_ternary.gguf as gguf_export
from modeling_ternary import TernaryConfig, TernaryForCausalLM, TernaryForSequenceClassification, TernaryLinear
from modeling_ternary import set_quant_strength
from modeling_ternary.gguf import export_gguf, main
from tests.conftest import tiny_config, tiny_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4
PAD, UNK, CLS, SEP, MASK = range(5)
CORPUS = (
    "the quick brown fox jumps over the lazy dog . a ternary model stores every weight as minus one , zero or plus "
    "one , and a single scale per matrix . llama . cpp runs such models on ordinary processors with packed two bit "
    "blocks . wordpiece splits unknown words into pieces that continue with hashes . researchers trained language "
    "models natively with ternary weights , measured perplexity on held out documents , and compared quantized "
    "checkpoints against their full precision twins . tokenizers normalize text , lowercase letters , strip accents "
    "and separate punctuation before matching the longest known prefix of every remaining word . "
)
PROMPT = "the quick brown fox jumps over the lazy dog . a ternary model stores every weight as"
MATRICES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
MODULES = dict(zip(MATRICES, ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")))


def wordpiece_tokenizer() -> BertTokenizerFast:
    """A bert-base-uncased-style WordPiece tokenizer (lowercasing BertNormalizer, "##" pieces), deterministic:
    specials, characters, "##" characters, corpus words up to 6 letters, and longer words only as pieces (3 to 5
    letters + "##" rest), so that they tokenize into a word-initial piece and a "##" piece. 279 tokens."""
    words = CORPUS.split()
    characters = sorted(set("".join(words)))
    short = sorted({word for word in words if len(word) <= 6})
    pieces = sorted({piece for word in words if len(word) > 6
                     for k in (3, 4, 5) for piece in (word[:k], "##" + word[k:])})
    tokens = list(dict.fromkeys(SPECIALS + characters + ["##" + c for c in characters] + short + pieces))
    backend = Tokenizer(models.WordPiece(vocab={token: index for index, token in enumerate(tokens)},
                                         unk_token="[UNK]", continuing_subword_prefix="##"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", CLS), ("[SEP]", SEP)])
    return BertTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                             cls_token="[CLS]", mask_token="[MASK]")


def gguf_config(vocab_size: int = 300, **overrides) -> TernaryConfig:
    kwargs = dict(vocab_size=vocab_size, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=256, pad_token_id=PAD, bos_token_id=CLS,
                  eos_token_id=SEP)
    kwargs.update(overrides)
    return TernaryConfig(**kwargs)


@pytest.fixture(scope="module")
def tokenizer() -> BertTokenizerFast:
    return wordpiece_tokenizer()


@pytest.fixture(scope="module")
def trained(tokenizer) -> TernaryForCausalLM:
    """The 2-layer model after 24 AdamW steps on the corpus (loss ~5.7 -> ~0.3): peaked, non-flat logits."""
    torch.manual_seed(0)
    model = TernaryForCausalLM(gguf_config(len(tokenizer)))
    corpus = torch.tensor(tokenizer(CORPUS * 4, add_special_tokens=False).input_ids)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(24):
        starts = torch.randint(0, len(corpus) - 47, (8,))
        batch = torch.stack([torch.cat([torch.tensor([CLS]), corpus[s:s + 47]]) for s in starts])  # (8, 48)
        loss = model(batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 1.5
    return model.eval()


@pytest.fixture(scope="module")
def exported(trained, tokenizer, tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("gguf")
    return {kind: export_gguf(trained, directory / f"model-{kind}.gguf", kind, tokenizer=tokenizer)
            for kind in ("tq2_0", "tq1_0", "f16")}


def load_llama(path, **kwargs):
    import llama_cpp  # llama-cpp-python==0.3.36; a missing install fails these tests loudly

    return llama_cpp.Llama(model_path=str(path), n_ctx=256, n_batch=256, logits_all=True, verbose=False, **kwargs)


def llama_logits(path, ids: list[int]) -> np.ndarray:
    """llama.cpp's logits (len(ids), vocab) for the token ids as given (llama.cpp adds no BOS to token ids)."""
    llm = load_llama(path)
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])
    finally:
        llm.close()


def our_logits(model, ids: list[int], q8k_activations: bool = False) -> np.ndarray:
    """Our logits (len(ids), vocab); with `q8k_activations`, every ternary layer's input first goes through an
    emulation of llama.cpp's Q8_K: 8-bit absmax rounding per 256-value block, the activation type of TQ matmuls."""
    def q8k(module, args):
        blocks = args[0].reshape(*args[0].shape[:-1], -1, 256)  # (..., in / 256, 256)
        amax = blocks.abs().amax(-1, keepdim=True).clamp(min=1e-30)
        return ((blocks * (127 / amax)).round().clamp(-127, 127) * (amax / 127)).reshape(args[0].shape),

    hooks = [m.register_forward_pre_hook(q8k) for m in model.modules()
             if q8k_activations and isinstance(m, TernaryLinear)]
    try:
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0].float().numpy()
    finally:
        for hook in hooks:
            hook.remove()


def relative_error(theirs: np.ndarray, ours: np.ndarray) -> float:
    """Largest, over positions, relative L2 error of the logit vector."""
    return float((np.linalg.norm(theirs - ours, axis=-1) / np.linalg.norm(ours, axis=-1)).max())


def assert_same_argmax(theirs: np.ndarray, ours: np.ndarray) -> None:
    """Same next token wherever ours is not a near-tie (top-1 minus top-2 above twice the largest logit difference:
    with other seeds, position 0 can be such a tie); such ties must stay rare."""
    top2 = np.sort(ours, axis=-1)[:, -2:]  # (positions, 2)
    decided = top2[:, 1] - top2[:, 0] > 2 * np.abs(theirs - ours).max()
    assert decided.mean() >= 0.8
    np.testing.assert_array_equal(theirs.argmax(-1)[decided], ours.argmax(-1)[decided])


def prompt_ids(tokenizer, text: str = PROMPT) -> list[int]:
    return [CLS] + tokenizer(text, add_special_tokens=False).input_ids


def assert_tq_agreement(model, path, ids) -> float:
    """TQ bound: llama.cpp rounds the input of every ternary matmul to 8 bits per 256-value block (Q8_K). The same
    rounding emulated in our model moves the logits by `emulated`; llama.cpp's own rounding, on slightly different
    inputs, is another draw of that noise, so its error must stay within 2x `emulated` plus float16 noise (0.5%)."""
    ours, theirs = our_logits(model, ids), llama_logits(path, ids)
    emulated = relative_error(our_logits(model, ids, q8k_activations=True), ours)
    error = relative_error(theirs, ours)
    print(f"{Path(path).name}: max |dlogit| {np.abs(theirs - ours).max():.4f}, max rel L2 {error:.4f} "
          f"(Q8_K emulation {emulated:.4f})")
    assert error <= 2 * emulated + 0.005 and error < 0.05
    assert_same_argmax(theirs, ours)
    return error


@pytest.mark.parametrize("kind", ["tq2_0", "tq1_0"])
def test_tq_logits_match_llama_cpp(trained, tokenizer, exported, kind):
    assert_tq_agreement(trained, exported[kind], prompt_ids(tokenizer))


def test_f16_logits_match_llama_cpp(trained, tokenizer, exported):
    # F16: weights codes * float16(g), activations rounded to float16 before each matmul, float16 KV cache: ~10
    # roundings of relative size 2^-11 in a row; measured ~0.1%.
    ids = prompt_ids(tokenizer)
    ours, theirs = our_logits(trained, ids), llama_logits(exported["f16"], ids)
    print(f"f16: max |dlogit| {np.abs(theirs - ours).max():.4f}, max rel L2 {relative_error(theirs, ours):.5f}")
    assert relative_error(theirs, ours) < 0.005
    assert_same_argmax(theirs, ours)


@pytest.mark.parametrize("kind", ["tq2_0", "tq1_0", "f16"])
def test_greedy_decoding_matches_llama_cpp(trained, tokenizer, exported, kind):
    prompt = prompt_ids(tokenizer, "the quick brown fox")
    ours = trained.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=10)[0, len(prompt):].tolist()
    llm = load_llama(exported[kind])
    try:
        theirs = list(itertools.islice(llm.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0), 10))
    finally:
        llm.close()
    assert len(ours) == 10 and len(set(ours)) > 3  # a real continuation, not one repeated token
    assert theirs == ours, (tokenizer.decode(theirs), tokenizer.decode(ours))


def test_text_completion_through_llama_cpp(trained, tokenizer, exported):
    """llama.cpp's own text API: the prompt's literal [CLS] is parsed as the control token, no [SEP] is appended
    (add_bos_token is false), and the greedy completion is our model's."""
    prompt = prompt_ids(tokenizer, "the quick brown")
    ours = trained.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=10)[0, len(prompt):]
    llm = load_llama(exported["tq2_0"])
    try:
        text = llm("[CLS] the quick brown", max_tokens=10, temperature=0.0, top_k=1)["choices"][0]["text"]
        assert llm.tokenize(text.encode(), add_bos=False) == ours.tolist()  # the completion's text is our tokens'
    finally:
        llm.close()
    assert text.startswith(" fox jumps over")


def test_missing_rope_permutation_is_caught(trained, tokenizer, tmp_path, monkeypatch):
    """Without llama.cpp's q/k row permutation the logit comparison fails by far (f16 bound: 0.5%)."""
    monkeypatch.setattr(gguf_export, "_permute_rope_rows", lambda rows, n_head: rows)
    path = export_gguf(trained, tmp_path / "unpermuted.gguf", "f16", tokenizer=tokenizer)
    ids = prompt_ids(tokenizer)
    assert relative_error(llama_logits(path, ids), our_logits(trained, ids)) > 0.05


def test_metadata_tensor_names_and_types(trained, tokenizer, exported):
    reader = gguf.GGUFReader(exported["tq2_0"])
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    config = trained.config
    expected = {
        "general.architecture": "llama", "llama.context_length": 256, "llama.embedding_length": 256,
        "llama.block_count": 2, "llama.feed_forward_length": 512, "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 4, "llama.rope.dimension_count": 64, "llama.vocab_size": len(tokenizer),
        "llama.rope.freq_base": 10000.0, "general.file_type": int(gguf.LlamaFileType.MOSTLY_TQ2_0),
        "tokenizer.ggml.model": "bert", "tokenizer.ggml.bos_token_id": CLS, "tokenizer.ggml.eos_token_id": SEP,
        "tokenizer.ggml.unknown_token_id": UNK, "tokenizer.ggml.seperator_token_id": SEP,
        "tokenizer.ggml.padding_token_id": PAD, "tokenizer.ggml.mask_token_id": MASK,
        "tokenizer.ggml.cls_token_id": CLS, "tokenizer.ggml.add_bos_token": False,
        "tokenizer.ggml.normalizer.lowercase": True,
    }
    assert {key: field(key) for key in expected} == expected
    assert field("llama.attention.layer_norm_rms_epsilon") == pytest.approx(config.rms_norm_eps)
    tokens, types = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.token_type")
    vocab = tokenizer.get_vocab()
    assert tokens[:5] == SPECIALS and types[:5] == [gguf.TokenType.CONTROL] * 5
    piece = next(token for token in vocab if token.startswith("##"))
    assert tokens[vocab[piece]] == piece[2:] and tokens[vocab["fox"]] == "\u2581fox"
    assert types[vocab["fox"]] == gguf.TokenType.NORMAL and len(tokens) == len(tokenizer)

    types_by_name = {tensor.name: tensor.tensor_type for tensor in reader.tensors}
    names = {"token_embd.weight", "output_norm.weight", "output.weight"} | {
        f"blk.{i}.{name}.weight" for i in range(2) for name in MATRICES + ("attn_norm", "ffn_norm")}
    assert set(types_by_name) == names
    for name, tensor_type in types_by_name.items():
        want = {"token_embd.weight": "F16", "output.weight": "F16"}.get(name, "F32" if "norm" in name else "TQ2_0")
        assert tensor_type.name == want, name
    shapes = {tensor.name: tensor.shape.tolist() for tensor in reader.tensors}  # GGUF order: (in, out)
    assert shapes["blk.1.ffn_down.weight"] == [512, 256] and shapes["token_embd.weight"] == [256, len(tokenizer)]
    f16_types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(exported["f16"]).tensors}
    assert f16_types["blk.0.attn_q.weight"] == "F16" and f16_types["blk.0.attn_norm.weight"] == "F32"


def llama_permute(rows: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's convert_hf_to_gguf.py `LlamaModel.permute`, copied."""
    return rows.reshape(n_head, 2, rows.shape[0] // n_head // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


@pytest.mark.parametrize("kind", ["tq2_0", "tq1_0"])
@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
def test_tq_codes_decode_to_ours_exactly(trained, tokenizer, tmp_path, kind, granularity):
    torch.manual_seed(1)
    model = trained if granularity == "per_tensor" else TernaryForCausalLM(gguf_config(
        len(tokenizer), scale_granularity="per_channel", num_key_value_heads=2))
    path = export_gguf(model, tmp_path / "model.gguf", kind, tokenizer=tokenizer)
    tensors = {tensor.name: tensor for tensor in gguf.GGUFReader(path).tensors}
    for index, layer in enumerate(model.model.layers):
        for name, module_path in MODULES.items():
            tensor = tensors[f"blk.{index}.{name}.weight"]
            decoded = gguf.quants.dequantize(tensor.data, tensor.tensor_type)  # (out, in) float32
            module = layer.get_submodule(module_path)
            codes = module.ternary_codes()  # (out, in) int8
            scale = module.current_scale().reshape(-1, 1).expand(codes.shape[0], 1)  # (out, 1)
            heads = {"attn_q": model.config.num_attention_heads, "attn_k": model.config.num_key_value_heads}
            if name in heads:
                codes, scale = llama_permute(codes, heads[name]), llama_permute(scale, heads[name])
            np.testing.assert_array_equal(np.sign(decoded), codes.numpy(), err_msg=f"{index}.{name}")
            scale16 = scale.numpy().astype(np.float16).astype(np.float32)
            np.testing.assert_array_equal(decoded, codes.numpy() * scale16)  # block scale = float16(g)


def test_gqa_tied_per_channel_biases_and_padded_vocab(tokenizer, tmp_path):
    """kv heads 2 (k permuted with 2 heads), tied embeddings (no output.weight: llama.cpp reuses token_embd),
    per-row scales, q/k/v/o and MLP biases, and a config vocab 20 ids larger than the tokenizer."""
    torch.manual_seed(2)
    model = TernaryForCausalLM(gguf_config(
        len(tokenizer) + 20, num_key_value_heads=2, tie_word_embeddings=True, scale_granularity="per_channel",
        attention_bias=True, mlp_bias=True)).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(".bias"):
                parameter.normal_(0.0, 0.5)
    path = export_gguf(model, tmp_path / "variant.gguf", "tq2_0", tokenizer=tokenizer)
    reader = gguf.GGUFReader(path)
    names = {tensor.name for tensor in reader.tensors}
    assert "output.weight" not in names and {"blk.0.attn_k.bias", "blk.1.ffn_down.bias"} <= names
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    assert len(tokens) == len(tokenizer) + 20 and tokens[-1] == f"[PAD{len(tokenizer) + 19}]"
    assert reader.fields["tokenizer.ggml.token_type"].contents()[-1] == gguf.TokenType.UNUSED
    ids = prompt_ids(tokenizer)
    assert_tq_agreement(model, path, ids)
    f32_path = export_gguf(model, tmp_path / "variant-f32.gguf", "f32", tokenizer=tokenizer)
    assert relative_error(llama_logits(f32_path, ids), our_logits(model, ids)) < 1e-3


def test_llama_cpp_tokenizes_like_ours(tokenizer, exported):
    llm = load_llama(exported["tq2_0"], vocab_only=True)
    try:
        for text in (PROMPT, "The Quick brown FOX, processors!", "naïve café xyz", "unknownword qqq"):
            ours = tokenizer(text, add_special_tokens=False).input_ids
            assert llm.tokenize(text.encode(), add_bos=False, special=True) == ours, text
        # A prompt starts with a literal [CLS], parsed as a control token.
        assert llm.tokenize(b"[CLS] the fox", add_bos=False, special=True) == prompt_ids(tokenizer, "the fox")
        # Why add_bos_token is false: llama.cpp's WPM tokenizer wraps text in [CLS] ... [SEP] when adding specials.
        assert llm.tokenize(b"the fox", add_bos=True) == prompt_ids(tokenizer, "the fox") + [SEP]
    finally:
        llm.close()


def test_no_tokenizer_writes_an_id_only_gguf(trained, tokenizer, tmp_path):
    path = export_gguf(trained, tmp_path / "ids-only.gguf", "f16", tokenizer=False)
    fields = gguf.GGUFReader(path).fields
    assert fields["tokenizer.ggml.model"].contents() == "none" and "tokenizer.ggml.tokens" not in fields
    ids = prompt_ids(tokenizer)
    assert relative_error(llama_logits(path, ids), our_logits(trained, ids)) < 0.005


def test_packed_checkpoint_exports_the_same_tensors(trained, tokenizer, exported, tmp_path):
    trained.save_packed(tmp_path / "packed", layout="1.6bit", float_dtype=torch.float32)
    tokenizer.save_pretrained(tmp_path / "packed")
    path = export_gguf(tmp_path / "packed", tmp_path / "from-packed.gguf", "tq1_0")  # the checkpoint's tokenizer
    reference = {tensor.name: tensor for tensor in gguf.GGUFReader(exported["tq1_0"]).tensors}
    reader = gguf.GGUFReader(path)
    for tensor in reader.tensors:
        np.testing.assert_array_equal(tensor.data, reference[tensor.name].data, err_msg=tensor.name)
    assert reader.fields["tokenizer.ggml.tokens"].contents() == \
        gguf.GGUFReader(exported["tq1_0"]).fields["tokenizer.ggml.tokens"].contents()


def test_cli(trained, tokenizer, exported, tmp_path, capsys):
    trained.save_pretrained(tmp_path / "latent")
    tokenizer.save_pretrained(tmp_path / "latent")
    output = tmp_path / "cli.gguf"
    result = subprocess.run(
        [sys.executable, "-m", "modeling_ternary.gguf", str(tmp_path / "latent"), str(output), "--type", "TQ2_0"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Wrote" in result.stdout and "tq2_0" in result.stdout
    reference = {tensor.name: tensor.data for tensor in gguf.GGUFReader(exported["tq2_0"]).tensors}
    for tensor in gguf.GGUFReader(output).tensors:
        np.testing.assert_array_equal(tensor.data, reference[tensor.name], err_msg=tensor.name)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "latent"), str(tmp_path / "bad.gguf"), "--type", "q4_0"])
    assert exit_info.value.code == 2 and "invalid choice: 'q4_0'" in capsys.readouterr().err


def _scaled_down_q_proj() -> TernaryForCausalLM:
    model = TernaryForCausalLM(gguf_config())
    with torch.no_grad():
        model.model.layers[0].self_attn.q_proj.weight.mul_(1e-4)  # g = quant_eps = 1e-5
    return model


def _in_warmup() -> TernaryForCausalLM:
    model = TernaryForCausalLM(gguf_config())
    set_quant_strength(model, 0.5)
    return model


ERROR_CASES = {
    "head bias": (lambda: TernaryForCausalLM(tiny_config(lm_head_bias=True)), "f16", "wordpiece", r"lm_head_bias"),
    "rows not 256": (lambda: TernaryForCausalLM(tiny_config()), "tq2_0", "wordpiece",
                     r"q_proj \(blk\.0\.attn_q\.weight\) has in_features=32, not a multiple of 256.*f16"),
    "not wordpiece": (lambda: TernaryForCausalLM(tiny_config()), "f16", "wordlevel",
                      r"WordLevel tokenizer.*WordPiece"),
    "unknown type": (lambda: TernaryForCausalLM(tiny_config()), "q4_0", "wordpiece",
                     r"`tensor_type` must be one of \['tq2_0', 'tq1_0', 'f16', 'f32'\], got 'q4_0'"),
    "full precision twin": (lambda: TernaryForCausalLM(gguf_config(ternary_modules=[])), "tq2_0", "wordpiece",
                            r"full precision.*TQ2_0 can only hold ternary weights.*f16"),
    "gelu": (lambda: TernaryForCausalLM(tiny_config(hidden_act="gelu")), "f16", "wordpiece", r"hidden_act.*'gelu'"),
    "rope type": (lambda: TernaryForCausalLM(tiny_config(rope_parameters={
        "rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})), "f16", "wordpiece", r"rope_type.*'linear'"),
    "warm-up": (_in_warmup, "tq2_0", "wordpiece", r"quant_strength=0\.5"),
    "tiny scale": (_scaled_down_q_proj, "tq1_0", "wordpiece", r"q_proj has scale g=1e-05, below float16's normal"),
    "no tokenizer": (lambda: TernaryForCausalLM(tiny_config()), "f16", None, r"Pass the model's WordPiece tokenizer"),
    "vocab too small": (lambda: TernaryForCausalLM(tiny_config(vocab_size=250)), "f16", "wordpiece",
                        r"more than the model's `vocab_size` \(250\)"),
    "classifier": (lambda: TernaryForSequenceClassification(tiny_config()), "f16", "wordpiece",
                   r"must be a TernaryForCausalLM"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_refuses_what_gguf_llama_cannot_express(tokenizer, tmp_path, case):
    make_model, kind, tokenizer_kind, message = ERROR_CASES[case]
    chosen = {"wordpiece": tokenizer, "wordlevel": tiny_tokenizer(), None: None}[tokenizer_kind]
    with pytest.raises(ValueError, match=message):
        export_gguf(make_model(), tmp_path / "refused.gguf", kind, tokenizer=chosen)
    assert not (tmp_path / "refused.gguf").exists()  # checks run before the file is opened


def test_checkpoint_without_tokenizer_needs_one(trained, tokenizer, tmp_path):
    trained.save_pretrained(tmp_path / "bare")
    with pytest.raises(ValueError, match=r"has no tokenizer.*--tokenizer PATH.*--no-tokenizer"):
        export_gguf(tmp_path / "bare", tmp_path / "bare.gguf")
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    main([str(tmp_path / "bare"), str(tmp_path / "bare.gguf"), "--tokenizer", str(tmp_path / "tokenizer")])
    assert gguf.GGUFReader(tmp_path / "bare.gguf").fields["tokenizer.ggml.model"].contents() == "bert"
    main([str(tmp_path / "bare"), str(tmp_path / "ids.gguf"), "--no-tokenizer", "--type", "f16"])
    assert gguf.GGUFReader(tmp_path / "ids.gguf").fields["tokenizer.ggml.model"].contents() == "none"
