"""Keyframe retrieval of the MASt3R-style SLAM: one global descriptor per keyframe, queried by
cosine similarity (the weight-free fallback of MASt3R's ASMK retrieval).

A descriptor is `recon4d.inference.retrieval.pooled_descriptors` of the frame's encoder tokens
when its code has them (the network), else of its dense MASt3R descriptors (the oracle, whose
codes are frame indices). The database keeps D floats per keyframe.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from recon4d.inference.retrieval import pooled_descriptors, similarity


def global_descriptor(code: Any, desc: Tensor) -> Tensor:
    """(D,) unit descriptor of a frame from its code's encoder tokens `feat` (1, T, D) when it
    has them, else from its dense descriptors `desc` (H, W, D)."""
    feat = getattr(code, "feat", None)
    tokens = feat[0] if feat is not None else desc.reshape(-1, desc.shape[-1])
    return pooled_descriptors(tokens.detach().cpu())[0]


class KeyframeDatabase:
    """Global descriptors of the keyframes, in keyframe order."""

    def __init__(self) -> None:
        self._rows: list[Tensor] = []
        self._matrix: Tensor | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, descriptor: Tensor) -> None:
        """Append the next keyframe's (D,) descriptor."""
        self._rows.append(descriptor.float())
        self._matrix = None

    def query(self, descriptor: Tensor, k: int, min_score: float,
              exclude: set[int] = frozenset()) -> list[tuple[int, float]]:
        """Up to `k` (keyframe id, similarity) at least `min_score`, best first, leaving out
        the ids in `exclude`."""
        if not self._rows:
            return []
        if self._matrix is None:
            self._matrix = torch.stack(self._rows)
        scores = similarity(descriptor[None].float(), self._matrix)[0]
        order = torch.argsort(scores, descending=True).tolist()
        found = [(i, float(scores[i])) for i in order
                 if i not in exclude and float(scores[i]) >= min_score]
        return found[:k]
