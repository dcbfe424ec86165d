"""Pair graphs: which ordered image pairs the network sees, in the reference order.

The order matters: it decides batch composition and therefore the last bits of GPU results, and
downstream code indexes predictions by edge. `swin` and `logwin` emit pairs in the iteration order
of a Python set built with the reference's insertions, so the same set is built here.
`retrieval-Na-k` (MASt3R-SfM) needs an image similarity matrix (`recon4d.inference.retrieval`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from recon4d.errors import Recon4dError
from recon4d.options import GRAPH_HELP, PREFILTER_HELP

_WINDOW_RE = re.compile(r"^(swin|logwin)(?:-(\d+))?(-noncyclic)?$")
_ONEREF_RE = re.compile(r"^oneref(?:-(\d+))?$")
_PREFILTER_RE = re.compile(r"^(seq|cyc)(\d+)$")
_RETRIEVAL_RE = re.compile(r"^retrieval(?:-(\d+)-(\d+))?$")
RETRIEVAL_DEFAULTS = (20, 10)  # `retrieval` = retrieval-20-10, the MASt3R demo's Na and k


def make_pairs(n_or_views: int | Sequence, graph: str = "complete", symmetrize: bool = True,
               prefilter: str | None = None, similarity: np.ndarray | None = None) -> np.ndarray:
    """Ordered pairs (view1 index, view2 index) of `graph` over n images, int64 array (E, 2).

    `symmetrize` appends the swapped copy of every pair after all pairs; `prefilter` then drops
    pairs whose (circular, for `cycN`) index distance exceeds N, keeping the order.
    `similarity` (n, n), higher = more alike, is required by `retrieval-Na-k` graphs only.
    """
    n = n_or_views if isinstance(n_or_views, (int, np.integer)) else len(n_or_views)
    n = int(n)
    if n < 0:
        raise Recon4dError(f"pair graph: the number of images must be >= 0, got {n}")
    retrieval = retrieval_params(graph)
    if retrieval is not None:
        pairs = retrieval_pairs(_checked_similarity(graph, similarity, n), *retrieval)
    else:
        pairs = _base_pairs(n, graph)
    if symmetrize:
        pairs = pairs + [(j, i) for i, j in pairs]
    if prefilter is not None:
        pairs = _prefilter(pairs, n, prefilter)
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def _base_pairs(n: int, graph: str) -> list[tuple[int, int]]:
    """Unsymmetrized pairs of `graph` in reference order."""
    if graph == "complete":
        return [(i, j) for i in range(n) for j in range(i)]
    window = _WINDOW_RE.match(graph)
    if window:
        kind, k, noncyclic = window.groups()
        k = 3 if k is None else int(k)
        if k < 1:
            raise Recon4dError(f"pair graph {graph!r}: the window size must be >= 1")
        if kind == "swin":
            return _window_pairs(n, range(1, k + 1), cyclic=noncyclic is None, allow_self=True)
        return _window_pairs(n, _log_offsets(k), cyclic=noncyclic is None, allow_self=False)
    oneref = _ONEREF_RE.match(graph)
    if oneref:
        ref = int(oneref.group(1) or 0)
        if n and ref >= n:
            raise Recon4dError(f"pair graph {graph!r}: reference image {ref} does not exist "
                               f"(only {n} images)")
        return [(ref, j) for j in range(n) if j != ref]
    raise Recon4dError(f"unknown pair graph {graph!r}; valid graphs: {GRAPH_HELP}")


def retrieval_params(graph: str) -> tuple[int, int] | None:
    """(Na, k) of a `retrieval[-Na-k]` graph name, None for any other graph."""
    match = _RETRIEVAL_RE.match(graph)
    if not match:
        return None
    if match.group(1) is None:
        return RETRIEVAL_DEFAULTS
    return int(match.group(1)), int(match.group(2))


def retrieval_pairs(similarity: np.ndarray, num_keys: int, k: int) -> list[tuple[int, int]]:
    """Unordered pairs (min, max) of the MASt3R-SfM retrieval graph over a similarity matrix.

    Farthest point sampling picks min(num_keys, n) key images on the distance 1 - similarity,
    starting from image 0 (the reference starts from a random image); the keys form a complete
    graph, every other image joins its nearest key, and every image joins its min(k, n - 1)
    nearest other images (the reference counts the image itself among its k). Duplicates are
    dropped, the first occurrence keeps its place; a tie goes to the key chosen first, among
    neighbours to the lower image index.
    """
    dist = 1.0 - np.asarray(similarity, dtype=np.float64)
    n = len(dist)
    keys = farthest_point_sampling(dist, min(num_keys, n))
    found: dict[tuple[int, int], None] = {}

    def add(i: int, j: int) -> None:
        if i != j:
            found[(min(i, j), max(i, j))] = None

    for a, i in enumerate(keys):
        for j in keys[a + 1:]:
            add(i, j)
    if keys:
        key_set = set(keys)
        for i in range(n):
            if i not in key_set:
                add(i, keys[int(np.argmin(dist[i, keys]))])
    for i in range(n):
        others = np.delete(np.arange(n), i)
        nearest = others[np.argsort(dist[i, others], kind="stable")[:min(k, n - 1)]]
        for j in nearest:
            add(i, int(j))
    return list(found)


def farthest_point_sampling(dist: np.ndarray, count: int) -> list[int]:
    """`count` indices, from index 0, each the farthest (max over the min distance to the chosen
    ones, row-wise `dist[chosen, j]`) from those chosen before; ties go to the lower index."""
    if count <= 0 or len(dist) == 0:
        return []
    chosen = [0]
    nearest = dist[0].copy()
    nearest[0] = -np.inf
    for _ in range(1, count):
        j = int(np.argmax(nearest))
        chosen.append(j)
        nearest = np.minimum(nearest, dist[j])
        nearest[chosen] = -np.inf
    return chosen


def _checked_similarity(graph: str, similarity: np.ndarray | None, n: int) -> np.ndarray:
    """The (n, n) finite similarity matrix of a retrieval graph, or a Recon4dError saying why."""
    if similarity is None:
        raise Recon4dError(f"pair graph {graph!r} needs an image similarity matrix: compute "
                           "it with recon4d.inference.retrieval (retrieval checkpoint or "
                           "pooled encoder tokens) and pass it as similarity=")
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.shape != (n, n) or not np.isfinite(sim).all():
        raise Recon4dError(f"pair graph {graph!r}: the similarity matrix must be finite and "
                           f"{n}x{n} (one row and column per image), got shape {sim.shape}")
    return sim


def _log_offsets(k: int) -> list[int]:
    """Offsets -1, -2, ..., -2^(k-1), then +1, ..., +2^(k-1) (reference insertion order)."""
    powers = [2 ** e for e in range(k)]
    return [-p for p in powers] + powers


def _window_pairs(n: int, offsets: Sequence[int], cyclic: bool,
                  allow_self: bool) -> list[tuple[int, int]]:
    """Unordered pairs (min, max) of i and i+offset, in the iteration order of a Python set.

    Cyclic windows wrap modulo n (so a window >= n reaches i itself: kept for `swin` as in the
    reference, dropped for `logwin`); non-cyclic windows skip indices outside 0..n-1.
    """
    pair_set: set[tuple[int, int]] = set()
    for i in range(n):
        for off in offsets:
            j = (i + off) % n if cyclic else i + off
            if j < 0 or j >= n or (j == i and not allow_self):
                continue
            pair_set.add((min(i, j), max(i, j)))
    return list(pair_set)


def _prefilter(pairs: list[tuple[int, int]], n: int, prefilter: str) -> list[tuple[int, int]]:
    """Keep the pairs whose index distance (circular for `cycN`) is at most N."""
    match = _PREFILTER_RE.match(prefilter)
    if not match:
        raise Recon4dError(f"unknown pair prefilter {prefilter!r}; valid: {PREFILTER_HELP}")
    kind, limit = match.group(1), int(match.group(2))
    kept = []
    for i, j in pairs:
        dist = abs(i - j)
        if kind == "cyc":
            dist = min(dist, n - dist)
        if dist <= limit:
            kept.append((i, j))
    return kept
