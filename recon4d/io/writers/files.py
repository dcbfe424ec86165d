"""Atomic savers for the file kinds the writers produce (npy arrays, PNG images)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from recon4d.io.atomic import atomic_path, atomic_write_bytes


def save_npy(path: Path, array: np.ndarray) -> None:
    """Write `array` as a `.npy` file atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)


def save_png(path: Path, image: Image.Image, text: dict[str, str] | None = None) -> None:
    """Write `image` as a PNG atomically, with optional tEXt metadata entries."""
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    atomic_write_bytes(path, buf.getvalue())
