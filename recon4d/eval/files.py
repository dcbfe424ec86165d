"""Reading the per-frame files of predictions and benchmarks, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from recon4d.errors import InputError
from recon4d.io.arrays import load_npy


def read_image_array(path: Path) -> np.ndarray:
    """Pixel array of an image file as stored (palette indices for palette PNGs)."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with Image.open(path) as img:
            return np.asarray(img)
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{path}: cannot read image ({exc})") from None


def read_mask(path: Path) -> np.ndarray:
    """(H, W) boolean mask: any non-zero value (0/255 masks, palette object ids, RGB colours;
    an alpha channel is ignored)."""
    arr = read_image_array(path)
    if arr.ndim == 3:
        return arr[..., :3 if arr.shape[2] >= 3 else 1].any(axis=2)
    return arr != 0


def read_depth_png(path: Path, scale: float) -> np.ndarray:
    """(H, W) float32 depth of a 16-bit PNG holding `depth * scale` (0 = no depth)."""
    arr = read_image_array(path)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{path}: expected a single-channel 16-bit depth PNG, got "
                         f"{arr.dtype} {arr.shape}")
    return (arr.astype(np.float32) / np.float32(scale)).astype(np.float32)


def read_npy(path: Path, ndim: int) -> np.ndarray:
    """A numeric .npy array with `ndim` dimensions (no pickles)."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    arr = load_npy(path)
    if arr.ndim != ndim or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{path}: expected a {ndim}-D numeric array, got {arr.dtype} "
                         f"{arr.shape}")
    return arr


def stack_frames(arrays: list[np.ndarray], paths: list[Path]) -> np.ndarray:
    """Stack per-frame arrays; frames of different sizes raise InputError naming one."""
    for arr, path in zip(arrays, paths, strict=True):
        if arr.shape != arrays[0].shape:
            raise InputError(f"{path}: size {arr.shape} differs from {paths[0].name} "
                             f"{arrays[0].shape}")
    return np.stack(arrays)


def numbered_files(folder: Path, suffix: str) -> list[Path]:
    """Files `folder/*suffix` sorted by name (hidden and temporary files skipped)."""
    return sorted(p for p in folder.glob(f"*{suffix}") if p.is_file()
                  and not p.name.startswith("."))
