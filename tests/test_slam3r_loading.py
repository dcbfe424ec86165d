"""SLAM3R checkpoints: strict, safe loading and clear errors naming the file.

Truth: the vendored tiny official files read with plain torch / safetensors, edited copies of
them, and the published repository names and constructor strings (spec §1).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import load_file, save_file

from recon4d.errors import CheckpointError
from recon4d.models import load_model
from recon4d.models.registry import registry_config
from recon4d.models.slam3r.config import I2P, L2W, parse_slam3r_constructor
from recon4d.models.slam3r.loading import load_slam3r
from recon4d.models.specs import CheckpointSource, parse_spec
from tests.conftest import TEST_DATA, load_manifest

SET = TEST_DATA / "golden-slam3r"
CHECKPOINTS = {c["model_class"]: c for c in load_manifest(SET)["cases"]
               if c["kind"] == "slam3r_checkpoint"}
KEYS = {c["name"]: c for c in load_manifest(SET)["cases"] if c["kind"] == "slam3r_keys"}
DUST3R_SET = TEST_DATA / "golden"
DUST3R_CASE = next(c for c in load_manifest(DUST3R_SET)["cases"]
                   if c["kind"] == "checkpoint" and "hf_dir" in c["files"])


def _file(arch: str, kind: str = "pth") -> Path:
    return SET / CHECKPOINTS[arch]["files"][kind]


def _raw(arch: str) -> dict:
    """The .pth as plain torch reads it."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(_file(arch), map_location="cpu", weights_only=True)


def _pth_variant(tmp_path: Path, arch: str, edit) -> Path:
    content = _raw(arch)
    content["model"] = edit(dict(content["model"]))
    path = tmp_path / "variant.pth"
    torch.save(content, path)
    return path


def _hf_variant(tmp_path: Path, arch: str, edit) -> Path:
    folder = tmp_path / "variant_hf"
    shutil.copytree(_file(arch, "hf_dir"), folder)
    tensors = edit(load_file(folder / "model.safetensors"))
    save_file(tensors, folder / "model.safetensors")
    return folder


def _error(spec, loader=load_slam3r, **kwargs) -> str:
    with pytest.raises(CheckpointError) as info:
        loader(spec, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("arch", [I2P, L2W])
def test_weights_equal_the_file(arch: str) -> None:
    raw = _raw(arch)["model"]
    state = load_slam3r(_file(arch), expect=arch).state_dict()
    assert list(state) == list(raw)
    assert all(torch.equal(state[k], v) for k, v in raw.items())


def test_wrong_class_is_refused_naming_both() -> None:
    message = _error(_file(L2W), expect=I2P)
    assert message.startswith(str(_file(L2W)))
    assert "an L2W (Local2WorldModel) checkpoint" in message and "I2P" in message
    assert "L2W" in _error(_file(I2P, "hf_dir"), expect=L2W)


def test_dust3r_checkpoints_are_not_slam3r_and_vice_versa() -> None:
    pth = DUST3R_SET / DUST3R_CASE["files"]["pth"]
    message = _error(pth)
    assert message.startswith(str(pth)) and "unknown model class" in message
    assert "Image2PointsModel" in message
    hf = DUST3R_SET / DUST3R_CASE["files"]["hf_dir"]
    assert "a DUSt3R-family checkpoint" in _error(hf)
    assert "a SLAM3R checkpoint" in _error(_file(I2P, "hf_dir"), loader=load_model)
    assert "unknown model class 'Image2PointsModel'" in _error(_file(I2P), loader=load_model)


@pytest.mark.parametrize("variant", [_pth_variant, _hf_variant], ids=["pth", "hf"])
def test_missing_and_unexpected_keys_are_listed(tmp_path: Path, variant) -> None:
    def edit(state: dict) -> dict:
        state.pop("corr_score_norm.weight")
        state["mask_token"] = torch.zeros(1, 1, 32)
        return state

    path = variant(tmp_path, I2P, edit)
    message = _error(path)
    assert message.startswith(str(path))
    assert "missing keys (1): corr_score_norm.weight" in message
    assert "unexpected keys (1): mask_token" in message


def test_i2p_without_encoder_weights_is_refused(tmp_path: Path) -> None:
    path = _hf_variant(tmp_path, I2P, lambda s: {k: v for k, v in s.items()
                                                 if not k.startswith("enc_blocks.")})
    assert "missing keys (24): enc_blocks.0.norm1.weight" in _error(path)


def test_l2w_file_without_encoder_builds_without_encoder(tmp_path: Path) -> None:
    path = _hf_variant(tmp_path, L2W, lambda s: {k: v for k, v in s.items()
                                                 if not k.startswith("enc_blocks.")})
    model = load_slam3r(path)
    assert not model.config.need_encoder and len(model.enc_blocks) == 0
    assert "missing keys (24)" in _error(path, need_encoder=True)


def test_code_in_the_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "marker"

    class Payload:
        def __reduce__(self):
            return (Path.write_text, (marker, "code ran"))

    path = tmp_path / "evil.pth"
    torch.save({**_raw(I2P), "extra": Payload()}, path)
    message = _error(path)
    assert not marker.exists()
    assert message.startswith(str(path)) and "could run arbitrary code" in message


def test_constructor_is_parsed_never_run(tmp_path: Path) -> None:
    for constructor, fragment in [
        ("__import__('os').system('echo ran')", "must be one call"),
        ("Local2WorldModel(corr_depth=2)", "Local2WorldModel takes no argument 'corr_depth'"),
        ("Image2PointsModel(mv_dec1='MultiviewDecoderBlock_mean')", "mv_dec1"),
    ]:
        path = tmp_path / "bad.pth"
        torch.save({**_raw(I2P), "args": argparse.Namespace(model=constructor)}, path)
        message = _error(path)
        assert message.startswith(str(path)) and fragment in message, message


@pytest.mark.parametrize("name, repo, keys_case", [
    ("slam3r-i2p", "siyan824/slam3r_i2p", "slam3r_keys_slam3r_i2p"),
    ("slam3r-l2w", "siyan824/slam3r_l2w", "slam3r_keys_slam3r_l2w"),
])
def test_registry_names_are_the_published_repos_and_constructions(
        name: str, repo: str, keys_case: str) -> None:
    assert parse_spec(name) == CheckpointSource(repo_id=repo)
    assert registry_config(name) == parse_slam3r_constructor(KEYS[keys_case]["constructor"])


def test_registry_name_loads_through_the_hub_cache(tmp_path: Path, monkeypatch) -> None:
    """The `hf-hub:` download path, served offline from a cache holding the tiny folder."""
    cache = tmp_path / "hf_cache"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    commit = "0123456789abcdef0123456789abcdef01234567"
    storage = cache / "models--siyan824--slam3r_i2p"
    shutil.copytree(_file(I2P, "hf_dir"), storage / "snapshots" / commit)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(commit)
    state = load_slam3r("slam3r-i2p", expect=I2P).state_dict()
    raw = _raw(I2P)["model"]
    assert all(torch.equal(state[k], v) for k, v in raw.items())
