"""Colour maps as 256-entry lookup tables (no plotting library needed), and the robust
normalisations that turn depth and confidence maps into colours."""

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
    v = np.asarray(values)
    v = np.nan_to_num(v.astype(np.result_type(v, np.float32), copy=False), nan=0.0, posinf=1.0,
                      neginf=0.0)
    index = np.rint(np.clip(v, 0.0, 1.0) * (len(lut) - 1)).astype(np.intp)
    return lut[index]


def percentile_range(values: np.ndarray, low: float = 2.0,
                     high: float = 98.0) -> tuple[float, float]:
    """Robust (lo, hi) of the finite `values`: their `low` and `high` percentiles, so a few
    outliers do not wash out the colours; (0, 1) when none is finite. Computed once over a whole
    video, the colours of different frames compare."""
    values = np.asarray(values)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [low, high])
    return float(lo), float(hi)


def colorize(values: np.ndarray, lo: float, hi: float, lut: np.ndarray = VIRIDIS) -> np.ndarray:
    """(..., 3) uint8 colours of `values` mapped linearly from [lo, hi] onto `lut` (clipped);
    non-finite values, the pixels without a value, are black."""
    values = np.asarray(values)
    span = hi - lo if hi > lo else 1.0
    rgb = apply_colormap((values - lo) / span, lut)
    rgb[~np.isfinite(values)] = 0
    return rgb


def inverse_depths(depths: np.ndarray) -> np.ndarray:
    """float32 1 / depth, NaN where depth <= 0 (no surface), so colour ranges skip those pixels."""
    depths = np.asarray(depths, dtype=np.float32)
    with np.errstate(divide="ignore"):
        return np.where(depths > 0, 1 / depths, np.float32(np.nan))


def inverse_depth_colours(depths: np.ndarray) -> np.ndarray:
    """(..., 3) uint8: inverse depth colour-mapped with one robust range over all `depths` (near
    is bright); depth <= 0 (no surface) is black."""
    inverse = inverse_depths(depths)
    return colorize(inverse, *percentile_range(inverse))


def log_colours(values: np.ndarray) -> np.ndarray:
    """(..., 3) uint8: log of positive `values` (confidences span decades) colour-mapped with one
    robust range over all of them; values <= 0 are black."""
    values = np.asarray(values, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(values > 0, np.log(values), np.float32(np.nan))
    return colorize(logs, *percentile_range(logs))
