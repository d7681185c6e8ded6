import json
import shutil
import subprocess
import sys

import pytest
import torch
from datasets import Dataset
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

from modeling_ternary import TernaryConfig, TernaryForCausalLM, TernaryForSequenceClassification, TernaryLinear
from modeling_ternary.packing import unpack_ternary
from tests.conftest import tiny_config, tiny_tokenizer


def _round_float_tensors_through(model, dtype):
    """The model that a packed checkpoint with `dtype` float tensors represents: non-ternary tensors rounded."""
    ternary_weights = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, TernaryLinear)}
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name not in ternary_weights:
                parameter.copy_(parameter.to(dtype).float())
    return model


@pytest.mark.parametrize("layout", ["2bit", "1.6bit"])
@pytest.mark.parametrize("overrides", [
    {}, {"scale_granularity": "per_channel"}, {"activation_quant": "per_token_int8", "intermediate_size": 72},
])
def test_packed_checkpoint_reloads_bit_identical_in_eval_and_train(tmp_path, layout, overrides):
    model = TernaryForCausalLM(tiny_config(**overrides)).eval()
    model.save_packed(tmp_path, layout=layout, float_dtype=torch.float32)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    assert type(loaded) is TernaryForCausalLM and loaded.config.checkpoint_format == "latent"
    input_ids = torch.randint(3, 99, (2, 13))
    with torch.no_grad():
        assert torch.equal(loaded(input_ids).logits, model(input_ids).logits)
    for name, module in model.named_modules():
        if isinstance(module, TernaryLinear):
            twin = loaded.get_submodule(name)
            assert torch.equal(twin.ternary_codes(), module.ternary_codes()), name
            assert torch.equal(twin.current_scale(), module.current_scale()), name
    loaded.train(), model.train()
    assert torch.equal(loaded(input_ids).logits, model(input_ids).logits)


def test_bfloat16_packed_checkpoint_equals_the_model_with_rounded_float_tensors(tmp_path):
    model = TernaryForCausalLM(tiny_config()).eval()
    model.save_packed(tmp_path)  # bfloat16 by default
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    reference = _round_float_tensors_through(model, torch.bfloat16)
    input_ids = torch.randint(3, 99, (2, 9))
    assert torch.equal(loaded(input_ids).logits, reference(input_ids).logits)
    assert AutoModelForCausalLM.from_pretrained(tmp_path).dtype == torch.bfloat16  # dtype="auto" keeps the file's


def test_packed_files_hold_codes_scales_and_record_the_format(tmp_path):
    model = TernaryForCausalLM(tiny_config())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.save_packed(tmp_path, layout="1.6bit")
    for key, value in model.state_dict().items():  # packing does not touch the model
        assert torch.equal(value, before[key]), key
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["checkpoint_format"], config["packing_layout"], config["packing_format_version"]) == \
        ("packed", "1.6bit", 1)
    with safe_open(tmp_path / "model.safetensors", framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    assert metadata["ternary_checkpoint_format"] == "packed"
    assert metadata["ternary_packing_layout"] == "1.6bit" and metadata["ternary_packing_format_version"] == "1"
    up = "model.layers.0.mlp.up_proj"
    assert "model.layers.0.mlp.up_proj.weight" not in tensors
    assert tensors[f"{up}.weight_packed"].dtype == torch.uint8 and tensors[f"{up}.weight_packed"].shape == (13, 32)
    assert tensors[f"{up}.weight_scale"].dtype == torch.float32 and tensors[f"{up}.weight_scale"].shape == ()
    assert tensors["model.embed_tokens.weight"].dtype == torch.bfloat16
    codes = unpack_ternary(tensors[f"{up}.weight_packed"], (64, 32), "1.6bit")
    assert torch.equal(codes, model.get_submodule(up).ternary_codes())
    assert tensors[f"{up}.weight_scale"] == model.get_submodule(up).current_scale()


def test_transformers_bitnet_unpacks_our_2bit_checkpoint_tensors(tmp_path):
    from transformers.integrations.bitnet import unpack_weights

    model = TernaryForCausalLM(tiny_config())
    model.save_packed(tmp_path, layout="2bit")
    tensors = load_file(tmp_path / "model.safetensors")
    for name in ("model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj"):
        layer = model.get_submodule(name)
        theirs = unpack_weights.__wrapped__(tensors[f"{name}.weight_packed"], torch.int8)[: layer.out_features]
        assert torch.equal(theirs, layer.ternary_codes()), name


def test_fine_tuning_from_a_packed_checkpoint_with_the_trainer(tmp_path):
    torch.manual_seed(0)
    TernaryForCausalLM(tiny_config(hidden_size=64, intermediate_size=128)).save_packed(tmp_path / "packed")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "packed", dtype=torch.float32)
    input_ids = torch.randint(4, 99, (8, 16))
    dataset = Dataset.from_dict({"input_ids": input_ids.tolist(), "labels": input_ids.tolist()})
    with torch.no_grad():
        start = model(input_ids, labels=input_ids).loss.item()
    args = TrainingArguments(output_dir=str(tmp_path / "run"), per_device_train_batch_size=8, max_steps=30,
                             learning_rate=1e-2, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=dataset).train()
    with torch.no_grad():
        end = model.eval()(input_ids, labels=input_ids).loss.item()
    assert end < 0.2 * start, (start, end)
    model.save_pretrained(tmp_path / "finetuned")  # fine-tuned model saves as an ordinary latent checkpoint
    assert json.loads((tmp_path / "finetuned" / "config.json").read_text())["checkpoint_format"] == "latent"


