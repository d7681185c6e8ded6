import json

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    pipeline,
)

import modeling_ternary
from modeling_ternary import (
    TernaryConfig,
    TernaryForCausalLM,
    TernaryForSequenceClassification,
    TernaryModel,
)
from tests.conftest import tiny_config, tiny_tokenizer


def test_auto_classes_build_our_classes_from_config():
    config = tiny_config()
    assert isinstance(AutoModelForCausalLM.from_config(config), TernaryForCausalLM)
    assert isinstance(AutoModel.from_config(config), TernaryModel)
    assert isinstance(AutoModelForSequenceClassification.from_config(config), TernaryForSequenceClassification)
    assert isinstance(AutoConfig.for_model("ternary", hidden_size=64, num_attention_heads=4), TernaryConfig)


def test_registration_is_idempotent():
    modeling_ternary.register_auto_classes()
    modeling_ternary.register_auto_classes()
    assert isinstance(AutoModelForCausalLM.from_config(tiny_config()), TernaryForCausalLM)


def test_save_and_load_round_trip_gives_bit_identical_logits(tmp_path):
    model = TernaryForCausalLM(tiny_config(activation_quant="per_token_int8")).eval()
    input_ids = torch.randint(3, 99, (2, 11))
    with torch.no_grad():
        before = model(input_ids).logits
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is TernaryForCausalLM
    assert loaded.config.activation_quant == "per_token_int8"
    with torch.no_grad():
        after = loaded(input_ids).logits
    assert torch.equal(before, after)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    loaded.train()  # train mode (dropout 0) gives the same logits too
    assert torch.equal(loaded(input_ids).logits, before)


def test_save_pretrained_writes_auto_map_and_copies_the_code(tmp_path):
    TernaryForCausalLM(tiny_config()).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "ternary"
    assert config["auto_map"]["AutoConfig"] == "configuration_ternary.TernaryConfig"
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_ternary.TernaryForCausalLM"
    for file in ("modeling_ternary.py", "configuration_ternary.py", "quantization.py"):
        assert (tmp_path / file).is_file(), file
    assert (tmp_path / "model.safetensors").is_file()


def test_sequence_classifier_round_trip_through_auto(tmp_path):
    classifier = TernaryForSequenceClassification(tiny_config(num_labels=3)).eval()
    classifier.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is TernaryForSequenceClassification
    input_ids = torch.randint(3, 99, (2, 7))
    assert torch.equal(classifier(input_ids).logits, loaded(input_ids).logits)


def test_causal_lm_checkpoint_loads_into_classifier_with_a_new_head(tmp_path):
    lm = TernaryForCausalLM(tiny_config())
    lm.save_pretrained(tmp_path)
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    assert torch.equal(classifier.model.layers[0].mlp.up_proj.weight, lm.model.layers[0].mlp.up_proj.weight)
    assert classifier.score.weight.shape == (2, 32)


def test_text_generation_pipeline_accepts_the_model():
    model = TernaryForCausalLM(tiny_config()).eval()
    generator = pipeline("text-generation", model=model, tokenizer=tiny_tokenizer())
    result = generator("w1 w2 w3", max_new_tokens=5, do_sample=False)
    text = result[0]["generated_text"]
    assert text.startswith("w1 w2 w3")
    assert len(text.split()) > 3


def test_text_classification_pipeline_accepts_the_model():
    classifier = TernaryForSequenceClassification(
        tiny_config(num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    ).eval()
    classify = pipeline("text-classification", model=classifier, tokenizer=tiny_tokenizer())
    results = classify(["w1 w2", "w3 w4 w5 w6"])
    assert [r["label"] in {"negative", "positive"} for r in results] == [True, True]
    assert all(0.0 <= r["score"] <= 1.0 for r in results)


REMOTE_LOAD_SCRIPT = r"""
import sys

class BlockPlugin:  # make `import modeling_ternary` fail, as on a machine without this project
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "modeling_ternary":
            raise ImportError("modeling_ternary is blocked in this process")

sys.meta_path.insert(0, BlockPlugin())
import torch
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
with torch.no_grad():
    torch.save(model(torch.load(sys.argv[2])).logits, sys.argv[3])
"""


def test_saved_checkpoint_loads_as_remote_code_without_the_plugin(tmp_path):
    import os
    import subprocess
    import sys

    model = TernaryForCausalLM(tiny_config()).eval()
    model.save_pretrained(tmp_path / "ckpt")
    input_ids = torch.randint(3, 99, (2, 6))
    torch.save(input_ids, tmp_path / "ids.pt")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    subprocess.run(
        [sys.executable, "-c", REMOTE_LOAD_SCRIPT, str(tmp_path / "ckpt"), str(tmp_path / "ids.pt"),
         str(tmp_path / "logits.pt")],
        check=True, env=env, cwd=tmp_path,
    )
    with torch.no_grad():
        assert torch.equal(torch.load(tmp_path / "logits.pt"), model(input_ids).logits)
