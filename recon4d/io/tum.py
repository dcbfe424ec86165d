"""TUM trajectory files: read and write timestamped camera-to-world poses.

A TUM line is `t tx ty tz qx qy qz qw` (camera-to-world, unit quaternion, scalar last, the
order of `recon4d.geometry.quaternions`); lines starting with `#` are comments. Written by the
trajectory writer and the synthetic scenes, read by the evaluation and its benchmark readers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon4d.errors import InputError
from recon4d.geometry.quaternions import matrix_to_quat, quat_to_matrix
from recon4d.io.atomic import atomic_write_text


@dataclass
class Trajectory:
    """Timestamped camera-to-world poses: `timestamps` (N,), `poses` (N,4,4) float64."""

    timestamps: np.ndarray
    poses: np.ndarray

    def __len__(self) -> int:
        return len(self.poses)


def read_number_table(path: Path, columns: int) -> np.ndarray:
    """Rows of `columns` numbers from a whitespace- (or comma-) separated text file with `#`
    comments; a missing file or a malformed line raises InputError naming it."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    rows = []
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.replace(",", " ").split()
        try:
            if len(parts) != columns:
                raise ValueError
            rows.append([float(p) for p in parts])
        except ValueError:
            raise InputError(f"{path}, line {lineno}: expected {columns} numbers, "
                             f"got {text[:80]!r}") from None
    return np.asarray(rows, dtype=np.float64).reshape(-1, columns)


def poses_from_tum_rows(rows: np.ndarray) -> np.ndarray:
    """(N, 7) rows `tx ty tz qx qy qz qw` to (N, 4, 4) camera-to-world matrices."""
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    poses[:, :3, :3] = quat_to_matrix(rows[:, 3:7])
    poses[:, :3, 3] = rows[:, :3]
    return poses


def read_tum(path: str | os.PathLike) -> Trajectory:
    """Read a TUM trajectory file; a missing file or a malformed line raises InputError."""
    path = Path(path)
    rows = read_number_table(path, columns=8)
    if len(rows) == 0:
        raise InputError(f"{path}: no poses (expected lines 't tx ty tz qx qy qz qw')")
    if np.any(np.linalg.norm(rows[:, 4:8], axis=1) == 0):
        raise InputError(f"{path}: a pose has a zero quaternion")
    return Trajectory(rows[:, 0].copy(), poses_from_tum_rows(rows[:, 1:8]))


def write_tum(path: str | os.PathLike, traj: Trajectory) -> None:
    """Write a TUM trajectory file atomically (full float precision)."""
    poses = np.asarray(traj.poses, dtype=np.float64)
    table = np.concatenate([np.asarray(traj.timestamps, np.float64)[:, None], poses[:, :3, 3],
                            matrix_to_quat(poses[:, :3, :3])], axis=1)
    lines = ["# timestamp tx ty tz qx qy qz qw"]
    lines += [" ".join(repr(float(v)) for v in row) for row in table]
    atomic_write_text(path, "\n".join(lines) + "\n")
