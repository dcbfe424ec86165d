"""Procedural colour textures (multi-octave value noise) and bilinear texture lookup.

Every surface gets its own seeded texture with detail from 1 to 64 texels, so image matching
and optical flow have structure at every scale, like a photographed wall or floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _upsample2(grid: np.ndarray) -> np.ndarray:
    """Bilinear x2 upsampling of (h, w) to (2h, 2w), samples at cell centres, edges replicated."""
    for axis in (0, 1):
        pad = np.concatenate([np.take(grid, [0], axis), grid, np.take(grid, [-1], axis)], axis)
        n = grid.shape[axis]
        lo, mid, hi = (np.take(pad, np.arange(k, k + n), axis) for k in (0, 1, 2))
        out = np.empty(grid.shape[:axis] + (2 * n,) + grid.shape[axis + 1:], dtype=grid.dtype)
        even = [slice(None)] * 2
        odd = [slice(None)] * 2
        even[axis], odd[axis] = slice(0, None, 2), slice(1, None, 2)
        out[tuple(even)] = 0.75 * mid + 0.25 * lo
        out[tuple(odd)] = 0.75 * mid + 0.25 * hi
        grid = out
    return grid


def value_noise(rng: np.random.Generator, height: int, width: int, octaves: int = 6) -> np.ndarray:
    """Noise in [0, 1], (height, width), with detail from 1 to 2**octaves texels.

    Built coarse to fine: upsample the sum so far by 2 (bilinear) and add a random grid of the
    new resolution, so every octave costs about as much as its own size.
    """
    cell = 2 ** octaves
    grid = rng.random((height // cell + 2, width // cell + 2), dtype=np.float32) * cell ** 0.25
    while cell > 1:
        cell //= 2
        grid = _upsample2(grid)
        grid += rng.random(grid.shape, dtype=np.float32) * cell ** 0.25
    noise = grid[:height, :width]
    lo, hi = noise.min(), noise.max()
    return (noise - lo) / max(hi - lo, 1e-6)


def make_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random two-colour pattern with light/dark variation, float32 (H, W, 3) in [0, 1]."""
    mix = np.clip((value_noise(rng, height, width) - 0.5) * 2.5 + 0.5, 0.0, 1.0)[..., None]
    shade = 0.75 + 0.5 * value_noise(rng, height, width, octaves=3)[..., None]
    colours = rng.uniform(0.1, 0.95, size=(2, 3)).astype(np.float32)
    return np.clip((colours[0] * (1.0 - mix) + colours[1] * mix) * shade, 0.0, 1.0)


@dataclass
class TextureAtlas:
    """Many textures in one flat texel array, for one vectorised lookup over all pixels."""

    texels: np.ndarray  # (T, 3) float32, textures flattened row-major one after another
    offsets: np.ndarray  # (Q,) start of each texture in `texels`
    widths: np.ndarray  # (Q,)
    heights: np.ndarray  # (Q,)

    @staticmethod
    def build(textures: list[np.ndarray]) -> TextureAtlas:
        """Pack textures (each (Th, Tw, 3), at least 2x2)."""
        sizes = np.array([t.shape[:2] for t in textures], dtype=np.int64).reshape(-1, 2)
        counts = sizes[:, 0] * sizes[:, 1]
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        texels = np.concatenate([t.reshape(-1, 3) for t in textures]).astype(np.float32)
        return TextureAtlas(texels, offsets, sizes[:, 1], sizes[:, 0])

    def sample(self, index: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Bilinear colours (n, 3) of textures `index` (n,) at surface coordinates s, t (n,)."""
        tw, th, base = self.widths[index], self.heights[index], self.offsets[index]
        x = np.clip(s, 0.0, 1.0) * (tw - 1)
        y = np.clip(t, 0.0, 1.0) * (th - 1)
        x0 = np.minimum(x.astype(np.int64), tw - 2)  # floor: x >= 0
        y0 = np.minimum(y.astype(np.int64), th - 2)
        fx = (x - x0).astype(np.float32)[:, None]
        fy = (y - y0).astype(np.float32)[:, None]
        i00 = base + y0 * tw + x0
        c00, c01, c10, c11 = (np.take(self.texels, i, axis=0)
                              for i in (i00, i00 + 1, i00 + tw, i00 + tw + 1))
        top = c00 + (c01 - c00) * fx
        bottom = c10 + (c11 - c10) * fx
        return top + (bottom - top) * fy
