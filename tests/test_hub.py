"""Publishing to the Hub, end to end, against the in-memory Hub of `tests/hub_server.py` (offline).

A tiny trained model is pushed latent and packed with `modeling_ternary.hub`; fresh subprocesses then download it
through `HF_ENDPOINT` and load it (1) with `trust_remote_code=True` where `modeling_ternary` cannot be imported and
(2) with the plugin and no remote code. Logits must be identical to the original model's.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from safetensors import safe_open

from modeling_ternary import TernaryForCausalLM
from modeling_ternary.evaluation import perplexity
from modeling_ternary.hub import build_release, main, push_to_hub
from tests.conftest import tiny_config, tiny_tokenizer
from tests.hub_server import HubServer

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "examples"))
import main_job  # noqa: E402  (its build_report gives the report the model card reads)

INPUT_IDS = torch.tensor([[1, 5, 9, 14, 30, 2], [1, 40, 41, 42, 0, 0]])


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def hub():
    with HubServer() as server, pytest.MonkeyPatch.context() as patch:
        # The suite runs with HF_HUB_OFFLINE=1; this process talks to the local server only.
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        yield server


def train_tiny(seed: int, ternary: bool = True) -> TernaryForCausalLM:
    """A few AdamW steps on a repeating token pattern: weights that moved away from their initialisation."""
    torch.manual_seed(seed)
    model = TernaryForCausalLM(tiny_config(ternary_modules=None if ternary else []))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = torch.arange(4, 68).remainder(20).add(3).view(4, 16)
    for _ in range(6):
        model(batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def measured_run(model: TernaryForCausalLM) -> dict:
    """The metrics examples/pretrain.py reports, measured on two small token sets."""
    train = [{"input_ids": torch.arange(4, 68).remainder(20).add(3).view(4, 16)}]
    validation = [{"input_ids": torch.arange(9, 41).remainder(20).add(3).view(2, 16)}]
    train_ppl, validation_ppl = perplexity(model, train)["perplexity"], perplexity(model, validation)["perplexity"]
    return {"train_perplexity": train_ppl, "validation_perplexity": validation_ppl,
            "validation_over_train_perplexity": validation_ppl / train_ppl, "unigram_validation_perplexity": 20.0,
            "parameters": sum(p.numel() for p in model.parameters()), "full_precision": not model.config.is_ternary}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The latent checkpoint of a tiny trained model with its tokenizer, a packed copy, and the main job's report."""
    root = tmp_path_factory.mktemp("trained")
    model, twin = train_tiny(seed=0), train_tiny(seed=0, ternary=False)
    model.save_pretrained(root / "latent")
    tiny_tokenizer().save_pretrained(root / "latent")
    model.save_packed(root / "packed", layout="1.6bit")
    tiny_tokenizer().save_pretrained(root / "packed")
    args = argparse.Namespace(output_dir=str(root), dataset="default", preset="tiny", max_steps=6, batch_size=4,
                              learning_rate=1e-2, seeds=[0], finetune_steps=0, tokenizer="")
    report = main_job.build_report(args, {"ternary": [measured_run(model)], "fp32": [measured_run(twin)]},
                                   root / "latent", root / "packed", sample="", finetuned={})
    (root / "report.json").write_text(json.dumps(report))
    return {"root": root, "model": model, "report": report, "latent": root / "latent", "packed": root / "packed"}


@pytest.fixture(scope="module")
def published(hub, trained, tmp_path_factory):
    """Every push the load tests read: latent, packed (float32 rest, so logits are exact), a repo with two
    commits, and a packed repo whose config claims format version 2."""
    root, api = tmp_path_factory.mktemp("published"), HfApi(endpoint=hub.url, token="hf_test")
    report = trained["root"] / "report.json"
    commits = {
        "latent": push_to_hub(trained["latent"], "me/tiny-latent", packed=False, endpoint=hub.url, token="hf_test",
                              report=report),
        "packed": push_to_hub(trained["latent"], "me/tiny-packed", endpoint=hub.url, token="hf_test",
                              float_dtype="float32", report=report, output_dir=root / "packed-release"),
    }
    second = train_tiny(seed=1)
    second.save_pretrained(root / "second")
    tiny_tokenizer().save_pretrained(root / "second")
    commits["first"] = push_to_hub(trained["latent"], "me/tiny-history", packed=False, endpoint=hub.url,
                                   token="hf_test")
    commits["second"] = push_to_hub(root / "second", "me/tiny-history", packed=False, endpoint=hub.url,
                                    token="hf_test")
    future = root / "packed-release"
    config = json.loads((future / "config.json").read_text())
    (future / "config.json").write_text(json.dumps({**config, "packing_format_version": 2}))
    api.create_repo("me/tiny-future")
    api.upload_folder(repo_id="me/tiny-future", folder_path=future)  # raw upload: our push would refuse it
    return {"commits": commits, "second": second, "root": root}


