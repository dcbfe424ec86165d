"""Pair predictions in memory: `PairPredictions`, the network outputs of every edge of a pair
graph, grouped by image shapes.

Edges whose images differ in shape are kept as one stacked tensor per shape group, never as
per-edge dicts. The file format lives in `npz_format`, the reference dicts in `reference_dicts`
(the methods here delegate to them), the image conversions in `model_images`.

Optional attention probes (Easi3R, `infer_pairs(..., probes=True)`), all float32 CPU tensors:
- `attn_maps1` (E, NH, NW, C): per edge, decoder 1's mean-over-queries cross-attention logits
  on view 2's token grid; `attn_maps2` (E, NH, NW, C): decoder 2's, on view 1's grid;
  C = decoder layers x heads, channel l*heads + h.
- `token_features` (N, NH, NW, D): per image, its encoder output after `enc_norm`.
All images share one token grid (NH, NW) when they are present.

Probes without pointmaps (`infer_pairs(..., probes=True, heads=False)`, the motion-mask passes):
the shape groups then hold empty pred1/pred2 dicts; such predictions feed mask estimation in
memory and are not meant for alignment or for saving.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recon4d.errors import Recon4dError
from recon4d.inference.model_images import Images


@dataclass(eq=False)
class ShapeGroup:
    """Edges sharing (view1 shape, view2 shape): their predictions stacked on dim 0."""

    edge_index: np.ndarray  # (G,) int64, ascending positions in PairPredictions.edges
    pred1: dict[str, torch.Tensor]  # name -> (G, H1, W1, ...) float32, CPU
    pred2: dict[str, torch.Tensor]  # name -> (G, H2, W2, ...) float32, CPU


@dataclass(eq=False)
class PairPredictions:
    """Network outputs for every edge (view1 image i, view2 image j) of a pair graph."""

    edges: np.ndarray  # (E, 2) int64
    true_shape1: np.ndarray  # (E, 2) int32, (H, W) of view1
    true_shape2: np.ndarray  # (E, 2) int32, (H, W) of view2
    groups: list[ShapeGroup]
    images: Images | None = None  # model inputs as uint8, indexed by image index
    image_names: list[str] | None = None
    timestamps: np.ndarray | None = None  # (N,) float64 seconds, for videos
    attn_maps1: torch.Tensor | None = None  # (E, NH, NW, C) float32, see the module doc
    attn_maps2: torch.Tensor | None = None  # (E, NH, NW, C) float32
    token_features: torch.Tensor | None = None  # (N, NH, NW, D) float32

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        self.true_shape1 = np.asarray(self.true_shape1, dtype=np.int32).reshape(-1, 2)
        self.true_shape2 = np.asarray(self.true_shape2, dtype=np.int32).reshape(-1, 2)
        num = len(self.edges)
        if len(self.true_shape1) != num or len(self.true_shape2) != num:
            raise ValueError("edges, true_shape1 and true_shape2 must have the same length")
        covered = np.concatenate([g.edge_index for g in self.groups] + [np.zeros(0, np.int64)])
        if not np.array_equal(np.sort(covered), np.arange(num)):
            raise ValueError("shape groups must cover every edge exactly once")
        self._group_of, self._row_of = group_rows([g.edge_index for g in self.groups], num)
        for group in self.groups:
            for side in (group.pred1, group.pred2):
                for name, tensor in side.items():
                    if tensor.shape[0] != len(group.edge_index):
                        raise ValueError(f"{name}: {tensor.shape[0]} rows for "
                                         f"{len(group.edge_index)} edges")
        self._check_probes()

    def _check_probes(self) -> None:
        """The three probe tensors are all present or all absent, with consistent shapes."""
        probes = (self.attn_maps1, self.attn_maps2, self.token_features)
        if all(t is None for t in probes):
            return
        if any(t is None for t in probes):
            raise ValueError("attn_maps1, attn_maps2 and token_features go together")
        maps1, maps2, features = probes
        if maps1.ndim != 4 or maps1.shape != maps2.shape or maps1.shape[0] != len(self):
            raise ValueError(f"attn_maps1 {tuple(maps1.shape)} and attn_maps2 "
                             f"{tuple(maps2.shape)} must both be ({len(self)}, NH, NW, C)")
        if features.ndim != 4 or features.shape[1:3] != maps1.shape[1:3] or (
                len(self) and features.shape[0] <= int(self.edges.max())):
            raise ValueError(f"token_features {tuple(features.shape)} must be (N, NH, NW, D) on "
                             f"the maps' {tuple(maps1.shape[1:3])} grid, one row per image")

    @property
    def has_probes(self) -> bool:
        """Whether the Easi3R attention probes (maps and token features) are present."""
        return self.attn_maps1 is not None

    def __len__(self) -> int:
        return len(self.edges)

    def __repr__(self) -> str:
        """One line: sizes and keys, never the arrays (they can be gigabytes)."""
        shapes = sorted({tuple(int(v) for v in s) for s in (*self.true_shape1, *self.true_shape2)})
        keys = sorted(self.groups[0].pred1) if self.groups else []
        return (f"PairPredictions({len(self)} edges, {self.num_images} images, "
                f"shapes (H, W) {shapes}, {len(self.groups)} shape groups, pred1 keys {keys}, "
                f"images {'kept' if self.images is not None else 'not kept'}, "
                f"probes {'kept' if self.has_probes else 'not kept'})")

    def __getitem__(self, e: int) -> dict[str, Any]:
        """Edge `e` as reference-style dicts (view1, view2, pred1, pred2), without batch dim."""
        e = range(len(self))[e]
        group, row = self.groups[self._group_of[e]], self._row_of[e]
        return {
            "view1": {"idx": int(self.edges[e, 0]), "true_shape": self.true_shape1[e]},
            "view2": {"idx": int(self.edges[e, 1]), "true_shape": self.true_shape2[e]},
            "pred1": {k: v[row] for k, v in group.pred1.items()},
            "pred2": {k: v[row] for k, v in group.pred2.items()},
        }

    @property
    def uniform(self) -> bool:
        """True when all edges share one (view1 shape, view2 shape): `pred1`/`pred2` exist."""
        return len(self.groups) <= 1

    @property
    def pred1(self) -> dict[str, torch.Tensor]:
        """View-1 predictions stacked over all edges (E, H, W, ...); uniform shapes only."""
        return self._stacked("pred1")

    @property
    def pred2(self) -> dict[str, torch.Tensor]:
        """View-2 predictions stacked over all edges (E, H, W, ...); uniform shapes only."""
        return self._stacked("pred2")

    @property
    def has_descriptors(self) -> bool:
        """Whether MASt3R descriptors (`desc`, `desc_conf`) are present."""
        return bool(self.groups) and "desc" in self.groups[0].pred1

    @property
    def num_images(self) -> int:
        """Number of images: from `images` when kept, else one past the largest edge index."""
        if self.images is not None:
            return len(self.images)
        return int(self.edges.max()) + 1 if len(self.edges) else 0

    def _stacked(self, side: str) -> dict[str, torch.Tensor]:
        if not self.groups:
            return {}
        if not self.uniform:
            raise Recon4dError(f"these predictions mix {len(self.groups)} image-shape groups, so "
                               f"`{side}` cannot be one stacked tensor; use `.groups` or index "
                               "by edge")
        return getattr(self.groups[0], side)

    def to_reference_dict(self) -> dict[str, Any]:
        """The reference `inference()` output (`reference_dicts.to_reference_dict`)."""
        from recon4d.inference.reference_dicts import to_reference_dict

        return to_reference_dict(self)

    @classmethod
    def from_reference_dict(cls, d: dict[str, Any]) -> PairPredictions:
        """Build from a reference `inference()` output (`reference_dicts.from_reference_dict`)."""
        from recon4d.inference.reference_dicts import from_reference_dict

        return from_reference_dict(d)

    def save_npz(self, path: str | os.PathLike) -> None:
        """Write the interchange npz atomically (`npz_format.save_predictions`)."""
        from recon4d.inference.npz_format import save_predictions

        save_predictions(self, path)

    @classmethod
    def load_npz(cls, path: str | os.PathLike) -> PairPredictions:
        """Read and validate a predictions npz (`npz_format.load_predictions`)."""
        from recon4d.inference.npz_format import load_predictions

        return load_predictions(path)


def group_by_shape(true_shape1: np.ndarray, true_shape2: np.ndarray) -> list[np.ndarray]:
    """Edge positions grouped by (view1 shape, view2 shape), groups in order of first use."""
    keys = np.concatenate([np.asarray(true_shape1).reshape(-1, 2),
                           np.asarray(true_shape2).reshape(-1, 2)], axis=1)
    if len(keys) == 0:
        return []
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    return [np.flatnonzero(inverse == g) for g in np.argsort(first, kind="stable")]


def group_rows(groups: list[np.ndarray], num: int) -> tuple[np.ndarray, np.ndarray]:
    """(group of each edge, its row inside the group) for edge-index lists covering 0..num-1."""
    group_of = np.zeros(num, dtype=np.int64)
    row_of = np.zeros(num, dtype=np.int64)
    for g, index in enumerate(groups):
        group_of[index] = g
        row_of[index] = np.arange(len(index))
    return group_of, row_of
