"""Read the evaluable parts of a recon4d output folder (whatever subset exists).

In the names of `recon4d.io.layout`: trajectory_tum.txt (camera-to-world; t = frame index or
input timestamp), depth/NNNNNN.npy (float32, model resolution), dynamic_mask/NNNNNN.png (0/255,
moving pixels), pointcloud.ply. A folder with none of these but a MonST3R `pred_traj.txt` is
read in MonST3R's layout (`recon4d.eval.monst3r_folder`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon4d.errors import InputError
from recon4d.eval.files import numbered_files, read_mask, read_npy, stack_frames
from recon4d.eval.monst3r_folder import read_monst3r_folder
from recon4d.io.layout import (
    CLOUD_FILE,
    DEPTH_DIR,
    DYNAMIC_MASK_DIR,
    MONST3R_TRAJECTORY_FILE,
    TRAJECTORY_FILE,
)
from recon4d.io.tum import Trajectory, read_tum

# recon4d's evaluable outputs, as "name" (file) or "name/" (folder) for messages
RECON4D_PARTS = (TRAJECTORY_FILE, f"{DEPTH_DIR}/", f"{DYNAMIC_MASK_DIR}/", CLOUD_FILE)
EVALUABLE = (*RECON4D_PARTS[:-1], MONST3R_TRAJECTORY_FILE, CLOUD_FILE)


@dataclass
class Prediction:
    """The parts of one output folder; absent parts are None."""

    folder: Path
    trajectory: Trajectory | None = None
    depth: np.ndarray | None = None
    masks: np.ndarray | None = None
    cloud_path: Path | None = None

    @property
    def num_frames(self) -> int | None:
        """Frame count (the parts agree, see load_prediction); None for a cloud only."""
        for part in (self.trajectory, self.depth, self.masks):
            if part is not None:
                return len(part)
        return None


def is_prediction(folder: Path) -> bool:
    """`folder` holds at least one evaluable output."""
    return any((folder / name).exists() for name in EVALUABLE)


def load_prediction(folder: str | os.PathLike) -> Prediction:
    """Read one output folder; frame counts of trajectory, depth and masks must agree."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: prediction folder not found")
    if not is_prediction(folder):
        raise InputError(f"{folder}: no {', '.join(EVALUABLE[:-1])} or {EVALUABLE[-1]} "
                         "to evaluate")
    pred = Prediction(folder)
    if not any((folder / name).exists() for name in RECON4D_PARTS):
        pred.trajectory, pred.depth, pred.masks = read_monst3r_folder(folder)
    else:
        _read_recon4d_parts(pred)
    parts = ((TRAJECTORY_FILE, pred.trajectory), (DEPTH_DIR, pred.depth),
             (DYNAMIC_MASK_DIR, pred.masks))
    counts = {name: len(part) for name, part in parts if part is not None}
    if len(set(counts.values())) > 1:
        raise InputError(f"{folder}: frame counts disagree: "
                         + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return pred


def _read_recon4d_parts(pred: Prediction) -> None:
    """Fill `pred` from the recon4d files of its folder."""
    folder = pred.folder
    if (folder / TRAJECTORY_FILE).exists():
        pred.trajectory = read_tum(folder / TRAJECTORY_FILE)
    if (folder / DEPTH_DIR).is_dir():
        paths = numbered_files(folder / DEPTH_DIR, ".npy")
        if not paths:
            raise InputError(f"{folder / DEPTH_DIR}: no .npy depth maps")
        pred.depth = stack_frames([read_npy(p, 2).astype(np.float32) for p in paths], paths)
    if (folder / DYNAMIC_MASK_DIR).is_dir():
        paths = numbered_files(folder / DYNAMIC_MASK_DIR, ".png")
        if not paths:
            raise InputError(f"{folder / DYNAMIC_MASK_DIR}: no .png masks")
        pred.masks = stack_frames([read_mask(p) for p in paths], paths)
    if (folder / CLOUD_FILE).exists():
        pred.cloud_path = folder / CLOUD_FILE
