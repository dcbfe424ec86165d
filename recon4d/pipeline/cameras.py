"""Known intrinsics from the user (`--focal`, `--calib`), mapped to the model input resolution.

Both are given in pixels of the original images; a frame made by resizing to (rw, rh) and cropping
at (left, top) has fx' = fx * rw / W0, cx' = (cx + 0.5) * rw / W0 - 0.5 - left (same for y;
`recon4d.io.pixels`).
Without a known source resolution (predictions from a file) they are taken as model pixels.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recon4d.errors import InputError
from recon4d.io.images import crop_geometry, upright_size
from recon4d.io.pixels import crop_offset_scale, intrinsics_to_model


def frame_geometry(frames: Sequence, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Original sizes (N, 2) (W0, H0) and crops (N, 4) (left, top, resized_w, resized_h)."""
    sizes = np.asarray([upright_size(f) for f in frames], dtype=np.int64).reshape(-1, 2)
    crops = []
    for width, height in sizes.tolist():
        geo = crop_geometry(width, height, size)
        crops.append((geo.box[0], geo.box[1], geo.resized[0], geo.resized[1]))
    return sizes, np.asarray(crops, dtype=np.int64).reshape(-1, 4)


def read_calibration(path: str | os.PathLike) -> np.ndarray:
    """3x3 K from a JSON file: {"fx", "fy", "cx", "cy"}, {"K": 3x3} or a bare 3x3 list."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: calibration file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable JSON calibration file ({exc})") from None
    if isinstance(doc, dict) and {"fx", "fy", "cx", "cy"} <= doc.keys():
        values = [doc[k] for k in ("fx", "fy", "cx", "cy")]
        if not all(isinstance(v, (int, float)) for v in values):
            raise InputError(f"{path}: fx, fy, cx, cy must be numbers")
        fx, fy, cx, cy = (float(v) for v in values)
        k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
    else:
        raw = doc.get("K") if isinstance(doc, dict) else doc
        try:
            k = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            k = np.zeros(0)
        if k.shape != (3, 3):
            raise InputError(f"{path}: expected {{\"fx\", \"fy\", \"cx\", \"cy\"}}, {{\"K\": "
                             "3x3}} or a 3x3 list of numbers")
    if not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise InputError(f"{path}: focal lengths must be positive finite numbers")
    return k


def intrinsics_at_model(k: np.ndarray, original_sizes: np.ndarray | None,
                        crops: np.ndarray | None, n_frames: int) -> np.ndarray:
    """(N, 3, 3) K in model-input pixels from one K at the original resolution (see module)."""
    if original_sizes is None or crops is None:
        return np.repeat(np.asarray(k, dtype=np.float64)[None], n_frames, axis=0)
    return intrinsics_to_model(k, *crop_offset_scale(original_sizes, crops))


def known_focals(focal: float, original_sizes: np.ndarray | None, crops: np.ndarray | None,
                 n_frames: int) -> np.ndarray:
    """(N,) focal in model-input pixels from one focal at the original resolution."""
    if not np.isfinite(focal) or focal <= 0:
        raise InputError(f"--focal must be a positive number of pixels, got {focal}")
    if original_sizes is None or crops is None:
        return np.full(n_frames, float(focal))
    _, scale = crop_offset_scale(original_sizes, crops)
    return focal * (1.0 / scale).mean(axis=1)
