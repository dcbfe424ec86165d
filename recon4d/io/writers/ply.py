"""`pointcloud.ply`: the kept points, binary little-endian, xyz float32 + rgb uint8."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon4d.io.atomic import atomic_write_bytes
from recon4d.io.layout import CLOUD_FILE
from recon4d.io.writers.points import MaskedPoints

VERTEX_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                         ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def ply_bytes(points: MaskedPoints) -> bytes:
    """The PLY file content for `points` (header plus one packed record per vertex)."""
    rows = np.empty(len(points), dtype=VERTEX_DTYPE)
    for axis, name in enumerate("xyz"):
        rows[name] = points.xyz[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        rows[name] = points.rgb[:, channel]
    header = ("ply\nformat binary_little_endian 1.0\ncomment written by recon4d\n"
              f"element vertex {len(points)}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    return header.encode("ascii") + rows.tobytes()


def write_ply(points: MaskedPoints, out_dir: Path) -> list[str]:
    """Write `pointcloud.ply` (world frame, the Scene's axes and units)."""
    atomic_write_bytes(out_dir / CLOUD_FILE, ply_bytes(points))
    return [CLOUD_FILE]
