"""`monst3r/`: the Scene in the file layout of the MonST3R demo, so that its viewer and its
evaluation scripts read recon4d results (docs/formats.md, "MonST3R layout").

Their viewer back-projects pixel (x, y) at (x + 0.5, y + 0.5) with the K of
`pred_intrinsics.txt`; recon4d puts pixel centres at integers, so the K written here has cx, cy
0.5 larger, and the viewer's points are exactly `Scene.points_world()`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from recon4d.geometry.quaternions import matrix_to_quat
from recon4d.io.atomic import atomic_write_text
from recon4d.io.layout import (
    MONST3R_CONF,
    MONST3R_DEPTH,
    MONST3R_DIR,
    MONST3R_DYNAMIC_MASK,
    MONST3R_ENLARGED_MASK,
    MONST3R_IMAGE,
    MONST3R_INIT_CONF,
    MONST3R_INTRINSICS_FILE,
    MONST3R_TRAJECTORY_FILE,
)
from recon4d.io.writers.files import save_npy, save_png
from recon4d.scene import Scene

# confidences <= 0 (no network confidence) are written as the log of the smallest float32
_LOG_FLOOR = float(np.finfo(np.float32).tiny)


def viewer_intrinsics(scene: Scene) -> np.ndarray:
    """(N, 3, 3) K with pixel centres at +0.5 (the viewer's convention)."""
    k = np.array(scene.intrinsics, dtype=np.float64)
    k[:, :2, 2] += 0.5
    return k


def trajectory_text(scene: Scene) -> str:
    """Lines `i tx ty tz qw qx qy qz`: camera-to-world, scalar-first quaternion."""
    quat_xyzw = matrix_to_quat(scene.poses_c2w[:, :3, :3])
    table = np.concatenate([scene.poses_c2w[:, :3, 3], quat_xyzw[:, [3, 0, 1, 2]]], axis=1)
    return "".join(f"{i} " + " ".join(f"{v:.17g}" for v in row) + "\n"
                   for i, row in enumerate(table))


def dilate3(mask: np.ndarray) -> np.ndarray:
    """3x3 binary dilation of an (H, W) mask (a pixel is set when any of its 8 neighbours is)."""
    h, w = mask.shape
    padded = np.pad(mask.astype(bool), 1)
    out = np.zeros((h, w), dtype=bool)
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy:dy + h, dx:dx + w]
    return out


def _mask_png(mask: np.ndarray) -> Image.Image:
    return Image.fromarray(np.where(mask, 255, 0).astype(np.uint8))


def write_monst3r(scene: Scene, out_dir: Path) -> list[str]:
    """Write `monst3r/` (files in docs/formats.md); a static Scene gets all-zero masks.

    `init_conf_%d.npy` repeats `conf_%d.npy`: the Scene keeps one confidence per pixel.
    """
    folder = out_dir / MONST3R_DIR
    atomic_write_text(folder / MONST3R_TRAJECTORY_FILE, trajectory_text(scene))
    rows = viewer_intrinsics(scene).reshape(len(scene), 9)
    atomic_write_text(folder / MONST3R_INTRINSICS_FILE,
                      "".join(" ".join(f"{v:.6f}" for v in row) + "\n" for row in rows))
    files = [MONST3R_TRAJECTORY_FILE, MONST3R_INTRINSICS_FILE]
    dynamic = (np.zeros(scene.depths.shape, dtype=bool) if scene.dynamic_masks is None
               else scene.dynamic_masks.astype(bool))
    for i in range(len(scene)):
        log_conf = np.log(np.maximum(scene.confs[i], _LOG_FLOOR)).astype(np.float32)
        arrays = {MONST3R_DEPTH.format(i): scene.depths[i].astype(np.float32),
                  MONST3R_CONF.format(i): log_conf, MONST3R_INIT_CONF.format(i): log_conf}
        images = {MONST3R_IMAGE.format(i): Image.fromarray(scene.images[i]),
                  MONST3R_DYNAMIC_MASK.format(i): _mask_png(dynamic[i]),
                  MONST3R_ENLARGED_MASK.format(i): _mask_png(dilate3(dynamic[i]))}
        for name, array in arrays.items():
            save_npy(folder / name, array)
        for name, image in images.items():
            save_png(folder / name, image)
        files += [*arrays, *images]
    return [f"{MONST3R_DIR}/{name}" for name in files]
