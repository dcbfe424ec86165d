"""`recon4d reconstruct` on videos with movers: the dynamic path end to end (oracle, given masks,
predictions file, tiny checkpoint), its 4D outputs, and its bad inputs."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from PIL import Image

from recon4d.cli import main
from recon4d.eval import pose_metrics
from recon4d.io.layout import (
    DYNAMIC_CLOUD_DIR,
    DYNAMIC_MASK_DIR,
    MONST3R_DIR,
    RENDER_VIDEO,
    SCENE_JSON,
    STATIC_CLOUD_FILE,
    TRAJECTORY_FILE,
)
from recon4d.synthetic import generate_scene, write_scene
from tests.conftest import GOLDEN_DIR

TINY = GOLDEN_DIR / "checkpoints" / "tiny_dust3r_linear.pth"
# the tiny golden checkpoint, small and quick (structure only)
TINY_RUN = ["--weights", f"file:{TINY}", "--size", "128", "--niter", "2", "--device", "cpu"]
FAST = ["--graph", "swin-2", "--formats", "trajectory,dynamic_mask,static_ply,dynamic_ply"]


@pytest.fixture(scope="module")
def movers(tmp_path_factory):
    """A 10-frame 96x64 scene with two movers, on disk, and its ground truth."""
    scene = generate_scene(frames=10, width=96, height=64, movers=2, seed=4, stops=False)
    return write_scene(scene, tmp_path_factory.mktemp("movers") / "scene"), scene


def read_masks(folder, count: int) -> np.ndarray:
    return np.stack([np.asarray(Image.open(folder / DYNAMIC_MASK_DIR / f"{i:06d}.png")) > 127
                     for i in range(count)])


def run(*args) -> int:
    return main(["reconstruct", *map(str, args)])


def test_oracle_video_takes_the_dynamic_path_with_flow_masks(movers, tmp_path):
    folder, scene = movers
    out = tmp_path / "run"
    assert run("--oracle", folder, "--out", out, *FAST) == 0
    doc = json.loads((out / SCENE_JSON).read_text())
    assert doc["motion"]["method"] == "flow:dis" and 0 < doc["motion"]["moving_fraction"] < 0.5
    masks, truth = read_masks(out, 10), scene.dynamic_mask
    # the flow masks point at the movers: a masked pixel is a mover more often than a pixel
    # taken at random (J itself is low at 96x64: issue 10's benchmark measures it at 256x192)
    assert truth[masks].mean() > 2 * truth.mean()  # measured: 2.6x
    assert (out / STATIC_CLOUD_FILE).is_file()
    assert sorted(p.name for p in (out / DYNAMIC_CLOUD_DIR).iterdir()) == [
        f"{i:06d}.ply" for i in range(10)]


def test_given_true_masks_beat_the_static_path(movers, tmp_path):
    folder, scene = movers
    truth = folder / DYNAMIC_MASK_DIR
    assert run("--oracle", folder, "--out", tmp_path / "given", "--masks", truth, *FAST) == 0
    assert run("--oracle", folder, "--out", tmp_path / "static", "--motion", "none",
               *FAST[:2], "--formats", "trajectory") == 0
    gt = folder / TRAJECTORY_FILE
    given = pose_metrics(tmp_path / "given" / TRAJECTORY_FILE, gt)["ate"]
    static = pose_metrics(tmp_path / "static" / TRAJECTORY_FILE, gt)["ate"]
    assert given < static
    np.testing.assert_array_equal(read_masks(tmp_path / "given", 10), scene.dynamic_mask)
    doc = json.loads((tmp_path / "given" / SCENE_JSON).read_text())
    assert doc["motion"]["method"] == "given" and doc["motion"]["folder"] == str(truth)
    assert not (tmp_path / "static" / DYNAMIC_MASK_DIR).exists()


def test_default_4d_outputs_include_the_originals_layout_and_render(movers, tmp_path):
    folder, _ = movers
    out = tmp_path / "run"
    assert run("--oracle", folder, "--out", out, "--graph", "swin-2", "--masks",
               folder / DYNAMIC_MASK_DIR, "--niter", "2") == 0
    for name in (STATIC_CLOUD_FILE, RENDER_VIDEO, "depth.mp4", "conf.gif", "dynamic_mask.mp4",
                 f"{MONST3R_DIR}/pred_traj.txt", f"{MONST3R_DIR}/dynamic_mask_9.png"):
        assert (out / name).is_file(), name


def test_bad_masks_folder_fails_before_any_work(movers, tmp_path, capsys):
    folder, _ = movers
    few = tmp_path / "few"
    few.mkdir()
    Image.fromarray(np.zeros((64, 96), np.uint8)).save(few / "0.png")
    assert run("--oracle", folder, "--out", tmp_path / "out", "--masks", few) == 2
    assert "1 mask file(s) for 10 frames" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert run("--oracle", folder, "--out", tmp_path / "out", "--masks", few,
               "--motion", "flow") == 2
    assert "--masks replaces --motion flow" in capsys.readouterr().err


def write_frames(folder, count: int) -> None:
    """Numbered textured frames (a video's frames as files)."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(count):
        pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"frame_{k:04d}.png")


