"""Foreground masks for matching: reading, validation, mapping to the model input, erosion, and
painting the background of a model input (the pre-network variant users tried).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from recon4d.errors import InputError
from recon4d.io.arrays import load_npy
from recon4d.matching.coords import LoaderGeometry

# colours for painting the background of a model input, in the input's [-1, 1] range
BACKGROUND_COLOURS = {"black": -1.0, "grey": 0.0, "white": 1.0}

MaskLike = str | os.PathLike | np.ndarray | torch.Tensor


def read_mask(source: MaskLike) -> np.ndarray:
    """Boolean (H, W) mask from an image file (pixel > 127 = foreground), a `.npy` file (non-zero
    = foreground) or an array; True marks pixels that may match."""
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    if isinstance(source, np.ndarray):
        arr = source
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"mask file {path} does not exist")
        try:
            if path.suffix.lower() == ".npy":
                arr = load_npy(path)
            else:
                with Image.open(path) as im:
                    arr = np.asarray(ImageOps.exif_transpose(im).convert("L")) > 127
        except (OSError, ValueError) as exc:
            raise InputError(f"mask file {path} cannot be read: {exc}") from exc
    arr = np.squeeze(np.asarray(arr))
    if arr.ndim != 2:
        raise InputError(f"mask {_name(source)} must be a 2-D image, got shape {arr.shape}")
    return arr.astype(bool) if arr.dtype != bool else arr


def mask_to_model(mask: np.ndarray, geometry: LoaderGeometry, name: str = "mask",
                  allow_empty: bool = False) -> torch.Tensor:
    """Mask of the original image (or already of the model input) -> (H, W) bool model-input mask.

    An original-size mask is resized like the image (area average, foreground where at least half
    a model pixel is covered) and cropped with the loader's box. Any other shape is an error, and
    so is an empty result unless `allow_empty` (a motion mask of a frame where nothing moves).
    """
    height, width = mask.shape
    if (height, width) == geometry.model_shape:
        out = mask
    elif (width, height) == geometry.original:
        im = Image.fromarray(mask.astype(np.uint8) * 255)
        out = np.asarray(im.resize(geometry.resized, Image.BOX).crop(geometry.box)) >= 128
    else:
        ow, oh = geometry.original
        mh, mw = geometry.model_shape
        raise InputError(f"mask {name} is {width}x{height} pixels; it must match its image "
                         f"({ow}x{oh}) or the model input ({mw}x{mh})")
    if not allow_empty and not out.any():
        raise InputError(f"mask {name} selects no pixel of its image as the network sees it "
                         f"(after resize and crop)")
    return torch.from_numpy(np.ascontiguousarray(out))


def mask_to_original(mask: torch.Tensor, geometry: LoaderGeometry) -> np.ndarray:
    """A model-input mask drawn back on the original pixel grid (nearest model pixel; pixels
    cropped away by the loader are False)."""
    width, height = geometry.original
    mh, mw = geometry.model_shape
    cols = np.rint(geometry.to_model(np.stack([np.arange(width), np.zeros(width)], 1))[:, 0])
    rows = np.rint(geometry.to_model(np.stack([np.zeros(height), np.arange(height)], 1))[:, 1])
    col_ok, row_ok = (cols >= 0) & (cols < mw), (rows >= 0) & (rows < mh)
    picked = mask.cpu().numpy()[np.ix_(np.clip(rows, 0, mh - 1).astype(int),
                                        np.clip(cols, 0, mw - 1).astype(int))]
    return picked & row_ok[:, None] & col_ok[None, :]


def erode_mask(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Shrink a (H, W) bool mask by `radius` pixels (square structuring element); the image
    border does not erode."""
    if radius <= 0:
        return mask
    background = (~mask).float()[None, None]
    grown = F.max_pool2d(background, 2 * radius + 1, stride=1, padding=radius)
    return grown[0, 0] < 0.5


def paint_background(img: torch.Tensor, mask: torch.Tensor, colour: str) -> torch.Tensor:
    """Copy of a model input `img` (B, 3, H, W) with pixels outside `mask` set to `colour`."""
    if colour not in BACKGROUND_COLOURS:
        raise InputError(f"background colour must be one of {sorted(BACKGROUND_COLOURS)}, "
                         f"got {colour!r}")
    keep = mask.to(img.device).bool()[None, None]
    return torch.where(keep, img, torch.full_like(img, BACKGROUND_COLOURS[colour]))


def _name(source: MaskLike) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else "array"
