"""Binary little-endian PLY point clouds: `x y z` float32, `red green blue` uchar, `confidence`
float32 (the Scene's confidence of the point; readers that do not know it skip it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon4d.io.atomic import atomic_write_bytes
from recon4d.io.layout import CLOUD_FILE
from recon4d.io.writers.points import Cloud

VERTEX_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                         ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("confidence", "<f4")])
_HEADER_PROPERTIES = ("property float x\nproperty float y\nproperty float z\n"
                      "property uchar red\nproperty uchar green\nproperty uchar blue\n"
                      "property float confidence\n")


def ply_bytes(cloud: Cloud) -> bytes:
    """The PLY file content for `cloud` (header plus one packed record per vertex)."""
    rows = np.empty(len(cloud), dtype=VERTEX_DTYPE)
    for axis, name in enumerate("xyz"):
        rows[name] = cloud.xyz[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        rows[name] = cloud.rgb[:, channel]
    rows["confidence"] = cloud.conf
    header = ("ply\nformat binary_little_endian 1.0\ncomment written by recon4d\n"
              f"element vertex {len(cloud)}\n{_HEADER_PROPERTIES}end_header\n")
    return header.encode("ascii") + rows.tobytes()


def write_ply(cloud: Cloud, out_dir: Path, path: str = CLOUD_FILE) -> list[str]:
    """Write `cloud` to `out_dir/path` (default `pointcloud.ply`; world frame, scene units)."""
    atomic_write_bytes(out_dir / path, ply_bytes(cloud))
    return [path]
