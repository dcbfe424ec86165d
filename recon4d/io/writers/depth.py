"""Depth maps: float32 `.npy`, 16-bit PNG with a recorded scale, and colour-mapped PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from recon4d.io.layout import DEPTH_COLOR_DIR, DEPTH_DIR, frame_file
from recon4d.io.writers.files import save_npy, save_png
from recon4d.scene import Scene
from recon4d.viz.colormap import colorize, inverse_depths, percentile_range

PNG_MAX = 65535


def depth_png_scale(depths: np.ndarray) -> float:
    """Scene units per 16-bit count: the scene's largest depth maps to 65535 (1.0 if all zero)."""
    top = float(np.max(depths)) if depths.size else 0.0
    return top / PNG_MAX if top > 0 else 1.0


def write_depth_npy(scene: Scene, out_dir: Path) -> list[str]:
    """Write `depth/NNNNNN.npy` (float32, H×W, z-depth in scene units)."""
    files = [frame_file(DEPTH_DIR, i, ".npy") for i in range(len(scene))]
    for path, depth in zip(files, scene.depths, strict=True):
        save_npy(out_dir / path, depth.astype(np.float32))
    return files


def write_depth_png(scene: Scene, out_dir: Path, scale: float) -> list[str]:
    """Write `depth/NNNNNN.png`, 16-bit: depth = value * scale (also in the PNG's tEXt chunk)."""
    files = [frame_file(DEPTH_DIR, i, ".png") for i in range(len(scene))]
    text = {"depth_scale": repr(scale), "depth_unit": "scene units per count; 0 = no depth"}
    for path, depth in zip(files, scene.depths, strict=True):
        counts = np.clip(np.rint(depth / scale), 0, PNG_MAX).astype(np.uint16)
        save_png(out_dir / path, Image.fromarray(counts), text)
    return files


def write_depth_color(scene: Scene, out_dir: Path) -> list[str]:
    """Write `depth_color/NNNNNN.png`: inverse depth, one range for the whole scene, near bright."""
    lo, hi = percentile_range(inverse_depths(scene.depths))
    files = [frame_file(DEPTH_COLOR_DIR, i, ".png") for i in range(len(scene))]
    for path, depth in zip(files, scene.depths, strict=True):
        save_png(out_dir / path, Image.fromarray(colorize(inverse_depths(depth), lo, hi)))
    return files
