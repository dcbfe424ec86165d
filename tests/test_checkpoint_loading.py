"""Checkpoint loading: safety, strict key checking with clear messages, HF folders, registry, hub.

The forms of a checkpoint spec (hf-hub:, file:, names, paths) are tested in test_checkpoint_names.

Truth comes from the golden tiny checkpoints read with plain `torch.load` / `safetensors` (peer
libraries), from the spec's naming rules, and from hand-made variants of those files.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from recon4d.errors import CheckpointError
from recon4d.models import hub, load_model
from recon4d.models.constructor import parse_constructor
from recon4d.models.loading import MAX_LISTED, open_checkpoint
from recon4d.models.registry import OFFICIAL, find_official, registry_config
from recon4d.models.slam3r.config import SLAM3R_ARCHS
from tests.conftest import GOLDEN_DIR, REPO, load_manifest

CASES = load_manifest()["cases"]
CHECKPOINTS = [c for c in CASES if c["kind"] == "checkpoint"]
# one file with a linear head and a Hugging Face copy, one with DPT heads (alias keys)
HF_CASE = next(c for c in CHECKPOINTS if "hf_dir" in c["files"])
DPT_CASE = next(c for c in CHECKPOINTS if "head_type='dpt'" in c["constructor"])
SECONDARY_ALIAS = re.compile(r"scratch\.layer_rn\.\d+\.weight$")  # alias of scratch.layerK_rn


def _raw(case: dict) -> dict:
    """The checkpoint as plain torch reads it (the loader's independent reference)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(GOLDEN_DIR / case["files"]["pth"], map_location="cpu",
                          weights_only=True)


def _variant(tmp_path: Path, case: dict, edit) -> Path:
    """A copy of the case's .pth whose state dict went through `edit(state) -> state`."""
    content = _raw(case)
    content["model"] = edit(content["model"])
    path = tmp_path / "variant.pth"
    torch.save(content, path)
    return path


def _assert_weights(model: torch.nn.Module, reference: dict) -> None:
    state = model.state_dict()
    for key, tensor in reference.items():
        assert torch.equal(state[key], tensor), key