LOAD_SCRIPT = r"""
import json, sys
from pathlib import Path

spec = json.loads(Path(sys.argv[1]).read_text())
if spec["block_plugin"]:
    # As on a machine without this project: drop its editable-install finder, refuse `modeling_ternary` imports.
    class BlockPlugin:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "modeling_ternary":
                raise ImportError("modeling_ternary is blocked in this process")
    sys.meta_path[:] = [BlockPlugin()] + [f for f in sys.meta_path if "editable" not in type(f).__module__]
    try:
        import modeling_ternary
        raise SystemExit("modeling_ternary was importable")
    except ImportError:
        pass
    assert not any(Path(p or ".").resolve().joinpath("modeling_ternary").is_dir() for p in sys.path), sys.path
else:
    import modeling_ternary  # registers the "ternary" model type

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

results, logits = {}, {}
for load in spec["loads"]:
    kwargs = dict(revision=load.get("revision"), trust_remote_code=spec["block_plugin"], dtype=torch.float32)
    try:
        model = AutoModelForCausalLM.from_pretrained(load["repo"], **kwargs).eval()
        tokenizer = AutoTokenizer.from_pretrained(load["repo"], revision=load.get("revision"),
                                                  trust_remote_code=spec["block_plugin"])
    except Exception as error:
        results[load["name"]] = {"error": f"{type(error).__name__}: {error}"}
        continue
    with torch.no_grad():
        logits[load["name"]] = model(torch.tensor(spec["input_ids"])).logits
    results[load["name"]] = {"module": type(model).__module__, "ids": tokenizer("w1 w2 w3")["input_ids"]}
    if load.get("inference"):  # the model card's fast path: packed codes straight into the CPU inference mode
        fast = AutoModelForCausalLM.from_pretrained(load["repo"], inference=True)
        tokens = fast.generate(torch.tensor(spec["input_ids"][:1]), max_new_tokens=3, min_new_tokens=3,
                               do_sample=False)
        results[load["name"]].update(is_inference=fast.is_inference, generated=tokens.shape[1])
torch.save(logits, spec["logits"])
Path(spec["results"]).write_text(json.dumps(results))
"""


def load_in_fresh_process(hub, tmp_path: Path, loads: list[dict], block_plugin: bool) -> tuple[dict, dict]:
    """Load Hub repos in a new Python process with its own empty Hugging Face cache; return (results, logits)."""
    spec = {"block_plugin": block_plugin, "loads": loads, "input_ids": INPUT_IDS.tolist(),
            "logits": str(tmp_path / "logits.pt"), "results": str(tmp_path / "results.json")}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf_home"), PYTHONPATH="",
               HF_HUB_DISABLE_TELEMETRY="1")
    # -I: no PYTHONPATH, no user site, and neither the cwd nor the script's directory on sys.path.
    subprocess.run([sys.executable, "-I", "-c", LOAD_SCRIPT, str(tmp_path / "spec.json")], check=True, env=env,
                   cwd=tmp_path, timeout=240)
    return json.loads((tmp_path / "results.json").read_text()), torch.load(tmp_path / "logits.pt")


def original_logits(model: TernaryForCausalLM) -> torch.Tensor:
    with torch.no_grad():
        return model(INPUT_IDS).logits


# ---------------------------------------------------------------- loading anywhere


def test_pushed_checkpoints_load_without_the_plugin_with_identical_logits(hub, trained, published, tmp_path):
    loads = [{"name": "latent", "repo": "me/tiny-latent"}, {"name": "packed", "repo": "me/tiny-packed"}]
    results, logits = load_in_fresh_process(hub, tmp_path, loads, block_plugin=True)
    expected_ids = tiny_tokenizer()("w1 w2 w3")["input_ids"]
    for name in ("latent", "packed"):
        assert results[name]["module"].startswith("transformers_modules."), results[name]
        assert results[name]["ids"] == expected_ids
        assert torch.equal(logits[name], original_logits(trained["model"])), name


