"""recon4d synthetic scene folders (names of `recon4d.io.layout`): depth/*.npy,
dynamic_mask/*.png (0/255), poses_c2w.npy, intrinsics.npy, and timestamps.npy (else the first
column of trajectory_tum.txt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon4d.errors import InputError
from recon4d.eval.files import numbered_files, read_mask, read_npy, stack_frames
from recon4d.eval.readers.base import (
    ALL_FRAMES,
    FrameSelection,
    GroundTruth,
    sequence_folders,
)
from recon4d.io.layout import (
    DEPTH_DIR,
    DYNAMIC_MASK_DIR,
    INTRINSICS_ARRAY_FILE,
    POSES_FILE,
    TIMESTAMPS_FILE,
    TRAJECTORY_FILE,
    frame_stem,
)
from recon4d.io.tum import read_tum


def is_sequence(path: Path) -> bool:
    """A synthetic scene folder."""
    return (path / POSES_FILE).is_file()


def sequences(root: Path) -> dict[str, Path]:
    """{name: folder} of a scene folder or of a folder of scenes."""
    return sequence_folders(root, is_sequence)


def detect(root: Path) -> bool:
    """`root` is a synthetic scene or holds some."""
    return bool(sequences(root))


def load(path: Path, selection: FrameSelection = ALL_FRAMES) -> GroundTruth:
    """Read the selected frames of one synthetic scene."""
    poses = read_npy(path / POSES_FILE, ndim=3).astype(np.float64)
    if poses.shape[1:] != (4, 4):
        raise InputError(f"{path / POSES_FILE}: expected (N, 4, 4), got {poses.shape}")
    num = len(poses)
    keep = selection.indices(num)
    if len(keep) == 0:
        raise InputError(f"{path}: the frame selection leaves no frame")
    stamps = timestamps(path, num)
    gt = GroundTruth(name=path.name, frames=[frame_stem(i) for i in keep],
                     timestamps=stamps[keep], poses=poses[keep])
    if (path / INTRINSICS_ARRAY_FILE).is_file():
        k = read_npy(path / INTRINSICS_ARRAY_FILE, ndim=3).astype(np.float64)
        if k.shape != (num, 3, 3):
            raise InputError(f"{path / INTRINSICS_ARRAY_FILE}: expected ({num}, 3, 3), "
                             f"got {k.shape}")
        gt.intrinsics = k[keep]
    gt.depth = frame_stack(path / DEPTH_DIR, ".npy", num, keep, lambda p: read_npy(p, 2))
    gt.masks = frame_stack(path / DYNAMIC_MASK_DIR, ".png", num, keep, read_mask)
    if gt.depth is not None:
        gt.depth = gt.depth.astype(np.float32)
    return gt


def timestamps(path: Path, num: int) -> np.ndarray:
    """Frame times from timestamps.npy or trajectory_tum.txt, else the frame indices."""
    if (path / TIMESTAMPS_FILE).is_file():
        source = path / TIMESTAMPS_FILE
        stamps = read_npy(source, ndim=1)
    elif (path / TRAJECTORY_FILE).is_file():
        source = path / TRAJECTORY_FILE
        stamps = read_tum(source).timestamps
    else:
        return np.arange(num, dtype=np.float64)
    if len(stamps) != num:
        raise InputError(f"{source}: {len(stamps)} entries, but {POSES_FILE} has {num} frames")
    return stamps.astype(np.float64)


def frame_stack(folder: Path, suffix: str, num: int, keep: np.ndarray, reader) -> np.ndarray | None:
    """The selected per-frame files of `folder` stacked, None if the folder is absent."""
    if not folder.is_dir():
        return None
    listing = numbered_files(folder, suffix)
    if len(listing) != num:
        raise InputError(f"{folder}: {len(listing)} {suffix} files for {num} frames")
    paths = [listing[i] for i in keep]
    return stack_frames([reader(p) for p in paths], paths)
