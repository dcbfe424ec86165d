"""`monst3r/` read back the way MonST3R's viewer reads it, checked against the Scene.

Their viewer (viser loader of Junyi42/monst3r) loads K from pred_intrinsics.txt (N x 9), the
camera-to-world pose from pred_traj.txt (`i tx ty tz qw qx qy qz`), depth from frame_%04d.npy,
log-confidence from conf_%d.npy and the moving pixels from enlarged_dynamic_mask_%d.png (> 0);
it back-projects pixel (x, y) at (x + 0.5, y + 0.5); background = log-conf > 1.0 and not
moving, foreground = log-conf > 0.1 and moving.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation
from scipy.spatial.transform import Rotation

from recon4d.io.writers import write_scene
from recon4d.scene import Scene

H, W, N = 5, 7, 3


def make_scene(dynamic: bool = True) -> Scene:
    """Hand-made poses and intrinsics, confidences spread around e^0.1 and e^1."""
    rng = np.random.default_rng(3)
    poses = np.tile(np.eye(4), (N, 1, 1))
    poses[:, :3, :3] = Rotation.from_euler("xyz", [[0, 0, 0], [10, -20, 5], [-30, 15, 40]],
                                           degrees=True).as_matrix()
    poses[:, :3, 3] = [[0, 0, 0], [0.5, -0.2, 0.1], [1.0, 0.3, -0.4]]
    k = np.array([[[8.0, 0, 3.0], [0, 8.0, 2.0], [0, 0, 1]],
                  [[9.0, 0, 3.5], [0, 8.5, 2.2], [0, 0, 1]],
                  [[7.5, 0, 2.9], [0, 7.0, 1.8], [0, 0, 1]]])
    moving = np.zeros((N, H, W), dtype=bool)
    moving[1, 2, 3] = moving[2, 0:2, 5:7] = True
    return Scene(images=rng.integers(0, 256, (N, H, W, 3), dtype=np.uint8),
                 depths=rng.uniform(1, 4, (N, H, W)).astype(np.float32),
                 confs=np.exp(rng.uniform(0, 2, (N, H, W))).astype(np.float32),
                 intrinsics=k, poses_c2w=poses, masks=np.ones((N, H, W), dtype=bool),
                 dynamic_masks=moving if dynamic else None)


def viewer_points(folder: Path, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(foreground points, background points, moving mask) of frame i, as their viewer."""
    k = np.loadtxt(folder / "pred_intrinsics.txt").reshape(-1, 3, 3)[i]
    row = np.loadtxt(folder / "pred_traj.txt")[i]
    c2w = np.eye(4)
    c2w[:3, :3] = Rotation.from_quat(row[4:8], scalar_first=True).as_matrix()
    c2w[:3, 3] = row[1:4]
    depth = np.load(folder / f"frame_{i:04d}.npy")
    log_conf = np.load(folder / f"conf_{i}.npy")
    moving = np.asarray(Image.open(folder / f"enlarged_dynamic_mask_{i}.png")) > 0
    grid = np.stack(np.meshgrid(np.arange(W), np.arange(H)), 2) + 0.5

    def unproject(select: np.ndarray) -> np.ndarray:
        rays = np.pad(grid[select], ((0, 0), (0, 1)), constant_values=1) @ np.linalg.inv(k).T
        return c2w[:3, 3] + (rays @ c2w[:3, :3].T) * depth[select, None]

    return (unproject((log_conf > 0.1) & moving), unproject((log_conf > 1.0) & ~moving), moving)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scene, Path, list[str]]:
    scene = make_scene()
    out = tmp_path_factory.mktemp("monst3r")
    return scene, out / "monst3r", write_scene(scene, out, ["monst3r"])


def test_file_list(written):
    _, folder, files = written
    names = {f"monst3r/{p.name}" for p in folder.iterdir()}
    assert sorted(files) == sorted(names)
    assert {"monst3r/pred_traj.txt", "monst3r/pred_intrinsics.txt", "monst3r/frame_0002.npy",
            "monst3r/frame_0002.png", "monst3r/conf_2.npy", "monst3r/init_conf_2.npy",
            "monst3r/dynamic_mask_2.png", "monst3r/enlarged_dynamic_mask_2.png"} <= names


def test_viewer_points_are_the_scene_points(written):
    scene, folder, _ = written
    world = scene.points_world()
    log_conf = np.log(scene.confs)
    for i in range(N):
        fg, bg, moving = viewer_points(folder, i)
        expected_moving = binary_dilation(scene.dynamic_masks[i], np.ones((3, 3), bool))
        np.testing.assert_array_equal(moving, expected_moving)
        np.testing.assert_allclose(fg, world[i][(log_conf[i] > 0.1) & expected_moving],
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(bg, world[i][(log_conf[i] > 1.0) & ~expected_moving],
                                   rtol=1e-5, atol=1e-5)
        assert len(bg) > 0 and (len(fg) > 0) == (i > 0)


def test_per_frame_files_hold_the_scene_arrays(written):
    scene, folder, _ = written
    lines = (folder / "pred_intrinsics.txt").read_text().splitlines()
    assert lines[1].split() == ["9.000000", "0.000000", "4.000000", "0.000000", "8.500000",
                                "2.700000", "0.000000", "0.000000", "1.000000"]
    assert (folder / "pred_traj.txt").read_text().split()[0] == "0"
    for i in range(N):
        depth = np.load(folder / f"frame_{i:04d}.npy")
        assert depth.dtype == np.float32
        np.testing.assert_array_equal(depth, scene.depths[i])
        np.testing.assert_array_equal(np.asarray(Image.open(folder / f"frame_{i:04d}.png")),
                                      scene.images[i])
        np.testing.assert_allclose(np.load(folder / f"conf_{i}.npy"), np.log(scene.confs[i]),
                                   rtol=1e-6)
        np.testing.assert_array_equal(np.load(folder / f"init_conf_{i}.npy"),
                                      np.load(folder / f"conf_{i}.npy"))
        mask = np.asarray(Image.open(folder / f"dynamic_mask_{i}.png"))
        np.testing.assert_array_equal(mask, np.where(scene.dynamic_masks[i], 255, 0))


def test_static_scene_has_empty_masks(tmp_path):
    write_scene(make_scene(dynamic=False), tmp_path, ["monst3r"])
    for name in ("dynamic_mask_1.png", "enlarged_dynamic_mask_1.png"):
        assert not np.asarray(Image.open(tmp_path / "monst3r" / name)).any()