def test_pushed_checkpoints_load_with_the_plugin_without_remote_code(hub, trained, published, tmp_path):
    first_sha = published["commits"]["first"].oid
    loads = [{"name": "latent", "repo": "me/tiny-latent"},
             {"name": "packed", "repo": "me/tiny-packed", "inference": True},
             {"name": "first", "repo": "me/tiny-history", "revision": first_sha},
             {"name": "main", "repo": "me/tiny-history"},
             {"name": "future", "repo": "me/tiny-future"}]
    results, logits = load_in_fresh_process(hub, tmp_path, loads, block_plugin=False)
    for name in ("latent", "packed", "first", "main"):
        assert results[name]["module"] == "modeling_ternary.modeling_ternary", results[name]
    assert torch.equal(logits["latent"], original_logits(trained["model"]))
    assert torch.equal(logits["packed"], original_logits(trained["model"]))
    assert results["packed"]["is_inference"] is True and results["packed"]["generated"] == INPUT_IDS.shape[1] + 3
    assert torch.equal(logits["first"], original_logits(trained["model"]))  # revision= pins the first push
    assert torch.equal(logits["main"], original_logits(published["second"]))
    assert not torch.equal(logits["first"], logits["main"])
    assert results["future"]["error"] == (
        "ValueError: This checkpoint uses packed format version 2, newer than the versions this code understands "
        "(up to 1): upgrade modeling-ternary to load it.")


# ---------------------------------------------------------------- what is uploaded


def test_upload_holds_config_code_weights_tokenizer_and_card(hub, published):
    files = hub.repos["me/tiny-packed"].commits[published["commits"]["packed"].oid]
    config = json.loads(files["config.json"])
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_ternary.TernaryForCausalLM"
    assert config["checkpoint_format"] == "packed" and config["packing_format_version"] == 1
    for name in ("modeling_ternary.py", "configuration_ternary.py", "packing.py", "checkpoint.py",
                 "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"):
        assert name in files, name
    # Only the model code travels: the publishing tools are not remote code.
    assert not {"hub.py", "model_card.py", "pack.py"} & set(files)
    assert hub.repos["me/tiny-packed"].private is False


def test_pushed_card_parses_and_its_numbers_come_from_the_report(hub, trained, published):
    files = hub.repos["me/tiny-packed"].commits[published["commits"]["packed"].oid]
    card = ModelCard(files["README.md"].decode())
    assert files["README.md"].decode() in hub.validated_cards  # huggingface_hub had the Hub check its metadata
    run = trained["report"]["runs"]["ternary"][0]
    assert card.data.library_name == "transformers" and card.data.license == "apache-2.0"
    assert {"ternary", "1.58-bit", "bitnet"} <= set(card.data.tags)
    assert {r.metric_name: r.metric_value for r in card.data.eval_results} == {
        "validation perplexity": run["validation_perplexity"], "train perplexity": run["train_perplexity"]}
    fp32 = trained["report"]["runs"]["fp32"][0]
    assert (f"| this model (ternary) | {run['train_perplexity']:.2f} | {run['validation_perplexity']:.2f} |"
            in card.text)
    assert f"| {fp32['train_perplexity']:.2f} | {fp32['validation_perplexity']:.2f} |" in card.text
    assert f"| training run: latent fp32 checkpoint | {trained['report']['latent_fp32_bytes'] / 1e6:.2f} MB |" \
        in card.text
    assert f"| safetensors in this repository | {len(files['model.safetensors']) / 1e6:.2f} MB |" in card.text
    assert 'AutoModelForCausalLM.from_pretrained("me/tiny-packed", trust_remote_code=True)' in card.text
    assert "every other tensor (embeddings, norms, LM head) is `float32`" in card.text


def test_packed_checkpoint_is_republished_with_the_same_tensors(hub, trained, tmp_path):
    release = build_release(trained["packed"], tmp_path / "release")
    source, copy = trained["packed"] / "model.safetensors", release / "model.safetensors"
    with safe_open(source, "pt") as a, safe_open(copy, "pt") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        for key in a.keys():  # codes, scales (scale convention kept) and bfloat16 tensors, bit for bit
            assert torch.equal(a.get_tensor(key), b.get_tensor(key)), key
        assert b.metadata()["ternary_packing_layout"] == "1.6bit"
    assert json.loads((release / "config.json").read_text())["packing_layout"] == "1.6bit"


