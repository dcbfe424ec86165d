"""Scene primitives: textured rectangles (quads) attached to rigid objects, and box/room builders.

A quad is the set origin + s * edge_u + t * edge_v for s, t in [0, 1], in its object's body
frame. Quads are two-sided. Object 0 is the static world; object k >= 1 is mover k.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from recon4d.synthetic.textures import TextureAtlas, make_texture

TEXELS_PER_UNIT = 64  # texture resolution: one texel is ~1.6 cm in scene units (metres)


@dataclass
class Surfaces:
    """Quads of a scene: arrays of shape (Q, 3) in body frames, object ids (Q,), textures."""

    origins: np.ndarray
    edges_u: np.ndarray
    edges_v: np.ndarray
    object_ids: np.ndarray
    textures: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.object_ids)

    @property
    def normals(self) -> np.ndarray:
        """Unit normals edge_u x edge_v, (Q, 3)."""
        n = np.cross(self.edges_u, self.edges_v)
        return n / np.linalg.norm(n, axis=-1, keepdims=True)

    @cached_property
    def atlas(self) -> TextureAtlas:
        """All textures packed for vectorised lookup (built once)."""
        return TextureAtlas.build(self.textures)

    @staticmethod
    def concat(parts: list[Surfaces]) -> Surfaces:
        """All quads of `parts` in order."""
        return Surfaces(np.concatenate([p.origins for p in parts]),
                        np.concatenate([p.edges_u for p in parts]),
                        np.concatenate([p.edges_v for p in parts]),
                        np.concatenate([p.object_ids for p in parts]),
                        [tex for p in parts for tex in p.textures])


def quads(origins: np.ndarray, edges_u: np.ndarray, edges_v: np.ndarray, object_id: int,
          rng: np.random.Generator | None = None,
          textures: list[np.ndarray] | None = None) -> Surfaces:
    """Quads of one object; textures are given or drawn from `rng` at TEXELS_PER_UNIT."""
    origins, edges_u, edges_v = (np.asarray(a, dtype=np.float64).reshape(-1, 3)
                                 for a in (origins, edges_u, edges_v))
    if textures is None:
        if rng is None:
            raise ValueError("quads() needs either textures or an rng to draw them")
        textures = [make_texture(rng, max(8, int(np.linalg.norm(ev) * TEXELS_PER_UNIT)),
                                 max(8, int(np.linalg.norm(eu) * TEXELS_PER_UNIT)))
                    for eu, ev in zip(edges_u, edges_v, strict=True)]
    ids = np.full(len(origins), object_id, dtype=np.int32)
    return Surfaces(origins, edges_u, edges_v, ids, list(textures))


def box(size: np.ndarray, object_id: int, rng: np.random.Generator,
        centre: np.ndarray = (0.0, 0.0, 0.0)) -> Surfaces:
    """The six faces of an axis-aligned box of `size` (3,) centred at `centre` in the body frame."""
    size = np.asarray(size, dtype=np.float64)
    lo = np.asarray(centre, dtype=np.float64) - size / 2
    ex, ey, ez = np.diag(size)
    origins = [lo, lo, lo, lo + ex, lo + ey, lo + ez]
    edges_u = [ey, ez, ex, ey, ez, ex]
    edges_v = [ez, ex, ey, ez, ex, ey]
    return quads(np.array(origins), np.array(edges_u), np.array(edges_v), object_id, rng)


def room(size: np.ndarray, rng: np.random.Generator) -> Surfaces:
    """Floor (z = 0), ceiling and four walls of a room of `size` (3,) centred on the z axis."""
    sx, sy, sz = np.asarray(size, dtype=np.float64)
    return box((sx, sy, sz), object_id=0, rng=rng, centre=(0.0, 0.0, sz / 2))
