"""COLMAP sparse model `colmap/sparse/0/{cameras,images,points3D}.{txt,bin}` at the original size.

Cameras are PINHOLE (one per distinct size and intrinsics) in COLMAP's pixel convention (0.5 added
to the principal point); images hold world-to-camera poses; each 3D point is a kept Scene point
observed once, at its source pixel in its own frame.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from recon4d.geometry.quaternions import matrix_to_quat
from recon4d.io.atomic import atomic_write_bytes, atomic_write_text
from recon4d.io.layout import COLMAP_SPARSE_DIR
from recon4d.io.pixels import model_to_source
from recon4d.io.writers.intrinsics import original_cameras
from recon4d.io.writers.points import MaskedPoints, evenly_spaced
from recon4d.scene import Scene

PINHOLE_ID = 1
DEFAULT_MAX_POINTS = 500_000
_ROWS_PER_CHUNK = 50_000
CAMERA_DTYPE = np.dtype([("id", "<i4"), ("model", "<i4"), ("width", "<u8"), ("height", "<u8"),
                         ("params", "<f8", (4,))])
POINT2D_DTYPE = np.dtype([("xy", "<f8", (2,)), ("point3d_id", "<i8")])
POINT3D_DTYPE = np.dtype([("id", "<u8"), ("xyz", "<f8", (3,)), ("rgb", "u1", (3,)),
                          ("error", "<f8"), ("track_length", "<u8"), ("image_id", "<i4"),
                          ("point2d_idx", "<i4")])


def format_table(row_format: str, blocks: list[np.ndarray]) -> str:
    """Rows of `row_format` % values, filled from column blocks ((n,) or (n, k) arrays).

    One `%` call per chunk of rows instead of a Python loop per row.
    """
    blocks = [b[:, None] if b.ndim == 1 else b for b in blocks]
    n, width = len(blocks[0]), sum(b.shape[1] for b in blocks)
    parts = []
    for start in range(0, n, _ROWS_PER_CHUNK):
        stop = min(start + _ROWS_PER_CHUNK, n)
        cells = np.empty((stop - start, width), dtype=object)
        col = 0
        for block in blocks:
            cells[:, col:col + block.shape[1]] = block[start:stop].tolist()
            col += block.shape[1]
        parts.append((row_format * (stop - start)) % tuple(cells.ravel().tolist()))
    return "".join(parts)


class ColmapModel:
    """The arrays of a COLMAP model built from a Scene (ids are 1-based)."""

    def __init__(self, scene: Scene, points: MaskedPoints, names: list[str]) -> None:
        n = len(scene)
        k0, sizes, scales = original_cameras(scene)
        params = np.stack([k0[:, 0, 0], k0[:, 1, 1], k0[:, 0, 2] + 0.5, k0[:, 1, 2] + 0.5], 1)
        keys = np.concatenate([sizes.astype(np.float64), params], axis=1)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        self.cameras = np.zeros(len(unique), dtype=CAMERA_DTYPE)
        self.cameras["id"] = np.arange(1, len(unique) + 1)
        self.cameras["model"] = PINHOLE_ID
        self.cameras["width"], self.cameras["height"] = unique[:, 0], unique[:, 1]
        self.cameras["params"] = unique[:, 2:]
        self.image_camera = inverse.reshape(-1) + 1
        self.names = names
        rot_w2c = scene.poses_c2w[:, :3, :3].transpose(0, 2, 1)
        self.trans_w2c = -np.einsum("nij,nj->ni", rot_w2c, scene.poses_c2w[:, :3, 3])
        self.quat_wxyz = matrix_to_quat(rot_w2c)[:, [3, 0, 1, 2]]
        offsets = np.zeros((n, 2)) if scene.crops is None else scene.crops[:, :2].astype(float)
        self.points = points
        # COLMAP puts pixel centres at +0.5
        self.xy = model_to_source(points.pixel, offsets[points.frame], scales[points.frame]) + 0.5
        starts = np.concatenate([[0], np.cumsum(np.bincount(points.frame, minlength=n))])
        self.slices = [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:], strict=True)]
        self.point2d_idx = np.arange(len(points)) - starts[points.frame]

    def cameras_txt(self) -> str:
        head = "# Camera list with one line of data per camera:\n" \
               "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n" \
               f"# Number of cameras: {len(self.cameras)}\n"
        return head + format_table("%d PINHOLE %d %d %.17g %.17g %.17g %.17g\n", [
            self.cameras["id"], self.cameras["width"], self.cameras["height"],
            self.cameras["params"]])

    def images_txt(self) -> str:
        lines = ["# Image list with two lines of data per image:\n"
                 "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
                 "#   POINTS2D[] as (X, Y, POINT3D_ID)\n"
                 f"# Number of images: {len(self.names)}\n"]
        for i, name in enumerate(self.names):
            pose = " ".join(f"{v:.17g}" for v in (*self.quat_wxyz[i], *self.trans_w2c[i]))
            lines.append(f"{i + 1} {pose} {self.image_camera[i]} {name}\n")
            sel = self.slices[i]
            ids = np.arange(sel.start, sel.stop) + 1
            row = format_table("%.17g %.17g %d ", [self.xy[sel], ids])
            lines.append(row.rstrip(" ") + "\n")
        return "".join(lines)

    def points3d_txt(self) -> str:
        head = "# 3D point list with one line of data per point:\n" \
               "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n" \
               f"# Number of points: {len(self.points)}\n"
        return head + format_table("%d %.9g %.9g %.9g %d %d %d 0 %d %d\n", [
            np.arange(1, len(self.points) + 1), self.points.xyz.astype(np.float64),
            self.points.rgb, self.points.frame + 1, self.point2d_idx])

    def cameras_bin(self) -> bytes:
        return struct.pack("<Q", len(self.cameras)) + self.cameras.tobytes()

    def images_bin(self) -> bytes:
        parts = [struct.pack("<Q", len(self.names))]
        for i, name in enumerate(self.names):
            sel = self.slices[i]
            obs = np.zeros(sel.stop - sel.start, dtype=POINT2D_DTYPE)
            obs["xy"], obs["point3d_id"] = self.xy[sel], np.arange(sel.start, sel.stop) + 1
            parts += [struct.pack("<i7di", i + 1, *self.quat_wxyz[i], *self.trans_w2c[i],
                                  int(self.image_camera[i])),
                      name.encode("utf-8") + b"\0", struct.pack("<Q", len(obs)), obs.tobytes()]
        return b"".join(parts)

    def points3d_bin(self) -> bytes:
        rows = np.zeros(len(self.points), dtype=POINT3D_DTYPE)
        rows["id"] = np.arange(1, len(self.points) + 1)
        rows["xyz"], rows["rgb"] = self.points.xyz, self.points.rgb
        rows["track_length"] = 1
        rows["image_id"], rows["point2d_idx"] = self.points.frame + 1, self.point2d_idx
        return struct.pack("<Q", len(rows)) + rows.tobytes()


def write_colmap(scene: Scene, points: MaskedPoints, names: list[str], out_dir: Path,
                 max_points: int | None = DEFAULT_MAX_POINTS) -> list[str]:
    """Write the model in text and binary; at most `max_points` points, spread evenly."""
    model = ColmapModel(scene, points.subset(evenly_spaced(len(points), max_points)), names)
    files = []
    for stem in ("cameras", "images", "points3D"):
        stem_attr = stem.lower()
        text_path, bin_path = f"{COLMAP_SPARSE_DIR}/{stem}.txt", f"{COLMAP_SPARSE_DIR}/{stem}.bin"
        atomic_write_text(out_dir / text_path, getattr(model, f"{stem_attr}_txt")())
        atomic_write_bytes(out_dir / bin_path, getattr(model, f"{stem_attr}_bin")())
        files += [text_path, bin_path]
    return files
