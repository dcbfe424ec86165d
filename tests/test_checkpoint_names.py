"""Checkpoint specs: explicit hf-hub:/file: forms, registry names, existing paths; no guessing.

Truth: the spec's naming rules, and the golden tiny Hugging Face folder read with plain
`safetensors`. Hub forms are served by huggingface_hub itself from a Hugging Face cache built
in a temporary folder, in offline mode (no network).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import load_file

from recon4d.errors import CheckpointError
from recon4d.models import hub, load_model
from recon4d.models.registry import find_official
from recon4d.models.specs import CheckpointSource, parse_spec
from tests.conftest import GOLDEN_DIR, load_manifest

HF_DIR = GOLDEN_DIR / next(c["files"]["hf_dir"] for c in load_manifest()["cases"]
                           if c["kind"] == "checkpoint" and "hf_dir" in c["files"])
DUST3R = find_official("dust3r-512-dpt").repo_id
MAST3R = find_official("mast3r").repo_id
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def no_download(monkeypatch) -> None:
    """Make any download attempt fail the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args}")
    monkeypatch.setattr(hub, "download", refuse)


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch) -> Path:
    """An empty Hugging Face cache in offline mode (as HF_HUB_OFFLINE=1 and HF_HUB_CACHE)."""
    cache = tmp_path / "hf_cache"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def _cache_repo(cache: Path, repo_id: str, ref: str = "main") -> None:
    """Put the golden Hugging Face folder in `cache` as `repo_id` at branch or tag `ref`."""
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(HF_DIR, storage / "snapshots" / COMMIT)
    (storage / "refs").mkdir()
    (storage / "refs" / ref).write_text(COMMIT)


def _assert_golden_weights(model: torch.nn.Module) -> None:
    state = model.state_dict()
    reference = load_file(HF_DIR / "model.safetensors")
    assert reference and all(torch.equal(state[k], v) for k, v in reference.items())


def _refused(spec: str | Path) -> str:
    with pytest.raises(CheckpointError) as info:
        parse_spec(spec)
    return str(info.value)


# ---------------------------------------------------------------- the accepted forms

@pytest.mark.parametrize("spec, source", [
    ("hf-hub:someone/tiny_dust3r", CheckpointSource(repo_id="someone/tiny_dust3r")),
    ("hf-hub:someone/tiny.v2@main", CheckpointSource(repo_id="someone/tiny.v2", revision="main")),
    (f"hf-hub:someone/x@{COMMIT}", CheckpointSource(repo_id="someone/x", revision=COMMIT)),
    ("dust3r", CheckpointSource(repo_id=DUST3R)),
    ("MASt3R", CheckpointSource(repo_id=MAST3R)),
    (DUST3R, CheckpointSource(repo_id=DUST3R)),  # official repo ids are registry names
    (DUST3R.lower(), CheckpointSource(repo_id=DUST3R)),
])
def test_hub_forms_and_registry_names(spec: str, source: CheckpointSource) -> None:
    assert parse_spec(spec) == source


def test_existing_paths_in_every_form(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "owner").mkdir()
    (tmp_path / "owner" / "name").mkdir()  # an existing owner/name is a path, not a repo
    for spec in ("owner/name", "./owner/name", str(tmp_path / "owner/name"), "~/owner/name",
                 "file:owner/name", "file:~/owner/name", f"file:{tmp_path}/owner/name"):
        assert parse_spec(spec).path.resolve() == tmp_path / "owner" / "name", spec
    assert parse_spec(Path("owner/name")) == CheckpointSource(path=Path("owner/name"))


def test_hf_hub_spec_loads_from_the_cache_at_its_revision(offline_cache: Path) -> None:
    _cache_repo(offline_cache, "someone/tiny_dust3r", ref="v1")
    _assert_golden_weights(load_model("hf-hub:someone/tiny_dust3r@v1"))
    with pytest.raises(CheckpointError, match="of 'someone/tiny_dust3r': offline mode"):
        load_model("hf-hub:someone/tiny_dust3r")  # main is not in the cache


def test_registry_name_loads_its_repo_from_the_cache(offline_cache: Path) -> None:
    _cache_repo(offline_cache, MAST3R)  # the tiny weights stand in for the official ones
    _assert_golden_weights(load_model("mast3r"))


def test_missing_revision_is_named_in_the_offline_message(offline_cache: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        load_model("hf-hub:someone/tiny_dust3r@v2")
    message = str(info.value)
    assert message.startswith("could not download the weights of 'someone/tiny_dust3r' at "
                              "revision 'v2': offline mode")
    assert "hf download someone/tiny_dust3r --revision v2" in message


def test_file_form_loads_a_local_folder(no_download) -> None:
    _assert_golden_weights(load_model(f"file:{HF_DIR}"))


# ---------------------------------------------------------------- refused, never downloaded

@pytest.mark.parametrize("spec", [
    "./nowhere/model", "../nowhere", "/nowhere/at/all", "~/nowhere_recon4d_test",
    "model.pth", "weights/MODEL.SAFETENSORS", "someone/model.bin", "a/b/c", "runs\\model",
    "file:someone/tiny_dust3r", "file:dust3r",  # file: is never a name nor a download
])
def test_missing_paths_are_no_such_file(tmp_path: Path, monkeypatch, no_download,
                                        spec: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert _refused(spec) == f"{spec}: no such checkpoint file or folder"


def test_bare_repo_id_is_refused_with_the_explicit_form(no_download) -> None:
    assert _refused("someone/tiny_dust3r") == (
        "someone/tiny_dust3r: no such checkpoint file or folder; to download from the Hugging "
        "Face Hub write hf-hub:someone/tiny_dust3r")
    with pytest.raises(CheckpointError, match="write hf-hub:someone/tiny_dust3r"):
        load_model("someone/tiny_dust3r")


def test_unknown_bare_name_lists_the_known_ones(no_download) -> None:
    message = _refused("dust3r-1024")
    assert message.startswith("dust3r-1024: no such checkpoint file or folder, and not a known "
                              "model name (")
    assert "dust3r-512-dpt" in message and DUST3R.split("/")[1] in message


@pytest.mark.parametrize("spec", [
    "hf-hub:", "hf-hub:tiny_dust3r", "hf-hub:someone/tiny@", "hf-hub:a/b/c", "hf-hub:/abs/dir",
])
def test_malformed_hub_specs(spec: str) -> None:
    assert _refused(spec) == (f"{spec}: not a Hugging Face Hub spec; expected "
                              "hf-hub:owner/name or hf-hub:owner/name@revision")


def test_empty_file_form() -> None:
    assert _refused("file:") == "file:: no path given; expected file:PATH"


def test_a_path_object_is_never_a_name(tmp_path: Path, monkeypatch, no_download) -> None:
    monkeypatch.chdir(tmp_path)
    assert _refused(Path("dust3r")) == "dust3r: no such checkpoint file or folder"


def test_name_that_is_also_a_path_is_ambiguous(tmp_path: Path, monkeypatch, no_download) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dust3r").mkdir()
    assert _refused("dust3r") == (
        "dust3r: ambiguous: both a registry name and an existing path; write file:dust3r for "
        f"the local checkpoint or hf-hub:{DUST3R} for the download")
    assert parse_spec("file:dust3r") == CheckpointSource(path=Path("dust3r"))
    assert parse_spec(f"hf-hub:{DUST3R}") == CheckpointSource(repo_id=DUST3R)
