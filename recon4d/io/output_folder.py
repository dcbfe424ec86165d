"""Read a recon4d output folder back as numpy arrays: clouds, moving clouds per frame, cameras.

Static folders (`recon4d reconstruct` with `--motion none`) hold `pointcloud.ply`; 4D folders
add `static.ply` (shown instead) and `dynamic/NNNNNN.ply` per frame. The camera trajectory is
required; `intrinsics.json` is optional (without it the viewer draws generic frustums). What the
viewer (`recon4d.viz.viewer`) shows; the names are those of `recon4d.io.layout`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon4d.errors import InputError
from recon4d.io.layout import (
    CLOUD_FILE,
    DYNAMIC_CLOUD_DIR,
    INTRINSICS_FILE,
    STATIC_CLOUD_FILE,
    TRAJECTORY_FILE,
    frame_file,
)
from recon4d.io.ply import read_ply_vertices
from recon4d.io.tum import read_tum
from recon4d.io.writers.points import evenly_spaced
from recon4d.viz.point_cloud import PointCloud

GREY = 180  # colour of points in a PLY without red, green, blue


@dataclass(frozen=True)
class OutputFolder:
    """N frames of a reconstruction: `static` cloud, `moving` clouds (one per frame; empty for
    a static folder), `poses_c2w` (N,4,4), `timestamps` (N,), `intrinsics` (N,3,3) and
    `image_size` (width, height) at the model resolution, or None without `intrinsics.json`."""

    static: PointCloud
    moving: tuple[PointCloud, ...]
    poses_c2w: np.ndarray
    timestamps: np.ndarray
    intrinsics: np.ndarray | None
    image_size: tuple[int, int] | None

    def __len__(self) -> int:
        return len(self.poses_c2w)


def read_cloud(path: Path, max_points: int | None = None) -> PointCloud:
    """A PLY's vertices (at most `max_points`, evenly spaced), colours (grey without red, green,
    blue) and its float `confidence` property when present."""
    verts = read_ply_vertices(path)
    verts = verts[evenly_spaced(len(verts), max_points)]
    names = verts.dtype.names
    points = np.stack([verts[c] for c in "xyz"], axis=1).astype(np.float32)
    if {"red", "green", "blue"} <= set(names):
        colors = np.stack([verts[c] for c in ("red", "green", "blue")], axis=1).astype(np.uint8)
    else:
        colors = np.full(points.shape, GREY, np.uint8)
    conf = verts["confidence"].astype(np.float32) if "confidence" in names else None
    return PointCloud(points.reshape(-1, 3), colors.reshape(-1, 3), conf)


def read_intrinsics(path: Path, frames: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(K (N,3,3), (width, height)) of `intrinsics.json`, one K per trajectory frame."""
    try:
        doc = json.loads(path.read_text())
        ks = np.array([frame["K"] for frame in doc["frames"]], dtype=np.float64)
        size = (int(doc["width"]), int(doc["height"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a recon4d intrinsics file ({exc})") from None
    if ks.shape != (frames, 3, 3):
        raise InputError(f"{path}: {len(ks)} cameras for {frames} trajectory poses")
    return ks, size


def read_moving(folder: Path, frames: int, max_points: int | None) -> tuple[PointCloud, ...]:
    """The moving cloud of each frame from `dynamic/` (empty where a frame has no file)."""
    expected = {frame_file(DYNAMIC_CLOUD_DIR, i, ".ply") for i in range(frames)}
    for path in sorted((folder / DYNAMIC_CLOUD_DIR).glob("*.ply")):
        if path.relative_to(folder).as_posix() not in expected:
            raise InputError(f"{path}: no such frame in {folder / TRAJECTORY_FILE} "
                             f"({frames} poses)")
    return tuple(read_cloud(folder / name, max_points) if (folder / name).is_file()
                 else PointCloud.empty() for name in sorted(expected))


def read_output_folder(path: str | os.PathLike, max_points: int | None = None) -> OutputFolder:
    """Read a recon4d output folder (static or 4D); each cloud is thinned to at most
    `max_points` evenly spaced points. InputError names the missing or malformed file."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    trajectory = folder / TRAJECTORY_FILE
    clouds = [folder / name for name in (STATIC_CLOUD_FILE, CLOUD_FILE)
              if (folder / name).is_file()]
    if not trajectory.is_file() and not clouds:
        raise InputError(f"{folder}: not a recon4d output folder (no {TRAJECTORY_FILE}, "
                         f"{STATIC_CLOUD_FILE} or {CLOUD_FILE})")
    if not trajectory.is_file():
        raise InputError(f"{trajectory}: file not found (the viewer needs the camera poses)")
    if not clouds:
        raise InputError(f"{folder}: no point cloud ({STATIC_CLOUD_FILE} or {CLOUD_FILE})")
    traj = read_tum(trajectory)
    intrinsics, size = (read_intrinsics(folder / INTRINSICS_FILE, len(traj))
                        if (folder / INTRINSICS_FILE).is_file() else (None, None))
    moving = (read_moving(folder, len(traj), max_points)
              if (folder / DYNAMIC_CLOUD_DIR).is_dir() else ())
    return OutputFolder(read_cloud(clouds[0], max_points), moving, traj.poses, traj.timestamps,
                        intrinsics, size)
