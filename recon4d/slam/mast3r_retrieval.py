"""Keyframe retrieval of the MASt3R-style SLAM (algorithms-spec §6, §8.4): a database of the
keyframes, queried with each new keyframe before it is added (back-end edges) and with a frame
being relocalised (no insert).

Two databases share one interface (`KeyframeRetrieval`): `KeyframeDatabase` here, the
weight-free fallback (one pooled global descriptor per keyframe, cosine similarity), and
`recon4d.slam.mast3r_asmk.AsmkKeyframeDatabase`, MASt3R's retrieval model with ASMK scores.
Both read a frame's encoder tokens when its code has them (the network), else its dense MASt3R
descriptors (the oracle, whose codes are frame indices): no second encoder pass.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from recon4d.inference.retrieval import pooled_descriptors, similarity

COSINE_MIN_SCORE = 0.5  # the fallback's default: cosine similarity of pooled descriptors


class KeyframeRetrieval(Protocol):
    """What the stream needs of a keyframe database; ids are keyframe ids (insertion order)."""

    def __len__(self) -> int: ...

    def describe(self, code: Any, desc: Tensor) -> Any:
        """What the database keeps of a frame, from its code and dense descriptors (H, W, D)."""

    def add(self, descriptor: Any) -> None:
        """Append the next keyframe."""

    def query(self, descriptor: Any, k: int,
              exclude: set[int] = frozenset()) -> list[tuple[int, float]]:
        """Up to `k` (keyframe id, score) above the database's threshold, best first, leaving
        out the ids in `exclude`."""


def encoder_tokens(code: Any, desc: Tensor) -> Tensor:
    """(T, D) tokens of a frame: its code's encoder tokens `feat` (1, T, D) when it has them,
    else its dense descriptors `desc` (H, W, D) as H * W tokens."""
    feat = getattr(code, "feat", None)
    return feat[0] if feat is not None else desc.reshape(-1, desc.shape[-1])


def best_scores(scores: Tensor, k: int, min_score: float,
                exclude: set[int]) -> list[tuple[int, float]]:
    """Up to `k` (id, score) of `scores` (N,) at least `min_score`, best first, not in
    `exclude`."""
    order = torch.argsort(scores, descending=True).tolist()
    found = [(i, float(scores[i])) for i in order
             if i not in exclude and float(scores[i]) >= min_score]
    return found[:k]


class KeyframeDatabase:
    """Pooled global descriptors (`pooled_descriptors`) of the keyframes, in keyframe order,
    scored by cosine similarity; `min_score` (default `COSINE_MIN_SCORE`) drops weak ones. It
    keeps D floats per keyframe."""

    def __init__(self, min_score: float | None = None) -> None:
        self.min_score = COSINE_MIN_SCORE if min_score is None else min_score
        self._matrix = torch.zeros(0, 0)  # rows 0..count-1 used; grown by doubling
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def describe(self, code: Any, desc: Tensor) -> Tensor:
        """(D,) unit global descriptor of a frame (`encoder_tokens` pooled)."""
        return pooled_descriptors(encoder_tokens(code, desc).detach().cpu())[0]

    def add(self, descriptor: Tensor) -> None:
        """Append the next keyframe's (D,) descriptor (one copy, in a matrix grown by
        doubling, so adding and querying stay O(D) and O(N D))."""
        if self._count == len(self._matrix):
            grown = torch.zeros(max(16, 2 * self._count), len(descriptor))
            if self._count:
                grown[:self._count] = self._matrix[:self._count]
            self._matrix = grown
        self._matrix[self._count] = descriptor.float()
        self._count += 1

    def query(self, descriptor: Tensor, k: int,
              exclude: set[int] = frozenset()) -> list[tuple[int, float]]:
        """Up to `k` (keyframe id, cosine similarity) at least `min_score`, best first."""
        if not self._count:
            return []
        scores = similarity(descriptor[None].float(), self._matrix[:self._count])[0]
        return best_scores(scores, k, self.min_score, exclude)
