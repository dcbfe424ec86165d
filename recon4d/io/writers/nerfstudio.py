"""nerfstudio `transforms.json` + `images/`: frames and cameras at the original resolution.

With `sources` (the original image files, in frame order) each image is copied as it is (or
re-encoded upright when it carries an EXIF rotation) and its camera covers the whole source.
Without them the Scene image is resized back by the original scale, which covers the region the
model saw (the whole source unless the loader cropped it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from recon4d.errors import InputError
from recon4d.io.atomic import atomic_path, atomic_write_text
from recon4d.io.layout import NERFSTUDIO_FILE, NERFSTUDIO_IMAGES_DIR, frame_file
from recon4d.io.os_errors import os_error_text
from recon4d.io.pixels import intrinsics_to_source
from recon4d.io.writers.files import save_png
from recon4d.io.writers.glb import OPENCV_TO_OPENGL
from recon4d.io.writers.intrinsics import original_cameras
from recon4d.scene import Scene

EXIF_ORIENTATION = 0x0112


def _source_needs_upright(path: Path, expected: tuple[int, int]) -> bool:
    """Check a source's size (after EXIF rotation) is `expected`; True if it must be rotated."""
    try:
        with Image.open(path) as img:
            rotated = img.getexif().get(EXIF_ORIENTATION, 1) not in (1, None)
            size = ImageOps.exif_transpose(img).size if rotated else img.size
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"{path}: cannot read source image ({os_error_text(exc, path)})") from None
    if size != expected:
        raise InputError(f"{path}: source image is {size[0]}x{size[1]}, but the scene's frame was "
                         f"made from a {expected[0]}x{expected[1]} image")
    return rotated


def check_sources(scene: Scene, sources: list[str | os.PathLike]) -> list[bool]:
    """Validate `sources` against the Scene; per source, whether it needs re-encoding upright."""
    if len(sources) != len(scene):
        raise InputError(f"{len(sources)} source images given for {len(scene)} frames")
    if scene.original_sizes is None:
        raise InputError("source images given, but the scene does not record how its frames "
                         "were made from them (original sizes and crops)")
    for path in map(Path, sources):
        if not path.is_file():
            raise InputError(f"{path}: source image not found")
    return [_source_needs_upright(Path(p), tuple(int(v) for v in size))
            for p, size in zip(sources, scene.original_sizes, strict=True)]


def _frame(file_path: str, pose_c2w: np.ndarray, k: np.ndarray, size: tuple[int, int]) -> dict:
    """One transforms.json frame: OpenGL camera-to-world, pixel-corner principal point."""
    return {"file_path": file_path, "transform_matrix": (pose_c2w @ OPENCV_TO_OPENGL).tolist(),
            "fl_x": float(k[0, 0]), "fl_y": float(k[1, 1]),
            "cx": float(k[0, 2] + 0.5), "cy": float(k[1, 2] + 0.5),
            "w": int(size[0]), "h": int(size[1])}


def _resized_frame(scene: Scene, index: int, scale: np.ndarray) -> tuple[Image.Image, np.ndarray]:
    """The Scene image resized back by `scale` (sx, sy), and its intrinsics."""
    _, h, w = scene.depths.shape
    size = (max(1, round(w * scale[0])), max(1, round(h * scale[1])))
    exact = np.array(size) / [w, h]
    k = intrinsics_to_source(scene.intrinsics[index], np.zeros(2), exact)
    image = Image.fromarray(scene.images[index]).resize(size, Image.Resampling.LANCZOS)
    return image, k


def write_nerfstudio(scene: Scene, out_dir: Path, sources: list[str | os.PathLike] | None = None,
                     upright: list[bool] | None = None, ply_file: str | None = None) -> list[str]:
    """Write `images/NNNNNN.*` and `transforms.json` (OPENCV model, zero distortion).

    `upright` is check_sources' result (computed here when None); `ply_file` is recorded as
    `ply_file_path` so splatting methods can start from the point cloud.
    """
    k0, sizes, scales = original_cameras(scene)
    if sources is not None and upright is None:
        upright = check_sources(scene, sources)
    files, frames = [], []
    for i in range(len(scene)):
        if sources is None:
            image, k = _resized_frame(scene, i, scales[i])
            rel = frame_file(NERFSTUDIO_IMAGES_DIR, i, ".png")
            save_png(out_dir / rel, image)
            size = image.size
        elif upright[i]:
            rel = frame_file(NERFSTUDIO_IMAGES_DIR, i, ".png")
            with Image.open(sources[i]) as img:
                save_png(out_dir / rel, ImageOps.exif_transpose(img))
            k, size = k0[i], sizes[i]
        else:
            rel = frame_file(NERFSTUDIO_IMAGES_DIR, i, Path(sources[i]).suffix.lower())
            with atomic_path(out_dir / rel) as tmp:
                shutil.copyfile(sources[i], tmp)
            k, size = k0[i], sizes[i]
        files.append(rel)
        frames.append(_frame(rel, scene.poses_c2w[i], k, size))
    doc = {"camera_model": "OPENCV", "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0,
           "frames": frames}
    if ply_file is not None:
        doc["ply_file_path"] = ply_file
    atomic_write_text(out_dir / NERFSTUDIO_FILE, json.dumps(doc, indent=1) + "\n")
    return files + [NERFSTUDIO_FILE]
