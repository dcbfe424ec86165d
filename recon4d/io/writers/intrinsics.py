"""`intrinsics.json`: per-frame K at the model resolution and at the original image resolution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from recon4d.io.atomic import atomic_write_text
from recon4d.io.layout import INTRINSICS_FILE
from recon4d.io.pixels import crop_offset_scale, intrinsics_to_source
from recon4d.scene import Scene

INTRINSICS_FORMAT = 1
PIXEL_CONVENTION = ("OpenCV: (0, 0) is the centre of the top-left pixel; "
                    "COLMAP and nerfstudio outputs add 0.5 to cx and cy")


def original_cameras(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K0 (N,3,3), sizes (N,2) int (W0,H0), scales (N,2) (sx,sy)) at the original resolution.

    Uses the Scene's crops (`recon4d.io.pixels`); a Scene without original sizes is its own
    original (scale 1).
    """
    n, h, w = scene.depths.shape
    k = np.asarray(scene.intrinsics, dtype=np.float64)
    if scene.original_sizes is None:
        return k.copy(), np.tile([w, h], (n, 1)), np.ones((n, 2))
    offsets, scales = crop_offset_scale(scene.original_sizes, scene.crops)
    sizes = np.asarray(scene.original_sizes, dtype=np.int64)
    return intrinsics_to_source(k, offsets, scales), sizes, scales


def write_intrinsics(scene: Scene, out_dir: Path,
                     depth_png_scale: float | None = None) -> list[str]:
    """Write `intrinsics.json`; `depth_png_scale` (scene units per 16-bit count) when known."""
    n, h, w = scene.depths.shape
    k0, sizes, scales = original_cameras(scene)
    names = scene.image_names if len(scene.image_names) == n else [None] * n
    frames = [{
        "index": i,
        "name": names[i],
        "K": scene.intrinsics[i].tolist(),
        "original_width": int(sizes[i, 0]),
        "original_height": int(sizes[i, 1]),
        "crop": None if scene.crops is None else [int(v) for v in scene.crops[i]],
        "scale_to_original": scales[i].tolist(),
        "K_original": k0[i].tolist(),
    } for i in range(n)]
    doc = {"format": INTRINSICS_FORMAT, "pixel_convention": PIXEL_CONVENTION,
           "width": w, "height": h, "frames": frames}
    if depth_png_scale is not None:
        doc["depth_png_scale"] = depth_png_scale
    atomic_write_text(out_dir / INTRINSICS_FILE, json.dumps(doc, indent=1) + "\n")
    return [INTRINSICS_FILE]
