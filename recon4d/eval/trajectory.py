"""Camera trajectories: TUM text files, quaternion conversion and timestamp association.

A TUM line is `t tx ty tz qx qy qz qw` (camera-to-world, unit quaternion, scalar last);
lines starting with `#` are comments. Association follows evo's nearest-timestamp rule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon4d.errors import InputError
from recon4d.io.atomic import atomic_write_text


@dataclass
class Trajectory:
    """Timestamped camera-to-world poses: `timestamps` (N,), `poses` (N,4,4) float64."""

    timestamps: np.ndarray
    poses: np.ndarray

    def __len__(self) -> int:
        return len(self.poses)


def quat_to_matrix(quat_xyzw: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (x, y, z, w; normalised here) to (..., 3, 3) rotation matrices."""
    q = np.asarray(quat_xyzw, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = np.moveaxis(q, -1, 0)
    rot = np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], axis=-1)
    return rot.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(rot: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices to (..., 4) unit quaternions (x, y, z, w) with w >= 0.

    Each matrix gives four proportional estimates 4*q_k*q (k = w, x, y, z); the one with the
    largest |q_k| is used, which is numerically stable for every rotation angle.
    """
    r = np.asarray(rot, dtype=np.float64)
    m = {(i, j): r[..., i, j] for i in range(3) for j in range(3)}
    sq = [1 + m[0, 0] + m[1, 1] + m[2, 2], 1 + m[0, 0] - m[1, 1] - m[2, 2],
          1 - m[0, 0] + m[1, 1] - m[2, 2], 1 - m[0, 0] - m[1, 1] + m[2, 2]]  # 4 q_k^2
    wx, wy, wz = m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]  # 4 q_w q_(x,y,z)
    xy, xz, yz = m[0, 1] + m[1, 0], m[0, 2] + m[2, 0], m[1, 2] + m[2, 1]
    estimates = np.stack([np.stack(row, -1) for row in (
        [wx, wy, wz, sq[0]], [sq[1], xy, xz, wx], [xy, sq[2], yz, wy], [xz, yz, sq[3], wz])], -2)
    best = np.argmax(np.stack(sq, -1), axis=-1)
    q = np.take_along_axis(estimates, best[..., None, None], -2)[..., 0, :]
    q = q * np.where(q[..., 3:] < 0, -1.0, 1.0)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


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


def read_number_table(path: Path, columns: int) -> np.ndarray:
    """Rows of `columns` numbers from a whitespace-separated text file with `#` comments."""
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


def nearest_within(query: np.ndarray, stamps: np.ndarray, max_dt: float) -> np.ndarray:
    """For each query time, the index of the nearest of `stamps` within `max_dt`, else -1.

    A tie goes to the earlier stamp (evo's rule for sorted stamps).
    """
    query, stamps = np.asarray(query, np.float64), np.asarray(stamps, np.float64)
    if len(stamps) == 0:
        return np.full(len(query), -1)
    order = np.argsort(stamps, kind="stable")
    ordered = stamps[order]
    upper = np.minimum(np.searchsorted(ordered, query, side="right"), len(ordered) - 1)
    lower = np.maximum(upper - 1, 0)
    diff_up = ordered[upper] - query
    diff_lo = np.where(upper > 0, query - ordered[lower], np.inf)
    in_range = (query >= ordered[0] - max_dt) & (query <= ordered[-1] + max_dt)
    take_up = (diff_up <= max_dt) & (diff_up < diff_lo)
    take_lo = ~take_up & (diff_lo <= max_dt) & (diff_lo <= diff_up)
    found = order[np.where(take_up, upper, lower)]
    return np.where(in_range & (take_up | take_lo), found, -1)


def associate(stamps_a: np.ndarray, stamps_b: np.ndarray,
              max_dt: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (ia, ib) of nearest timestamps within `max_dt` seconds (evo's rule).

    Every stamp of the shorter list (of `stamps_b` when it is not longer) takes its nearest
    stamp in the other list; pairs come in the order of the shorter list.
    """
    b_shorter = len(stamps_b) <= len(stamps_a)
    short, long_ = (stamps_b, stamps_a) if b_shorter else (stamps_a, stamps_b)
    found = nearest_within(short, long_, max_dt)
    idx_short = np.nonzero(found >= 0)[0]
    idx_long = found[idx_short]
    return (idx_long, idx_short) if b_shorter else (idx_short, idx_long)
