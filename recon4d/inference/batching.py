"""Batch planning: which edges run together through the network.

A batch holds edges of one (view1 shape, view2 shape) group only, and places an edge (a, b) next to
its swapped edge (b, a), so the network's half-encoder shortcut (each image encoded once per
symmetric couple) applies. Couples are packed before lone edges, so at most one batch per group
mixes the two (and misses the shortcut).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np


def symmetric_units(edges: np.ndarray, index: np.ndarray) -> list[list[int]]:
    """Split the edges `index` (one shape group) into couples [(a,b), (b,a)] and lone edges.

    Couples come first, in order of their first edge; then lone edges in edge order.
    """
    waiting: dict[tuple[int, int], list[int]] = defaultdict(list)
    for e in index.tolist():
        waiting[(int(edges[e, 0]), int(edges[e, 1]))].append(e)
    used: set[int] = set()
    couples, singles = [], []
    for e in index.tolist():
        if e in used:
            continue
        used.add(e)
        a, b = int(edges[e, 0]), int(edges[e, 1])
        partners = [p for p in waiting[(b, a)] if p not in used]
        if partners:
            used.add(partners[0])
            couples.append([e, partners[0]])
        else:
            singles.append([e])
    return couples + singles


def plan_batches(edges: np.ndarray, groups: list[np.ndarray],
                 batch_size: Callable[[int], int]) -> list[np.ndarray]:
    """Edge positions of each batch: per shape group, symmetric units packed up to the size.

    `batch_size(g)` gives the batch size of group g. A couple is split only when the size is 1.
    """
    batches: list[np.ndarray] = []
    for g, index in enumerate(groups):
        size = max(1, int(batch_size(g)))
        current: list[int] = []
        for unit in symmetric_units(edges, index):
            pieces = [unit] if size >= len(unit) else [[e] for e in unit]
            for piece in pieces:
                if current and len(current) + len(piece) > size:
                    batches.append(np.asarray(current, dtype=np.int64))
                    current = []
                current.extend(piece)
        if current:
            batches.append(np.asarray(current, dtype=np.int64))
    return batches
