"""Pixel coordinates between an original image and the model input the loader made from it.

The loader (docs/formats.md, "Preprocessing") resizes the EXIF-upright image so its long side is
`size` (short side 224 for size 224), then centre-crops (`recon4d.io.images.crop_geometry`);
this module maps pixel centres through that resize and crop both ways (`recon4d.io.pixels`), so
matches are reported in original pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon4d.io.images import crop_geometry
from recon4d.io.pixels import model_to_source, source_to_model

PATCH = 16


@dataclass(frozen=True)
class LoaderGeometry:
    """Resize then crop of one image: original (W, H) -> resized (W, H) -> crop box."""

    original: tuple[int, int]  # (width, height) after the EXIF transpose
    resized: tuple[int, int]  # (width, height) after the resize
    box: tuple[int, int, int, int]  # crop (left, top, right, bottom) in resized pixels

    @property
    def model_shape(self) -> tuple[int, int]:
        """(height, width) of the model input (the loader's `true_shape`)."""
        return self.box[3] - self.box[1], self.box[2] - self.box[0]

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """Model-input pixels (N, 2) as (x, y) -> original-image pixels (float, pixel centres)."""
        return model_to_source(xy, *self._offset_scale())

    def to_model(self, xy: np.ndarray) -> np.ndarray:
        """Original-image pixels (N, 2) as (x, y) -> model-input pixels (float)."""
        return source_to_model(xy, *self._offset_scale())

    def _offset_scale(self) -> tuple[np.ndarray, np.ndarray]:
        offset = np.array(self.box[:2], dtype=np.float64)
        return offset, np.array(self.original, dtype=np.float64) / self.resized


def loader_geometry(width: int, height: int, size: int = 512,
                    square_ok: bool = False) -> LoaderGeometry:
    """The loader's resize and crop for an upright image of `width` x `height` pixels."""
    geo = crop_geometry(width, height, size, square_ok, PATCH)
    return LoaderGeometry((width, height), geo.resized, geo.box)
