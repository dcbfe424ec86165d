"""SAM 2 refinement plumbing with a randomly initialised small SAM 2 (Hiera-T built from its own
config at a 128-pixel input, so it runs in seconds), saved in the official checkpoint format and
loaded back through `load_sam2`: shapes, the OR, prompts reaching the model, the inference state
against sam2's own `init_state`, the `recon4d masks --sam2` wiring and the errors. No weights:
what the masks look like is not judged (a random SAM 2 segments nothing in particular)."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.resources
import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from recon4d import models
from recon4d.cli import main
from recon4d.dynamics import sam2_refine
from recon4d.dynamics.masks import MotionMasks
from recon4d.dynamics.sam2_refine import config_for, load_sam2, refine_masks, sam2_masks
from recon4d.errors import CheckpointError, InputError, OptionError, Recon4dError
from recon4d.io.layout import SCENE_JSON
from recon4d.options import MotionOptions
from recon4d.pipeline import motion as motion_masks
from recon4d.synthetic import generate_scene, write_scene
from tests.test_masks_cli import image_folder, masks_cli, network, read_pngs

build_sam = pytest.importorskip(
    "sam2.build_sam", reason="the sam2 package is not installed (extra sam2: "
                             "`bash scripts/setup sam2`; CI installs it with dev)")

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SIZE = 128  # the model's square input (the released models use their config's 1024)
N, H, W = 3, 40, 56  # frames at "model resolution"


@pytest.fixture(scope="module")
def state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = build_sam.build_sam2_video_predictor(CONFIG, None, device="cpu",
                                                 hydra_overrides_extra=[f"++model.image_size={SIZE}"])
    return model.state_dict()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, state_dict):
    """The official layout {"model": state dict}, under a released name (the config follows)."""
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": state_dict}, path)
    return path


@pytest.fixture(scope="module")
def refiner(checkpoint):
    return load_sam2(checkpoint, image_size=SIZE)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """(N, H, W, 3) uint8: noise with a bright square moving right."""
    video = np.random.default_rng(0).integers(0, 256, (N, H, W, 3), np.uint8)
    for k in range(N):
        video[k, 10:26, 8 + 10 * k:24 + 10 * k] = 255
    return video


def square_masks() -> np.ndarray:
    masks = np.zeros((N, H, W), bool)
    for k in range(N):
        masks[k, 10:26, 8 + 10 * k:24 + 10 * k] = True
    return masks


def save(path, payload):
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(("name", "config"), [
    ("sam2.1_hiera_tiny.pt", "configs/sam2.1/sam2.1_hiera_t.yaml"),
    ("sam2.1_hiera_small.pt", "configs/sam2.1/sam2.1_hiera_s.yaml"),
    ("sam2.1_hiera_base_plus.pt", "configs/sam2.1/sam2.1_hiera_b+.yaml"),
    ("/ckpt/sam2.1_hiera_large.pt", "configs/sam2.1/sam2.1_hiera_l.yaml"),
    ("sam2_hiera_large.pt", "configs/sam2/sam2_hiera_l.yaml"),
    ("my_finetune.pt", "configs/sam2.1/sam2.1_hiera_l.yaml"),
    ("sam2.1_hiera_tiny_v2.pt", "configs/sam2.1/sam2.1_hiera_l.yaml"),
])
def test_released_names_give_their_config(name, config):
    assert config_for(name) == config
    assert importlib.resources.files("sam2").joinpath(config).is_file()


def test_the_checkpoint_loads_into_the_model_of_its_config(refiner, state_dict, checkpoint):
    assert refiner.config == CONFIG and refiner.checkpoint == checkpoint
    assert refiner.predictor.image_size == SIZE and not refiner.predictor.training
    loaded = refiner.predictor.state_dict()
    assert loaded.keys() == state_dict.keys()
    assert all(torch.equal(loaded[k], state_dict[k]) for k in state_dict)
    assert refiner.record() == {"checkpoint": str(checkpoint), "config": CONFIG,
                                "image_size": SIZE, "prompting": "alternate"}


def test_refined_masks_contain_the_input_masks(refiner, frames):
    masks = square_masks()
    refined = refine_masks(refiner, frames, masks)
    assert refined.shape == (N, H, W) and refined.dtype == np.bool_
    assert refined[masks].all()


def test_prompts_reach_the_model(refiner, frames):
    empty = sam2_masks(refiner, frames, np.zeros((N, H, W), bool))
    full = sam2_masks(refiner, frames, np.ones((N, H, W), bool))
    assert empty.shape == full.shape == (N, H, W)
    # every frame's SAM 2 mask comes from the other frames' prompts: changing them changes it
    assert all((empty[k] != full[k]).mean() > 0.01 for k in range(N)), \
        [(empty[k] != full[k]).mean() for k in range(N)]


def test_inference_state_is_the_one_init_state_builds(refiner, frames, tmp_path):
    for k, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"{k}.jpg")
    theirs = refiner.predictor.init_state(str(tmp_path))
    video = torch.from_numpy(frames).permute(0, 3, 1, 2)
    ours = sam2_refine._inference_state(sam2_refine._ModelFrames(video, SIZE), refiner.device)
    assert ours.keys() == theirs.keys()
    for key in ("num_frames", "video_height", "video_width", "device", "storage_device"):
        assert ours[key] == theirs[key], key
    assert ours["images"][1].shape == theirs["images"][1].shape == (3, SIZE, SIZE)
    # both are the same frame, normalised the same way (they resize with PIL, we with torch)
    assert abs(float(ours["images"][1].mean() - theirs["images"][1].mean())) < 0.05


def test_masks_command_refines_both_attention_passes(tmp_path, checkpoint, monkeypatch):
    small = functools.partial(load_sam2, image_size=SIZE)
    monkeypatch.setattr(motion_masks, "load_sam2", small)
    calls = []

    def counted(refiner, images, masks):
        calls.append(masks.copy())
        return refine_masks(refiner, images, masks)
    monkeypatch.setattr(motion_masks, "refine_masks", counted)
    out = tmp_path / "out"
    assert masks_cli(image_folder(tmp_path, 3), "--out", out, "--sam2", checkpoint,
                     *network()) == 0
    assert len(calls) == 2  # pass 1's masks before they steer pass 2, and pass 2's
    scene = json.loads((out / SCENE_JSON).read_text())
    assert scene["masks"]["method"] == "easi3r+sam2"
    assert scene["masks"]["sam2"]["config"] == CONFIG
    assert scene["options"]["motion"]["sam2"] == str(checkpoint)
    assert read_pngs(out, 3).shape[0] == 3


def test_reconstruct_records_the_refinement(tmp_path, checkpoint, monkeypatch):
    monkeypatch.setattr(motion_masks, "load_sam2", functools.partial(load_sam2, image_size=SIZE))
    folder = write_scene(generate_scene(frames=4, width=64, height=48, movers=1, seed=0),
                         tmp_path / "scene")
    out = tmp_path / "out"
    assert main(["reconstruct", "--oracle", str(folder), "--out", str(out), "--sam2",
                 str(checkpoint), "--graph", "swin-1", "--formats", "trajectory"]) == 0
    record = json.loads((out / SCENE_JSON).read_text())["motion"]
    assert record["method"] == "flow:dis+sam2"
    assert record["sam2"]["config"] == CONFIG and record["sam2"]["checkpoint"] == str(checkpoint)


def test_refinement_needs_the_frames(refiner):
    masks = MotionMasks(np.zeros((N, H, W), bool), np.zeros((N, H, W), np.float32), 0.5, "x")
    assert motion_masks.refined(masks, None, None) is masks
    with pytest.raises(InputError, match="--sam2 needs the frames"):
        motion_masks.refined(masks, None, refiner)


def test_a_missing_checkpoint_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the network was loaded")
    monkeypatch.setattr(models, "load_model", refuse)
    assert masks_cli(image_folder(tmp_path), "--out", tmp_path / "out", "--sam2",
                     tmp_path / "none.pt", *network()) == 2
    assert f"{tmp_path / 'none.pt'}: SAM 2 checkpoint not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_config_needs_a_checkpoint():
    with pytest.raises(OptionError, match="--sam2-config needs --sam2"):
        MotionOptions(sam2_config=CONFIG)


@pytest.mark.parametrize(("payload", "message"), [
    (b"not a torch file", "not a SAM 2 checkpoint (unreadable"),
    ({"state_dict": {"w": torch.zeros(1)}}, "not a SAM 2 checkpoint (expected a dict with"),
    ({"model": {"w": [1, 2]}}, "not a SAM 2 checkpoint (expected a dict with"),
])
def test_files_that_are_not_sam2_checkpoints(tmp_path, payload, message):
    path = tmp_path / "bad.pt"
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    else:
        save(path, payload)
    with pytest.raises(CheckpointError, match=rf"{path}: {message}".replace("(", r"\(")):
        load_sam2(path)


def test_keys_that_do_not_match_the_config_are_listed(tmp_path, state_dict):
    edited = dict(state_dict)
    del edited["obj_ptr_proj.layers.0.weight"]
    edited["extra.weight"] = torch.zeros(2)
    path = save(tmp_path / "edited.pt", {"model": edited})
    with pytest.raises(CheckpointError) as info:
        load_sam2(path, CONFIG, image_size=SIZE)
    message = str(info.value)
    assert f"{path}: does not match SAM 2 config {CONFIG}" in message
    assert "1 missing keys (obj_ptr_proj.layers.0.weight)" in message
    assert "1 unexpected keys (extra.weight)" in message


def test_a_checkpoint_of_another_size_is_refused(tmp_path, state_dict):
    edited = {**state_dict, "no_mem_embed": torch.zeros(1, 1, 8)}
    path = save(tmp_path / "edited.pt", {"model": edited})
    with pytest.raises(CheckpointError, match="does not match SAM 2 config.*no_mem_embed"):
        load_sam2(path, CONFIG, image_size=SIZE)


def test_an_unknown_config_lists_the_package_configs(checkpoint):
    with pytest.raises(OptionError, match="not a config of the sam2 package.*sam2.1_hiera_t"):
        load_sam2(checkpoint, "configs/sam3/huge.yaml")


def test_a_missing_package_names_the_extra(checkpoint, monkeypatch):
    monkeypatch.setitem(sys.modules, "sam2.build_sam", None)  # import fails
    with pytest.raises(Recon4dError, match="needs the package 'sam2'.*scripts/setup sam2"):
        load_sam2(checkpoint)


def test_an_unknown_package_version_is_refused(checkpoint, monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9")
    with pytest.raises(Recon4dError, match="sam2 9.9 is not supported"):
        load_sam2(checkpoint)


@pytest.mark.parametrize(("frames_shape", "masks_shape", "message"), [
    ((1, H, W, 3), (1, H, W), "at least 2 frames"),
    ((N, H, W, 3), (N, H, W + 1), "do not match the frames"),
    ((N, H, W), (N, H, W), "must be uint8 \\(N, H, W, 3\\)"),
])
def test_bad_inputs_are_refused(refiner, frames_shape, masks_shape, message):
    with pytest.raises(InputError, match=message):
        refine_masks(refiner, np.zeros(frames_shape, np.uint8), np.zeros(masks_shape, bool))