def test_tiny_checkpoint_numbered_frames_run_the_attention_path(tmp_path):
    frames = tmp_path / "frames"
    write_frames(frames, 4)
    out = tmp_path / "run"
    assert run(frames, "--out", out, *TINY_RUN, "--graph", "complete",
               "--formats", "trajectory,depth,dynamic_mask") == 0
    doc = json.loads((out / SCENE_JSON).read_text())
    assert doc["motion"]["method"].startswith("easi3r") and doc["motion"]["passes"] == 2
    depth = np.load(out / "depth" / "000000.npy")
    assert read_masks(out, 4).shape == (4, *depth.shape)  # on the depth maps' grid


def test_unordered_images_and_two_frames_keep_the_static_path(tmp_path):
    frames = tmp_path / "frames"
    write_frames(frames, 2)
    out = tmp_path / "run"
    assert run(frames, "--out", out, *TINY_RUN, "--formats", "trajectory") == 0
    assert json.loads((out / SCENE_JSON).read_text())["motion"] == {"method": "none"}


def test_attention_on_too_few_frames_is_refused(tmp_path, capsys):
    frames = tmp_path / "frames"
    write_frames(frames, 2)
    assert run(frames, "--out", tmp_path / "run", "--weights", f"file:{TINY}",
               "--motion", "attention") == 2
    assert "at least 3 frames" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_long_video_in_windows_matches_one_piece(movers, tmp_path):
    folder, _ = movers
    common = ["--oracle", folder, "--graph", "swin-2-noncyclic", "--masks",
              folder / DYNAMIC_MASK_DIR, "--formats", "trajectory,dynamic_mask"]
    assert run(*common, "--out", tmp_path / "one") == 0
    assert run(*common, "--out", tmp_path / "win", "--window", "6") == 0
    gt = folder / TRAJECTORY_FILE
    one = pose_metrics(tmp_path / "one" / TRAJECTORY_FILE, gt)
    win = pose_metrics(tmp_path / "win" / TRAJECTORY_FILE, gt)
    assert win["num_poses"] == 10 and win["ate"] < 2 * one["ate"]
    np.testing.assert_array_equal(read_masks(tmp_path / "win", 10),
                                  read_masks(tmp_path / "one", 10))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pairs-")]


def test_window_longer_than_the_video_is_refused(movers, tmp_path, capsys, monkeypatch):
    folder, _ = movers

    def no_predictions(*args, **kwargs):
        raise AssertionError("predictions made before the window was checked")
    monkeypatch.setattr(importlib.import_module("recon4d.pipeline.inputs"), "infer_pairs",
                        no_predictions)
    assert run("--oracle", folder, "--out", tmp_path / "out", "--window", "40") == 2
    assert "--window 40 is larger than the video (10 frames)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_tiny_checkpoint_streams_pairs_to_disk_in_windows(tmp_path):
    frames = tmp_path / "frames"
    write_frames(frames, 8)
    out = tmp_path / "run"
    assert run(frames, "--out", out, *TINY_RUN, "--graph", "swin-2-noncyclic", "--window", "6",
               "--formats", "trajectory,dynamic_mask") == 0
    doc = json.loads((out / SCENE_JSON).read_text())
    assert doc["motion"]["method"].startswith("easi3r") and doc["result"]["frames"] == 8
    assert read_masks(out, 8).shape[0] == 8
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pairs-")]


def test_masks_folder_count_is_checked_before_the_weights_load(tmp_path, capsys, monkeypatch):
    frames = tmp_path / "frames"
    write_frames(frames, 3)
    masks = tmp_path / "masks"
    masks.mkdir()
    for k in range(2):
        Image.fromarray(np.zeros((48, 64), np.uint8)).save(masks / f"{k}.png")

    def no_weights(*args, **kwargs):
        raise AssertionError("the weights were loaded before the masks were checked")

    module = importlib.import_module("recon4d.pipeline.reconstruct")  # not the function
    monkeypatch.setattr(module, "load_network", no_weights)
    assert run(frames, "--out", tmp_path / "run", "--weights", f"file:{TINY}",
               "--masks", masks) == 2
    assert "2 mask file(s) for 3 frames" in capsys.readouterr().err


def test_flow_masks_in_windows_point_at_the_movers(movers, tmp_path):
    folder, scene = movers
    out = tmp_path / "win"
    assert run("--oracle", folder, "--out", out, "--graph", "swin-2-noncyclic", "--window", "6",
               "--formats", "trajectory,dynamic_mask") == 0
    masks, truth = read_masks(out, 10), scene.dynamic_mask
    assert masks.any(axis=(1, 2)).all()  # every frame got its mask from some window
    assert truth[masks].mean() > 2 * truth.mean()
