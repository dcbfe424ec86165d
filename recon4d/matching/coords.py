"""Pixel coordinates between an original image and the model input the loader made from it.

The loader (model-spec §1) resizes the EXIF-upright image so its long side is `size` (short side
224 for size 224), then centre-crops (`recon4d.io.images.crop_geometry`); this module maps pixel
centres through that resize and crop both ways, so matches are reported in original pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon4d.io.images import crop_geometry

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
        scale, offset = self._scale_offset()
        return (np.asarray(xy, dtype=np.float64) + offset + 0.5) * scale - 0.5

    def to_model(self, xy: np.ndarray) -> np.ndarray:
        """Original-image pixels (N, 2) as (x, y) -> model-input pixels (float)."""
        scale, offset = self._scale_offset()
        return (np.asarray(xy, dtype=np.float64) + 0.5) / scale - 0.5 - offset

    def _scale_offset(self) -> tuple[np.ndarray, np.ndarray]:
        scale = np.array([self.original[0] / self.resized[0], self.original[1] / self.resized[1]])
        return scale, np.array([self.box[0], self.box[1]], dtype=np.float64)


def loader_geometry(width: int, height: int, size: int = 512,
                    square_ok: bool = False) -> LoaderGeometry:
    """The loader's resize and crop for an upright image of `width` x `height` pixels."""
    geo = crop_geometry(width, height, size, square_ok, PATCH)
    return LoaderGeometry((width, height), geo.resized, geo.box)