def test_classifier_packs_and_reloads(tmp_path):
    classifier = TernaryForSequenceClassification(tiny_config(num_labels=3)).eval()
    classifier.save_packed(tmp_path, float_dtype="float32")
    loaded = TernaryForSequenceClassification.from_pretrained(tmp_path).eval()
    input_ids = torch.randint(3, 99, (2, 7))
    assert torch.equal(loaded(input_ids).logits, classifier(input_ids).logits)


def test_pack_command_line_packs_and_copies_the_tokenizer(tmp_path):
    model = TernaryForCausalLM(tiny_config()).eval()
    model.save_pretrained(tmp_path / "latent")
    tiny_tokenizer().save_pretrained(tmp_path / "latent")
    result = subprocess.run(
        [sys.executable, "-m", "modeling_ternary.pack", str(tmp_path / "latent"), str(tmp_path / "packed"),
         "--layout", "1.6bit", "--float-dtype", "float32"],
        check=True, capture_output=True, text=True,
    )
    assert "1.6bit" in result.stdout
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "packed").eval()
    input_ids = torch.randint(3, 99, (1, 5))
    assert torch.equal(loaded(input_ids).logits, model(input_ids).logits)
    assert AutoTokenizer.from_pretrained(tmp_path / "packed")("w1 w2")["input_ids"] == [5, 6]


def test_save_packed_refuses_bad_arguments(tmp_path):
    model = TernaryForCausalLM(tiny_config())
    with pytest.raises(ValueError, match=r"unknown layout '3bit'"):
        model.save_packed(tmp_path, layout="3bit")
    with pytest.raises(ValueError, match=r"`float_dtype` must be one of .*'int8'"):
        model.save_packed(tmp_path, float_dtype="int8")
    with pytest.raises(ValueError, match=r"no ternary layers .* there is nothing to pack"):
        TernaryForCausalLM(tiny_config(ternary_modules=[])).save_packed(tmp_path)


# --- damaged checkpoints never load silently -----------------------------------------------------------------

UP = "model.layers.0.mlp.up_proj"


def _damaged_copy(source, target, edit_tensors=None, edit_config=None, edit_bytes=None):
    shutil.copytree(source, target)
    path = target / "model.safetensors"
    if edit_tensors:
        tensors = load_file(path)
        edit_tensors(tensors)
        save_file(tensors, path, metadata={"format": "pt"})
    if edit_config:
        config = json.loads((target / "config.json").read_text())
        edit_config(config)
        (target / "config.json").write_text(json.dumps(config))
    if edit_bytes:
        path.write_bytes(edit_bytes(path.read_bytes()))
    return target


def _set_byte(key, index, value):
    def edit(tensors):
        tensors[key] = tensors[key].clone()
        tensors[key][index] = value
    return edit


