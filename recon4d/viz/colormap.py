"""Colour maps for depth and time, as 256-entry lookup tables (no plotting library needed)."""

from __future__ import annotations

import numpy as np

# viridis (CC0, by van der Walt and Smith) sampled at 17 evenly spaced positions; linear between
_VIRIDIS_STOPS = np.array([
    [68, 1, 84], [72, 24, 106], [71, 45, 123], [66, 64, 134], [59, 82, 139], [51, 99, 141],
    [44, 114, 142], [38, 130, 142], [33, 145, 140], [31, 160, 136], [40, 174, 128],
    [63, 188, 115], [94, 201, 98], [132, 212, 75], [173, 220, 48], [216, 226, 25],
    [253, 231, 37]], dtype=np.float64)


def _lookup_table(stops: np.ndarray, size: int = 256) -> np.ndarray:
    """(size, 3) uint8 table interpolating the colour `stops` linearly over [0, 1]."""
    pos = np.linspace(0.0, 1.0, len(stops))
    t = np.linspace(0.0, 1.0, size)
    return np.stack([np.interp(t, pos, stops[:, c]) for c in range(3)], -1).round().astype(np.uint8)


VIRIDIS = _lookup_table(_VIRIDIS_STOPS)


def apply_colormap(values: np.ndarray, lut: np.ndarray = VIRIDIS) -> np.ndarray:
    """(..., 3) uint8 colours of `values` in [0, 1] (clipped; non-finite values map to 0)."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    index = np.rint(np.clip(v, 0.0, 1.0) * (len(lut) - 1)).astype(np.intp)
    return lut[index]