def test_command_line_pushes_a_private_repo_to_a_branch(hub, trained, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)  # what HF_ENDPOINT sets at import time
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    info = main([str(trained["latent"]), "me/tiny-cli", "--private", "--revision", "v1", "--layout", "1.6bit",
                 "--report", str(trained["root"] / "report.json"), "--commit-message", "release v1"])
    repo = hub.repos["me/tiny-cli"]
    assert repo.private is True
    assert repo.branches["v1"] == info.oid and repo.commit_messages[info.oid] == "release v1"
    assert repo.commits[repo.branches["main"]] == {}  # main untouched
    config = json.loads(repo.commits[info.oid]["config.json"])
    assert config["packing_layout"] == "1.6bit"
    assert f"to me/tiny-cli: {hub.url}/me/tiny-cli/commit/{info.oid}" in capsys.readouterr().out


# ---------------------------------------------------------------- clear errors


def test_unpacked_model_labelled_packed_is_refused(hub, trained, tmp_path):
    mislabelled = tmp_path / "mislabelled"
    build_release(trained["latent"], mislabelled, packed=False)
    config = json.loads((mislabelled / "config.json").read_text())
    (mislabelled / "config.json").write_text(json.dumps(
        {**config, "checkpoint_format": "packed", "packing_layout": "2bit", "packing_format_version": 1}))
    with pytest.raises(ValueError, match=r"marked packed .* hold unpacked weights .*an unpacked, latent model "
                                         r"labelled packed"):
        push_to_hub(mislabelled, "me/never", endpoint=hub.url, token="hf_test")
    assert "me/never" not in hub.repos


def test_packed_checkpoint_cannot_be_published_as_latent(hub, trained):
    with pytest.raises(ValueError, match="is a packed checkpoint: its trained latent weights were never stored"):
        push_to_hub(trained["packed"], "me/never", packed=False, endpoint=hub.url, token="hf_test")


def test_missing_tokenizer_is_refused(hub, trained, tmp_path):
    trained["model"].save_pretrained(tmp_path / "no-tokenizer")
    with pytest.raises(ValueError, match=r"No tokenizer in .*no-tokenizer'.*pass `tokenizer=` / `--tokenizer`"):
        push_to_hub(tmp_path / "no-tokenizer", "me/never", endpoint=hub.url, token="hf_test")
    assert "me/never" not in hub.repos


def test_tokenizer_can_come_from_elsewhere(trained, tmp_path):
    trained["model"].save_pretrained(tmp_path / "no-tokenizer")
    release = build_release(tmp_path / "no-tokenizer", tmp_path / "release", tokenizer=trained["latent"])
    assert (release / "tokenizer.json").is_file()


def test_unreachable_hub_is_a_clear_error(hub, trained):
    with HubServer() as closed:  # a port that was just free: nothing listens there afterwards
        url = closed.url
    with pytest.raises(ConnectionError, match=rf"Could not reach the Hugging Face Hub at {url} \(ConnectError"):
        push_to_hub(trained["latent"], "me/never", endpoint=url, token="hf_test")


def test_offline_mode_is_a_clear_error(trained, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConnectionError, match=r"offline mode is on \(HF_HUB_OFFLINE=1\)"):
        push_to_hub(trained["latent"], "me/never", endpoint="http://127.0.0.1:9", token="hf_test")


def test_bad_arguments_are_refused(trained, tmp_path):
    with pytest.raises(TypeError, match="`checkpoint` must be the path of a checkpoint directory, got "
                                        "TernaryForCausalLM"):
        build_release(trained["model"], tmp_path)
    with pytest.raises(ValueError, match="`checkpoint` must be a local checkpoint directory with a config.json"):
        build_release(tmp_path / "nothing", tmp_path / "out")
    with pytest.raises(TypeError, match="`packed` must be True or False, got 'yes'"):
        build_release(trained["latent"], tmp_path / "out", packed="yes")
    with pytest.raises(ValueError, match="`layout` and `float_dtype` apply to packed releases only"):
        build_release(trained["latent"], tmp_path / "out", packed=False, layout="2bit")