DAMAGES = {
    "code 3 in a 2-bit byte": ("2bit", dict(edit_tensors=_set_byte(f"{UP}.weight_packed", (0, 0), 0b00110000))),
    "byte 243 in the 1.6-bit layout": ("1.6bit", dict(edit_tensors=_set_byte(f"{UP}.weight_packed", (2, 5), 243))),
    "a truncated file": ("2bit", dict(edit_bytes=lambda data: data[:-200])),
    "a packed shape that does not match the config": (
        "2bit", dict(edit_tensors=lambda t: t.__setitem__(f"{UP}.weight_packed", t[f"{UP}.weight_packed"][:-1]))),
    "a missing scale": ("2bit", dict(edit_tensors=lambda t: t.pop("model.layers.1.self_attn.k_proj.weight_scale"))),
    "a negative scale": ("2bit", dict(edit_tensors=lambda t: t.__setitem__(f"{UP}.weight_scale", torch.tensor(-1.0)))),
    "an unknown format version": ("2bit", dict(edit_config=lambda c: c.__setitem__("packing_format_version", 2))),
    "an unknown layout": ("2bit", dict(edit_config=lambda c: c.__setitem__("packing_layout", "3bit"))),
}
MESSAGES = {
    "code 3 in a 2-bit byte": rf"{UP}.weight_packed: invalid byte 48 .* code 3 is unused",
    "byte 243 in the 1.6-bit layout": rf"{UP}.weight_packed: invalid byte 243 .* allows only bytes 0..242",
    "a truncated file": r"model.safetensors is truncated \(\d+ bytes\): tensor\(s\) .* extend past the end",
    "a packed shape that does not match the config":
        rf"{UP}.weight_packed \(checkpoint \(15, 32\), model \(16, 32\)\)",
    "a missing scale": r"Packed checkpoint is missing tensor\(s\): model.layers.1.self_attn.k_proj.weight_scale",
    "a negative scale": rf"{UP}.weight_scale: scale must be finite and > 0",
    "an unknown format version": r"packed format version 2, newer than .* \(up to 1\): upgrade modeling-ternary",
    "an unknown layout": r"`packing_layout` must be one of \('2bit', '1.6bit'\) .* got '3bit'",
}


@pytest.mark.parametrize("inference", [False, True], ids=["unpacked", "inference-mode"])
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_packed_checkpoints_raise_a_clear_error(tmp_path, damage, inference):
    layout, edits = DAMAGES[damage]
    TernaryForCausalLM(tiny_config()).save_packed(tmp_path / "good", layout=layout)
    damaged = _damaged_copy(tmp_path / "good", tmp_path / "damaged", **edits)
    with pytest.raises(ValueError, match=MESSAGES[damage]):
        AutoModelForCausalLM.from_pretrained(damaged, inference=inference)


def test_latent_checkpoint_with_a_wrong_shape_is_an_error_naming_the_tensor(tmp_path):
    TernaryForCausalLM(tiny_config()).save_pretrained(tmp_path / "good")
    key = "model.layers.1.mlp.down_proj.weight"
    damaged = _damaged_copy(tmp_path / "good", tmp_path / "damaged",
                            edit_tensors=lambda t: t.__setitem__(key, t[key][:, :5].contiguous()))
    with pytest.raises(ValueError, match=rf"{key} \(checkpoint \(32, 5\), model \(32, 64\)\)"):
        AutoModelForCausalLM.from_pretrained(damaged)


def test_default_132m_model_packs_to_about_2_and_1_6_bits_a_weight(tmp_path, capsys):
    model = TernaryForCausalLM(TernaryConfig())
    ternary_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, TernaryLinear))
    fp32_bytes = 4 * sum(p.numel() for p in model.parameters())
    for layout, limit in (("2bit", 2.01), ("1.6bit", 1.61)):
        model.save_packed(tmp_path / layout, layout=layout)
        with safe_open(tmp_path / layout / "model.safetensors", framework="pt") as handle:
            packed_bytes = sum(handle.get_slice(k).get_shape()[0] * handle.get_slice(k).get_shape()[1]
                               for k in handle.keys() if k.endswith("weight_packed"))
        file_bytes = (tmp_path / layout / "model.safetensors").stat().st_size
        bits = 8 * packed_bytes / ternary_weights
        with capsys.disabled():
            print(f"\n{layout}: {bits:.3f} bits per ternary weight, file {file_bytes / 1e6:.1f} MB "
                  f"vs fp32 {fp32_bytes / 1e6:.1f} MB ({file_bytes / fp32_bytes:.3f}x)")
        assert bits <= limit
        assert file_bytes <= fp32_bytes / 4
