"""Bring model-resolution predictions onto the ground-truth pixel grid.

geometry `resize`: the prediction is stretched over the whole ground-truth image (what the
reference evaluations do). geometry `crop`: the prediction covers only the centred
ground-truth region with the prediction's aspect ratio (what the model saw after the loader's
centre crop); pixels outside it are not evaluated. Interpolation: `bicubic` (Keys a = -0.75,
half-pixel centres, as OpenCV's INTER_CUBIC used by the reference) or `nearest` (pixel centres).
"""

from __future__ import annotations

import numpy as np

from recon4d.errors import InputError
from recon4d.options.choices import GEOMETRIES, RESIZE_METHODS


def crop_box(gt_hw: tuple[int, int], pred_hw: tuple[int, int],
             geometry: str = "resize") -> tuple[slice, slice]:
    """(rows, cols) of the ground-truth region the prediction covers."""
    if geometry not in GEOMETRIES:
        raise InputError(f"unknown geometry {geometry!r}; choose one of {GEOMETRIES}")
    (gh, gw), (ph, pw) = gt_hw, pred_hw
    if geometry == "resize":
        return slice(0, gh), slice(0, gw)
    if gw * ph > pw * gh:  # ground truth is wider: crop its sides
        width = min(gw, max(1, round(gh * pw / ph)))
        left = (gw - width) // 2
        return slice(0, gh), slice(left, left + width)
    height = min(gh, max(1, round(gw * ph / pw)))
    top = (gh - height) // 2
    return slice(top, top + height), slice(0, gw)


def resize_stack(maps: np.ndarray, size: tuple[int, int], method: str = "bicubic") -> np.ndarray:
    """Resize (N, h, w) maps to (N, *size); booleans stay boolean (always nearest)."""
    if method not in RESIZE_METHODS:
        raise InputError(f"unknown resize method {method!r}; choose one of {RESIZE_METHODS}")
    if maps.shape[1:] == tuple(size):
        return maps
    if method == "nearest" or maps.dtype == bool:
        rows = np.minimum(((np.arange(size[0]) + 0.5) * maps.shape[1] / size[0]).astype(int),
                          maps.shape[1] - 1)
        cols = np.minimum(((np.arange(size[1]) + 0.5) * maps.shape[2] / size[1]).astype(int),
                          maps.shape[2] - 1)
        return maps[:, rows[:, None], cols[None, :]]
    import torch  # imported here: the rest of recon4d.eval does not need it

    tensor = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[None]
    out = torch.nn.functional.interpolate(tensor, size=size, mode="bicubic", align_corners=False)
    return out[0].numpy()
