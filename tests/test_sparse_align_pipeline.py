"""`recon4d reconstruct --align sparse` on its three sources (oracle, predictions file, images
with the tiny MASt3R checkpoint) and its refusal of checkpoints without descriptors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recon4d.cli import main
from recon4d.eval import pose_metrics, read_tum
from recon4d.inference import infer_pairs, make_pairs
from recon4d.synthetic import OracleModel, generate_scene, write_scene
from tests.conftest import GOLDEN_DIR
from tests.test_reconstruct import path_length, write_images

MAST3R = GOLDEN_DIR / "checkpoints" / "tiny_mast3r_a.pth"
DUST3R = GOLDEN_DIR / "checkpoints" / "tiny_dust3r_linear.pth"
STATIC = ["--motion", "none", "--align", "sparse"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A static 6-frame 64x48 synthetic scene folder and its ground truth."""
    scene = generate_scene(frames=6, width=64, height=48, movers=0, seed=3)
    return write_scene(scene, tmp_path_factory.mktemp("synth") / "scene"), scene


def ate_percent(out_dir, scene) -> float:
    traj = read_tum(out_dir / "trajectory_tum.txt")
    ate = pose_metrics(traj.poses, scene.poses_c2w, align="sim3")["ate"]
    return 100 * ate / path_length(scene.poses_c2w)


def test_oracle_run_meets_the_accuracy_target(synth, tmp_path):
    folder, scene = synth
    assert main(["reconstruct", "--oracle", str(folder), "--out", str(tmp_path / "o"),
                 *STATIC]) == 0
    assert ate_percent(tmp_path / "o", scene) <= 1.0
    doc = json.loads((tmp_path / "o" / "scene.json").read_text())
    assert doc["options"]["alignment"]["align"] == "sparse"


def test_predictions_file_with_descriptors(synth, tmp_path):
    _, scene = synth
    oracle = OracleModel(scene, desc_dim=24)
    preds = infer_pairs(oracle, oracle.views(), make_pairs(6, "complete"), progress=False)
    preds.save_npz(tmp_path / "preds.npz")
    assert main(["reconstruct", "--predictions", str(tmp_path / "preds.npz"), "--out",
                 str(tmp_path / "p"), "--device", "cpu", *STATIC]) == 0
    assert ate_percent(tmp_path / "p", scene) <= 1.0


def test_images_with_the_tiny_mast3r_checkpoint(tmp_path):
    """Random weights: structure only (files, shapes, finite values)."""
    write_images(tmp_path / "imgs", [(64, 48)] * 3)
    assert main(["reconstruct", str(tmp_path / "imgs"), "--out", str(tmp_path / "m"),
                 "--weights", str(MAST3R), "--size", "64", "--device", "cpu", *STATIC]) == 0
    assert len(read_tum(tmp_path / "m" / "trajectory_tum.txt")) == 3
    for i in range(3):
        depth = np.load(tmp_path / "m" / "depth" / f"{i:06d}.npy")
        assert depth.shape == (48, 64) and np.isfinite(depth).all()


def test_a_checkpoint_without_descriptors_is_refused_before_inference(synth, tmp_path,
                                                                      capsys):
    write_images(tmp_path / "imgs", [(64, 48)] * 3)
    assert main(["reconstruct", str(tmp_path / "imgs"), "--out", str(tmp_path / "d"),
                 "--weights", str(DUST3R), "--size", "64", "--device", "cpu", *STATIC]) == 2
    err = capsys.readouterr().err
    assert "no descriptors" in err and "MASt3R" in err and "pairs:" not in err  # no inference
    assert not (tmp_path / "d").exists()
    # the same from a predictions file without descriptors
    _, scene = synth
    oracle = OracleModel(scene)
    oracle_preds = infer_pairs(oracle, oracle.views(), make_pairs(6, "complete"),
                               progress=False)
    oracle_preds.save_npz(tmp_path / "dust3r.npz")
    assert main(["reconstruct", "--predictions", str(tmp_path / "dust3r.npz"), "--out",
                 str(tmp_path / "e"), *STATIC]) == 2
    assert "no descriptors" in capsys.readouterr().err


def test_windows_are_refused_before_inference(synth, tmp_path, capsys):
    """The sparse alignment is one piece: a split video is an option error, no weights run."""
    write_images(tmp_path / "imgs", [(64, 48)] * 6)
    assert main(["reconstruct", str(tmp_path / "imgs"), "--out", str(tmp_path / "w"),
                 "--weights", str(MAST3R), "--size", "64", "--device", "cpu", "--graph",
                 "swin-1-noncyclic", "--window", "4", *STATIC]) == 2
    err = capsys.readouterr().err
    assert "--align sparse aligns the whole sequence" in err and "pairs:" not in err
