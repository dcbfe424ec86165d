"""Golden runners of kinds `slam3r_preprocess` (SLAM3R's image loader), `slam3r_checkpoint` (tiny
official files) and `slam3r_keys` (full-size key lists). The last two assert and return None.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import torch

from recon4d.io.slam3r_images import load_slam3r_images
from recon4d.models.loading import read_hf_folder
from recon4d.models.slam3r.config import parse_slam3r_constructor, slam3r_config_from_hf
from recon4d.models.slam3r.loading import load_slam3r, open_slam3r_checkpoint
from recon4d.models.slam3r.network import build_slam3r
from tests.golden_runners.checkpoints import _check_loaded, _dtype_name, _first_difference


def run_slam3r_preprocess(case: dict, root: Path) -> dict[str, np.ndarray]:
    """`load_images` on `files.folder`, or on the list `files.images` from the set's folder."""
    root, params, files = Path(root), case["params"], case["files"]
    options = {k: params[k] for k in ("img_num", "img_freq", "postfix", "start_idx")}
    if case["input_mode"] == "folder":
        views = load_slam3r_images(root / files["folder"], size=params["size"], **options)
    else:
        assert case["input_mode"] == "list", f"unknown input_mode {case['input_mode']!r}"
        with contextlib.chdir(root):
            views = load_slam3r_images(files["images"], size=params["size"], **options)
    got = [{k: view[k] for k in ("idx", "instance", "label")} for view in views]
    assert got == case["expected_views"], f"{case['name']}: {got}"
    out = {}
    for k, view in enumerate(views):
        u8 = torch.round((view["img"] + 1) * 127.5).clamp_(0, 255).to(torch.uint8)
        assert torch.equal((u8.float() / 255 - 0.5) / 0.5, view["img"]), (
            f"{case['name']} view {k}: img is not (u8/255 - 0.5)/0.5 of any uint8 image")
        out[f"view{k}.img_uint8"] = u8.numpy()
        out[f"view{k}.true_shape"] = view["true_shape"]
    return out


def run_slam3r_checkpoint(case: dict, root: Path) -> None:
    """Both files load strictly with the named class, keys, shapes and checksums; an L2W built
    without encoder drops exactly the listed `enc_blocks.*` keys."""
    root, files = Path(root), case["files"]
    listing = json.loads((root / files["keys"]).read_text())
    config = parse_slam3r_constructor(case["constructor"])
    assert config.arch == case["model_class"] and listing["constructor"] == case["constructor"]
    model = load_slam3r(root / files["pth"], expect=case["model_class"])
    assert model.config == config, f"{case['name']}: built {model.config}"
    _check_loaded(case, listing, model)
    kwargs, shapes, _ = read_hf_folder(root / files["hf_dir"])
    assert len(shapes) == case["hf_safetensors_num_keys"]
    assert (set(shapes) == set(model.state_dict())) == case["hf_safetensors_same_key_set_as_pth"]
    assert slam3r_config_from_hf(_json_infinities(case["hf_config"]), config.arch) == config
    assert slam3r_config_from_hf(kwargs, config.arch) == config
    hf_model = load_slam3r(root / files["hf_dir"], expect=case["model_class"])
    _check_loaded(case, listing, hf_model)
    hf_state = hf_model.state_dict()
    assert all(torch.equal(t, hf_state[k]) for k, t in model.state_dict().items()), case["name"]
    if "constructor_no_encoder" in case:
        lean_config = parse_slam3r_constructor(case["constructor_no_encoder"])
        assert not lean_config.need_encoder
        for source in (files["pth"], files["hf_dir"]):
            lean = load_slam3r(root / source, need_encoder=False)
            assert lean.config == lean_config
            dropped = [k for k in model.state_dict() if k not in lean.state_dict()]
            assert dropped == case["no_encoder_dropped_keys"], f"{case['name']}: {dropped}"
            lean_state = lean.state_dict()
            assert all(torch.equal(t, model.state_dict()[k]) for k, t in lean_state.items())
        assert open_slam3r_checkpoint(root / files["pth"], need_encoder=False).config == lean_config


def run_slam3r_keys(case: dict, root: Path) -> None:
    """The full-size architecture built on the meta device has the listed keys, shapes, dtypes
    and counts; the config.json the hub mixin writes for it describes the same architecture."""
    listing = json.loads((Path(root) / case["files"]["keys"]).read_text())
    config = parse_slam3r_constructor(case["constructor"])
    assert listing["constructor"] == case["constructor"]
    state = build_slam3r(config, device="meta").state_dict()
    actual = [(k, list(t.shape), _dtype_name(t)) for k, t in state.items()]
    expected = [(e["key"], e["shape"], e["dtype"]) for e in listing["state_dict"]]
    assert actual == expected, f"{case['name']}: {_first_difference(actual, expected)}"
    assert len(state) == listing["num_tensors"] == case["num_tensors"]
    assert sum(t.numel() for t in state.values()) == listing["num_params"] == case["num_params"]
    assert listing["num_params_unique"] == case["num_params_unique"] == listing["num_params"]
    assert listing["hf_safetensors_keys_dropped"] == []
    for hf_config in (json.loads(listing["hf_config_json"]), _json_infinities(case["hf_config"])):
        assert slam3r_config_from_hf(hf_config, config.arch) == config


def _json_infinities(value: object) -> object:
    """The manifest's JSON with infinities written as strings, as config.json's bare tokens."""
    tokens = {"Infinity": float("inf"), "-Infinity": float("-inf")}
    if isinstance(value, dict):
        return {k: _json_infinities(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_infinities(v) for v in value]
    return tokens.get(value, value) if isinstance(value, str) else value
