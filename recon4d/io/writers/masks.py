"""Per-frame boolean masks as 8-bit PNG (255 = true): kept points and dynamic (moving) pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from recon4d.io.layout import frame_file
from recon4d.io.writers.files import save_png


def write_masks(masks: np.ndarray | None, out_dir: Path, folder: str) -> list[str]:
    """Write `folder/NNNNNN.png` per frame of (N, H, W) `masks`; nothing when `masks` is None."""
    if masks is None:
        return []
    files = [frame_file(folder, i, ".png") for i in range(len(masks))]
    for path, mask in zip(files, masks, strict=True):
        save_png(out_dir / path, Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)))
    return files
