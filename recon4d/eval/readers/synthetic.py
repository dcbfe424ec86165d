"""recon4d synthetic scene folders: depth/*.npy, dynamic_mask/*.png (0/255), poses_c2w.npy,
intrinsics.npy, and timestamps.npy (else the first column of trajectory_tum.txt)."""

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
from recon4d.eval.trajectory import read_tum


def is_sequence(path: Path) -> bool:
    """A synthetic scene folder."""
    return (path / "poses_c2w.npy").is_file()


def sequences(root: Path) -> dict[str, Path]:
    """{name: folder} of a scene folder or of a folder of scenes."""
    return sequence_folders(root, is_sequence)


def detect(root: Path) -> bool:
    """`root` is a synthetic scene or holds some."""
    return bool(sequences(root))


def load(path: Path, selection: FrameSelection = ALL_FRAMES) -> GroundTruth:
    """Read the selected frames of one synthetic scene."""
    poses = read_npy(path / "poses_c2w.npy", ndim=3).astype(np.float64)
    if poses.shape[1:] != (4, 4):
        raise InputError(f"{path / 'poses_c2w.npy'}: expected (N, 4, 4), got {poses.shape}")
    num = len(poses)
    keep = selection.indices(num)
    if len(keep) == 0:
        raise InputError(f"{path}: the frame selection leaves no frame")
    stamps = timestamps(path, num)
    gt = GroundTruth(name=path.name, frames=[f"{i:06d}" for i in keep],
                     timestamps=stamps[keep], poses=poses[keep])
    if (path / "intrinsics.npy").is_file():
        k = read_npy(path / "intrinsics.npy", ndim=3).astype(np.float64)
        if k.shape != (num, 3, 3):
            raise InputError(f"{path / 'intrinsics.npy'}: expected ({num}, 3, 3), got {k.shape}")
        gt.intrinsics = k[keep]
    gt.depth = frame_stack(path / "depth", ".npy", num, keep, lambda p: read_npy(p, 2))
    gt.masks = frame_stack(path / "dynamic_mask", ".png", num, keep, read_mask)
    if gt.depth is not None:
        gt.depth = gt.depth.astype(np.float32)
    return gt


def timestamps(path: Path, num: int) -> np.ndarray:
    """Frame times from timestamps.npy or trajectory_tum.txt, else the frame indices."""
    if (path / "timestamps.npy").is_file():
        source, stamps = path / "timestamps.npy", read_npy(path / "timestamps.npy", ndim=1)
    elif (path / "trajectory_tum.txt").is_file():
        source = path / "trajectory_tum.txt"
        stamps = read_tum(source).timestamps
    else:
        return np.arange(num, dtype=np.float64)
    if len(stamps) != num:
        raise InputError(f"{source}: {len(stamps)} entries, but poses_c2w.npy has {num} frames")
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
