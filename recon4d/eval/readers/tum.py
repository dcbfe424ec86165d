"""TUM RGB-D sequences: rgb.txt, depth.txt, groundtruth.txt and 16-bit depth PNGs.

Frames are the lines of rgb.txt (`timestamp path`, `#` comments). Each frame takes the depth
map with the nearest timestamp within `max_dt_depth` (0.02 s, the TUM association tool's
default; none -> depth 0 = invalid) and the ground-truth pose with the nearest timestamp within
`max_dt_pose` (0.01 s, evo's default; none -> NaN pose). Depth PNG values / 5000 = metres.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon4d.errors import InputError
from recon4d.eval.files import read_depth_png, stack_frames
from recon4d.eval.readers.base import (
    ALL_FRAMES,
    FrameSelection,
    GroundTruth,
    sequence_folders,
)
from recon4d.eval.trajectory import nearest_within
from recon4d.io.tum import poses_from_tum_rows, read_number_table

DEPTH_SCALE = 5000.0
# Published Kinect calibrations (fx, fy, cx, cy) of the TUM RGB-D recordings.
TUM_CALIBRATION = {"freiburg1": (517.3, 516.5, 318.6, 255.3),
                   "freiburg2": (520.9, 521.0, 325.1, 249.7),
                   "freiburg3": (535.4, 539.2, 320.1, 247.6)}


def is_sequence(path: Path) -> bool:
    """A folder in the TUM layout."""
    return (path / "rgb.txt").is_file()


def sequences(root: Path) -> dict[str, Path]:
    """{name: folder} of a sequence folder or of a folder of sequences."""
    return sequence_folders(root, is_sequence)


def detect(root: Path) -> bool:
    """`root` is a TUM-layout sequence or holds some."""
    return bool(sequences(root))


def read_file_list(path: Path) -> tuple[np.ndarray, list[str]]:
    """Timestamps and relative paths of a TUM `timestamp path` list file."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    stamps, names = [], []
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        try:
            if len(words) < 2:
                raise ValueError
            stamps.append(float(words[0]))
        except ValueError:
            raise InputError(f"{path}, line {lineno}: expected 'timestamp filename', "
                             f"got {line.strip()[:80]!r}") from None
        names.append(words[1])
    if not names:
        raise InputError(f"{path}: lists no frame")
    return np.asarray(stamps), names


def calibration(name: str, table: dict[str, tuple]) -> np.ndarray | None:
    """3x3 K of the first `table` key contained in the sequence name, else None."""
    for key, (fx, fy, cx, cy) in table.items():
        if key in name:
            return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
    return None


def load(path: Path, selection: FrameSelection = ALL_FRAMES, *,
         max_dt_depth: float = 0.02, max_dt_pose: float = 0.01, max_depth: float | None = None,
         calibrations: dict[str, tuple] = TUM_CALIBRATION) -> GroundTruth:
    """Read the selected frames of one sequence folder (Bonn uses the same layout)."""
    stamps, names = read_file_list(path / "rgb.txt")
    keep = selection.indices(len(names))
    if len(keep) == 0:
        raise InputError(f"{path / 'rgb.txt'}: the frame selection leaves no frame")
    stamps, names = stamps[keep], [names[i] for i in keep]
    gt = GroundTruth(name=path.name, frames=names, timestamps=stamps, max_depth=max_depth)
    if (path / "depth.txt").is_file():
        d_stamps, d_names = read_file_list(path / "depth.txt")
        found = nearest_within(stamps, d_stamps, max_dt_depth)
        maps = [read_depth_png(path / d_names[i], DEPTH_SCALE) if i >= 0 else None for i in found]
        shape = next((m.shape for m in maps if m is not None), None)
        if shape is not None:
            maps = [np.zeros(shape, np.float32) if m is None else m for m in maps]
            gt.depth = stack_frames(maps, [path / d_names[i] if i >= 0 else path for i in found])
    if (path / "groundtruth.txt").is_file():
        table = read_number_table(path / "groundtruth.txt", columns=8)
        found = nearest_within(stamps, table[:, 0], max_dt_pose)
        gt.poses = np.full((len(stamps), 4, 4), np.nan)
        if (found >= 0).any():
            gt.poses[found >= 0] = poses_from_tum_rows(table[found[found >= 0], 1:])
    k = calibration(path.name, calibrations)
    if k is not None:
        gt.intrinsics = np.repeat(k[None], len(stamps), axis=0)
    return gt
