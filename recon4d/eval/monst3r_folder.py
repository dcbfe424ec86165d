"""Read a folder in MonST3R's output layout (an original MonST3R or Easi3R run, or recon4d's
`monst3r/` export) as a Prediction, so `recon4d eval` scores the originals' results too.

pred_traj.txt: `i tx ty tz qw qx qy qz` (camera-to-world, scalar-first quaternion; `i` is the
frame index), frame_%04d.npy depth, dynamic_mask_%d.png moving pixels (0/255).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from recon4d.errors import InputError
from recon4d.eval.files import read_mask, read_npy, stack_frames
from recon4d.io.layout import MONST3R_DEPTH, MONST3R_DYNAMIC_MASK, MONST3R_TRAJECTORY_FILE
from recon4d.io.tum import Trajectory, poses_from_tum_rows, read_number_table


def is_monst3r_folder(folder: Path) -> bool:
    """`folder` holds a MonST3R trajectory."""
    return (folder / MONST3R_TRAJECTORY_FILE).is_file()


def read_monst3r_trajectory(path: Path) -> Trajectory:
    """The poses of a pred_traj.txt (scalar-first quaternions reordered to scalar-last)."""
    rows = read_number_table(path, columns=8)
    if len(rows) == 0:
        raise InputError(f"{path}: no poses (expected lines 'i tx ty tz qw qx qy qz')")
    if np.any(np.linalg.norm(rows[:, 4:8], axis=1) == 0):
        raise InputError(f"{path}: a pose has a zero quaternion")
    return Trajectory(rows[:, 0].copy(), poses_from_tum_rows(rows[:, [1, 2, 3, 5, 6, 7, 4]]))


def numbered(folder: Path, pattern: str) -> list[Path]:
    """Files named like `pattern` (a `{}` or `{:04d}` format) in frame-number order.

    Numbers must run 0..N-1 without a gap (a gap would shift frames silently).
    """
    prefix, suffix = pattern.split("{")[0], pattern.split("}")[1]
    regex = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix) + "$")
    found = {int(m.group(1)): p for p in folder.iterdir() if (m := regex.match(p.name))}
    missing = sorted(set(range(len(found))) - set(found))
    if missing:
        raise InputError(f"{folder}: {pattern.format(missing[0])} is missing "
                         f"({len(found)} files named like {pattern})")
    return [found[i] for i in range(len(found))]


def read_monst3r_folder(folder: Path) -> tuple[Trajectory, np.ndarray | None, np.ndarray | None]:
    """(trajectory, depth (N, H, W) or None, moving masks (N, H, W) or None)."""
    trajectory = read_monst3r_trajectory(folder / MONST3R_TRAJECTORY_FILE)
    depth_paths = numbered(folder, MONST3R_DEPTH)
    mask_paths = numbered(folder, MONST3R_DYNAMIC_MASK)
    depth = (stack_frames([read_npy(p, 2).astype(np.float32) for p in depth_paths], depth_paths)
             if depth_paths else None)
    masks = stack_frames([read_mask(p) for p in mask_paths], mask_paths) if mask_paths else None
    return trajectory, depth, masks
