"""Motion masks the user gives (`reconstruct --masks DIR`): one image or .npy per frame, read
and mapped to the model input grid the way the frames were.

Files are taken in natural order (`recon4d.io.images.natural_key`); a mask is foreground (moving)
where an image pixel is > 127 or a .npy value is non-zero. Each mask has its frame's original
size (resized and cropped like the frame) or the model input size.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from recon4d.errors import InputError
from recon4d.io.images import is_image_name, natural_key
from recon4d.matching.coords import LoaderGeometry
from recon4d.matching.masks import mask_to_model, read_mask


def mask_files(folder: str | os.PathLike, count: int) -> list[Path]:
    """The `count` mask files of `folder` in natural order; InputError when the folder is
    missing or holds another number of masks."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: masks folder not found")
    files = sorted((p for p in folder.iterdir()
                    if p.is_file() and (is_image_name(p) or p.suffix.lower() == ".npy")),
                   key=lambda p: natural_key(p.name))
    if len(files) != count:
        raise InputError(f"{folder}: {len(files)} mask file(s) for {count} frames; give one "
                         "mask (image or .npy) per frame, in frame order")
    return files


def read_motion_masks(folder: str | os.PathLike, n_frames: int, model_shape: tuple[int, int],
                      geometries: list[LoaderGeometry] | None = None) -> np.ndarray:
    """(N, H, W) bool masks on the model grid of N = `n_frames` frames; without the frames'
    original geometry (predictions from a file, an oracle) every mask must be H x W already."""
    height, width = model_shape
    files = mask_files(folder, n_frames)
    out = np.zeros((len(files), height, width), dtype=bool)
    for index, path in enumerate(files):
        mask = read_mask(path)
        if geometries is not None:
            out[index] = mask_to_model(mask, geometries[index], str(path), allow_empty=True)
        elif mask.shape == (height, width):
            out[index] = mask
        else:
            raise InputError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} pixels; without "
                             f"the source frames it must be the model input size "
                             f"{width}x{height}")
    return out