def _error(spec, **kwargs) -> str:
    with pytest.raises(CheckpointError) as info:
        load_model(spec, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------- loading the official format

@pytest.mark.parametrize("case", CHECKPOINTS, ids=[c["name"] for c in CHECKPOINTS])
def test_loaded_weights_equal_file_in_own_memory(case: dict) -> None:
    raw = _raw(case)["model"]
    model = load_model(GOLDEN_DIR / case["files"]["pth"])
    assert not model.training
    _assert_weights(model, raw)
    state = model.state_dict(keep_vars=True)
    assert list(state) == list(raw)
    tensors = {id(t): t for t in state.values()}.values()  # model aliases counted once
    assert all(t.is_contiguous() and t.device.type == "cpu" for t in tensors)
    # the file stores tensors as overlapping strided views of one pool: the model must not
    assert len({t.data_ptr() for t in tensors}) == len(tensors)


def test_as_trained_keeps_the_training_construction() -> None:
    case = next(c for c in CHECKPOINTS if "ManyAR_PatchEmbed" in c["constructor"])
    path = GOLDEN_DIR / case["files"]["pth"]
    trained = open_checkpoint(path, as_trained=True).config
    inference = open_checkpoint(path).config
    assert (trained.patch_embed_cls, trained.landscape_only) == ("ManyAR_PatchEmbed", True)
    assert (inference.patch_embed_cls, inference.landscape_only) == ("PatchEmbedDust3R", False)
    _assert_weights(load_model(path, as_trained=True), _raw(case)["model"])


# ---------------------------------------------------------------- safety

def _create_marker(path: str) -> dict:
    """Runs only if the pickle is executed: the proof that a load ran foreign code."""
    Path(path).write_text("code ran")
    return {}


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return _create_marker, (str(self.marker),)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_malicious_pickle_is_refused_without_running(tmp_path: Path, zip_format: bool) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    content = _raw(HF_CASE)
    content["extra"] = _Payload(marker)
    torch.save(content, path, _use_new_zipfile_serialization=zip_format)
    message = _error(path)
    assert not marker.exists()
    assert str(path) in message
    payload = f"{_create_marker.__module__}.{_create_marker.__qualname__}"
    assert f"the file's pickle needs {payload}, which" in message  # only the payload is named
    # the payload is live: an unrestricted unpickling does run it
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize("make, fragment", [
    (lambda p: p.write_bytes(b"certainly not a checkpoint"), "not a readable PyTorch checkpoint"),
    (lambda p: p.write_bytes((GOLDEN_DIR / HF_CASE["files"]["pth"]).read_bytes()[:40000]),
     "not a readable PyTorch checkpoint"),
    (lambda p: torch.save([torch.zeros(2)], p), "found a list"),
    (lambda p: torch.save(_raw(HF_CASE)["model"], p), "expected a dict with a 'model'"),
    (lambda p: torch.save({"model": {"w": torch.zeros(1)}, "args": {}}, p), "args.model"),
    (lambda p: torch.save({**_raw(HF_CASE), "model": {"w": 3}}, p), "non-tensor entries"),
    (lambda p: torch.save({**_raw(HF_CASE), "args": argparse.Namespace(
        model="__import__('os').system('echo ran')")}, p), "model constructor must be one call"),
    (lambda p: torch.save({**_raw(HF_CASE), "args": argparse.Namespace(
        model=HF_CASE["constructor"].replace("RoPE100", "cosine"))}, p), "pos_embed 'cosine'"),
], ids=["junk", "truncated", "list", "bare_state_dict", "no_constructor", "non_tensor",
        "code_as_constructor", "unsupported_architecture"])
def test_bad_files_name_file_and_problem(tmp_path: Path, make, fragment: str) -> None:
    path = tmp_path / "bad.pth"
    make(path)
    message = _error(path)
    assert message.startswith(f"{path}: ") and fragment in message


# ---------------------------------------------------------------- strict key checking

def test_missing_unexpected_and_mis_shaped_keys_are_listed(tmp_path: Path) -> None:
    raw = _raw(HF_CASE)["model"]
    dropped = list(raw)[5]
    flipped = next(k for k, t in raw.items()
                   if k != dropped and t.ndim == 2 and t.shape[0] != t.shape[1])
    rows, cols = raw[flipped].shape

    def edit(state):
        del state[dropped]
        state[flipped] = state[flipped].t()
        state["extra_head.weight"] = torch.zeros(3)
        return state

    path = _variant(tmp_path, HF_CASE, edit)
    message = _error(path)
    assert message.startswith(f"{path}: the weights do not match")
    assert f"missing keys (1): {dropped}\n" in message
    assert "unexpected keys (1): extra_head.weight\n" in message
    assert f"shape mismatches (1): {flipped} (checkpoint {cols}x{rows}, model {rows}x{cols})" \
        in message


def test_long_key_lists_are_truncated_with_a_count(tmp_path: Path) -> None:
    encoder = [k for k in _raw(HF_CASE)["model"] if k.startswith("enc_blocks.")]
    assert len(encoder) > MAX_LISTED
    path = _variant(tmp_path, HF_CASE, lambda s: {k: v for k, v in s.items() if k not in encoder})
    message = _error(path)
    shown = ", ".join(encoder[:MAX_LISTED])
    assert f"missing keys ({len(encoder)}): {shown}, ... and {len(encoder) - MAX_LISTED} more" \
        in message


def test_dec_blocks2_copied_only_when_wholly_absent(tmp_path: Path) -> None:
    raw = _raw(HF_CASE)["model"]
    second = [k for k in raw if k.startswith("dec_blocks2.")]
    path = _variant(tmp_path, HF_CASE, lambda s: {k: v for k, v in s.items() if k not in second})
    state = load_model(path).state_dict()
    assert second and all(torch.equal(state[k], raw[k.replace("dec_blocks2.", "dec_blocks.")])
                          for k in second)
    path = _variant(tmp_path, HF_CASE, lambda s: {k: v for k, v in s.items() if k != second[0]})
    message = _error(path)
    assert f"missing keys (1): {second[0]}" in message and "unexpected" not in message


def test_module_prefix_and_pretraining_leftovers_are_accepted(tmp_path: Path) -> None:
    raw = _raw(HF_CASE)["model"]
    leftovers = {"enc_pos_embed": torch.zeros(4, 8), "dec_pos_embed": torch.zeros(4, 8),
                 "prediction_head.proj.weight": torch.zeros(2, 2)}
    path = _variant(tmp_path, HF_CASE,
                    lambda s: {f"module.{k}": v for k, v in {**s, **leftovers}.items()})
    _assert_weights(load_model(path), raw)


@pytest.mark.parametrize("keep", ["layerK_rn", "layer_rn.K-1"])
def test_either_alias_name_supplies_the_shared_tensor(tmp_path: Path, keep: str) -> None:
    raw = _raw(DPT_CASE)["model"]
    secondary = [k for k in raw if SECONDARY_ALIAS.search(k)]
    primary = [re.sub(r"layer_rn\.(\d+)", lambda m: f"layer{int(m[1]) + 1}_rn", k)
               for k in secondary]
    drop = set(secondary if keep == "layerK_rn" else primary)
    assert secondary and all(k in raw for k in primary)
    path = _variant(tmp_path, DPT_CASE, lambda s: {k: v for k, v in s.items() if k not in drop})
    model = load_model(path)
    _assert_weights(model, raw)
    state = model.state_dict()
    assert all(state[a].data_ptr() == state[b].data_ptr() for a, b in zip(primary, secondary,
                                                                          strict=True))


def test_alias_names_holding_different_values_are_refused(tmp_path: Path) -> None:
    raw = _raw(DPT_CASE)["model"]
    secondary = next(k for k in raw if SECONDARY_ALIAS.search(k))
    path = _variant(tmp_path, DPT_CASE, lambda s: {**s, secondary: s[secondary] + 1})
    message = _error(path)
    assert "aliases of one tensor holding different values (1): " in message
    assert secondary in message


# ---------------------------------------------------------------- Hugging Face folders

def test_hf_folder_equals_pth_weights() -> None:
    hf_dir = GOLDEN_DIR / HF_CASE["files"]["hf_dir"]
    reference = load_model(GOLDEN_DIR / HF_CASE["files"]["pth"]).state_dict()
    for spec in (hf_dir, hf_dir / "model.safetensors", str(hf_dir)):
        _assert_weights(load_model(spec), reference)


def _constructor_kwargs(text: str) -> dict:
    """Keyword arguments of a constructor string, parsed without evaluating it."""
    call = ast.parse(text.strip(), mode="eval").body
    return {kw.arg: ast.literal_eval(re.sub(r"\binf\b", "1e999", ast.unparse(kw.value)))
            for kw in call.keywords}


def test_hf_layout_of_a_dpt_checkpoint_loads_like_the_pth(tmp_path: Path) -> None:
    """The hub mixin's layout: aliases dropped from the safetensors, kwargs in config.json."""
    raw = _raw(DPT_CASE)["model"]
    save_file({k: v.contiguous().clone() for k, v in raw.items() if not SECONDARY_ALIAS.search(k)},
              tmp_path / "model.safetensors")
    kwargs = _constructor_kwargs(DPT_CASE["load_model_constructor"])
    text = json.dumps(kwargs)
    assert "Infinity" in text  # bare tokens, as the mixin writes them
    (tmp_path / "config.json").write_text(text)
    assert open_checkpoint(tmp_path).config == parse_constructor(
        DPT_CASE["load_model_constructor"])
    _assert_weights(load_model(tmp_path), raw)


@pytest.mark.parametrize("broken, fragment", [
    ("config.json", "config.json is missing"),
    ("config.json:{not json", "not a readable JSON file"),
    ("config.json:[1, 2]", "expected a JSON object"),
    ("model.safetensors", "model.safetensors is missing"),
    ("model.safetensors:garbage", "not a readable safetensors file"),
], ids=["no_config", "bad_json", "json_list", "no_weights", "bad_weights"])
def test_broken_hf_folders_name_the_file(tmp_path: Path, broken: str, fragment: str) -> None:
    source = GOLDEN_DIR / HF_CASE["files"]["hf_dir"]
    for name in hub.HF_FILES:
        (tmp_path / name).write_bytes((source / name).read_bytes())
    name, _, content = broken.partition(":")
    if content:
        (tmp_path / name).write_text(content)
    else:
        (tmp_path / name).unlink()
    message = _error(tmp_path)
    assert message.startswith(str(tmp_path)) and fragment in message


# ---------------------------------------------------------------- registry and hub

KEY_CASES = {Path(c["files"]["keys"]).stem: c for c in CASES if c["kind"] == "keys"}
# the DUSt3R family's entries (SLAM3R's are checked in test_slam3r_loading.py)
PAIR_NETWORKS = [e for e in OFFICIAL if e.arch not in SLAM3R_ARCHS]


@pytest.mark.parametrize("entry", PAIR_NETWORKS, ids=[e.name for e in PAIR_NETWORKS])
def test_registry_architecture_equals_published_constructor(entry) -> None:
    if entry.name not in KEY_CASES:
        pytest.skip(f"the golden folder has no key list of {entry.name}")
    case = KEY_CASES[entry.name]
    assert registry_config(entry.name) == parse_constructor(case["load_model_constructor"])


@pytest.mark.parametrize("name, official", [
    ("dust3r-224-linear", "DUSt3R_ViTLarge_BaseDecoder_224_linear"),
    ("dust3r-512-linear", "DUSt3R_ViTLarge_BaseDecoder_512_linear"),
    ("dust3r-512-dpt", "DUSt3R_ViTLarge_BaseDecoder_512_dpt"),
    ("dust3r", "DUSt3R_ViTLarge_BaseDecoder_512_dpt"),
    ("MASt3R", "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric"),
    ("monst3r", "MonST3R_PO-TA-S-W_ViTLarge_BaseDecoder_512_dpt"),
    ("naver/DUSt3R_ViTLarge_BaseDecoder_512_linear", "DUSt3R_ViTLarge_BaseDecoder_512_linear"),
    ("MonST3R_PO-TA-S-W_ViTLarge_BaseDecoder_512_dpt",
     "MonST3R_PO-TA-S-W_ViTLarge_BaseDecoder_512_dpt"),
])
def test_registry_names_resolve(name: str, official: str) -> None:
    assert find_official(name).name == official


def test_unknown_name_lists_the_known_ones() -> None:
    assert find_official("dust3r-1024") is None
    with pytest.raises(CheckpointError, match="unknown model name 'dust3r-1024'; known names"):
        registry_config("dust3r-1024")


def _run_offline(tmp_path: Path, code: str, **env: str) -> str:
    """Run `code` in a fresh interpreter with an empty HF cache; return its stdout."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    environ.update(HF_HOME=str(tmp_path / "hf_home"), **env)
    done = subprocess.run([sys.executable, "-c", code], env=environ, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


CATCH = """
from recon4d.errors import CheckpointError
try:
    {call}
except CheckpointError as exc:
    print(exc)
"""


def test_offline_gives_one_paragraph_with_the_way_out(tmp_path: Path) -> None:
    message = _run_offline(tmp_path, CATCH.format(
        call="from recon4d.models import load_model; load_model('dust3r-512-dpt')"),
        HF_HUB_OFFLINE="1")
    repo = find_official("dust3r-512-dpt").repo_id
    assert message.startswith(f"could not download the weights of {repo!r}: offline mode")
    assert "\n" not in message
    assert str(tmp_path / "hf_home") in message
    for hint in ("--weights PATH", ".pth", "config.json and model.safetensors", "HF_HOME"):
        assert hint in message


def test_unreachable_hub_gives_the_same_advice(tmp_path: Path) -> None:
    message = _run_offline(tmp_path, CATCH.format(
        call="from recon4d.models.hub import download; download('naver/none')"),
        HF_ENDPOINT="http://127.0.0.1:9")  # nothing listens on the discard port
    assert message.startswith("could not download the weights of 'naver/none': the Hugging "
                              "Face Hub could not be reached")
    assert "\n" not in message and "--weights PATH" in message
