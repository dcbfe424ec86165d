"""`recon4d eval` on a 4D output folder written by write_scene, against a synthetic scene."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from recon4d.errors import InputError
from recon4d.eval import evaluate
from recon4d.io.writers import FORMATS, write_scene
from recon4d.scene import Scene
from recon4d.synthetic import generate_scene
from recon4d.synthetic import write_scene as write_synthetic

FRAMES = 6
SCALE = 2.5  # the reconstruction's arbitrary world frame: a similarity of the true one


def reconstruction(truth) -> Scene:
    """The true geometry of `truth` in another world frame and scale, moving masks included."""
    world = np.eye(4)
    world[:3, :3] = Rotation.from_euler("xyz", [20, -35, 60], degrees=True).as_matrix()
    world[:3, 3] = [1.0, -2.0, 0.5]
    poses = world @ truth.poses_c2w
    poses[:, :3, 3] = (world[:3, :3] @ truth.poses_c2w[:, :3, 3].T).T * SCALE + world[:3, 3]
    return Scene(images=truth.rgb, depths=truth.depth * np.float32(SCALE),
                 confs=np.full(truth.depth.shape, 5.0, np.float32), intrinsics=truth.intrinsics,
                 poses_c2w=poses, masks=truth.depth > 0, timestamps=truth.timestamps,
                 dynamic_masks=truth.dynamic_mask.copy())


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Scene]:
    truth = generate_scene(frames=FRAMES, width=64, height=48, movers=2, seed=0)
    root = tmp_path_factory.mktemp("eval4d")
    write_synthetic(truth, root / "gt")
    scene = reconstruction(truth)
    scene.dynamic_masks[0] = False  # frame 0's movers missed: J = 0 there
    write_scene(scene, root / "pred", [f for f in FORMATS if f not in ("videos", "render")])
    return root / "pred", root / "gt", scene


def test_poses_depth_and_masks_of_a_4d_folder(folders):
    pred, gt, _ = folders
    result = evaluate(pred, gt)["sequences"]["gt"]
    assert result["poses"]["ate"] < 1e-6
    assert result["poses"]["scale"] == pytest.approx(1 / SCALE)
    assert result["depth"]["abs_rel"] < 1e-6
    assert result["depth"]["delta_1_25"] == 1.0
    assert result["masks"]["J_mean"] == pytest.approx((FRAMES - 1) / FRAMES)
    assert result["masks"]["F_mean"] == pytest.approx((FRAMES - 1) / FRAMES)


def test_the_monst3r_export_scores_the_same(folders):
    pred, gt, _ = folders
    ours = evaluate(pred, gt, sequence="gt")["sequences"]["gt"]
    theirs = evaluate(pred / "monst3r", gt)["sequences"]["gt"]
    assert theirs["poses"]["rpe_rot"] < 1e-6  # scalar-first quaternions read as such
    for group in ("poses", "depth", "masks"):
        for name, value in ours[group].items():
            assert theirs[group][name] == pytest.approx(value, rel=1e-6, abs=1e-9), name


def test_a_gap_in_the_monst3r_numbering_is_named(folders, tmp_path):
    pred, gt, _ = folders
    folder = tmp_path / "run"
    shutil.copytree(pred / "monst3r", folder)
    (folder / "frame_0003.npy").unlink()
    with pytest.raises(InputError, match=r"frame_0003\.npy is missing"):
        evaluate(folder, gt)
