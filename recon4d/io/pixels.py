"""Pixel-centre coordinates and intrinsics through the loader's resize and crop, both ways.

Pixel centres sit at integers (OpenCV). Resizing by `scale` maps x to (x + 0.5) * scale - 0.5; a
model-input pixel x of a frame resized from W0 to rw and cropped at `left` sits at
x0 = (x + left + 0.5) * W0 / rw - 0.5 in the source image. Every module that moves pixels or
intrinsics between model and source resolution goes through these functions. All broadcast:
`xy` (..., 2), `offset` (..., 2) = (left, top), `scale` (..., 2) = (W0 / rw, H0 / rh).
"""

from __future__ import annotations

import numpy as np


def resize_pixels(xy: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
    """Pixel centres of an image resized by `scale` (new size / old size), pure resize."""
    return (np.asarray(xy, dtype=np.float64) + 0.5) * scale - 0.5


def model_to_source(xy: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Model-input pixels -> source-image pixels (undo the crop, then the resize)."""
    return resize_pixels(np.asarray(xy, dtype=np.float64) + offset, scale)


def source_to_model(xy: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Source-image pixels -> model-input pixels (resize, then crop)."""
    return resize_pixels(xy, 1.0 / np.asarray(scale, dtype=np.float64)) - offset


def crop_offset_scale(source_sizes: np.ndarray,
                      crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offset (N, 2), scale (N, 2)) from source sizes (N, 2) (W0, H0) and the Scene's crops
    (N, 4) (left, top, resized_w, resized_h)."""
    crops = np.asarray(crops, dtype=np.float64)
    return crops[:, :2], np.asarray(source_sizes, dtype=np.float64) / crops[:, 2:4]


def intrinsics_to_source(k: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """K (..., 3, 3) in model-input pixels -> K in source pixels (focals scale, centre maps)."""
    return _map_intrinsics(k, scale, model_to_source(np.asarray(k)[..., :2, 2], offset, scale))


def intrinsics_to_model(k: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """K (..., 3, 3) in source pixels -> K in model-input pixels."""
    scale = np.asarray(scale, dtype=np.float64)
    centre = source_to_model(np.asarray(k)[..., :2, 2], offset, scale)
    return _map_intrinsics(k, 1.0 / scale, centre)


def _map_intrinsics(k: np.ndarray, focal_scale: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Copy of K with rows x and y (focal, skew) scaled by `focal_scale`, (cx, cy) = `centre`."""
    focal_scale = np.broadcast_to(focal_scale, centre.shape)
    out = np.array(np.broadcast_to(np.asarray(k, dtype=np.float64), centre.shape[:-1] + (3, 3)))
    out[..., :2, :2] *= focal_scale[..., :, None]
    out[..., :2, 2] = centre
    return out
