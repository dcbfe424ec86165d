"""Trajectory association by timestamp (evo's nearest-timestamp rule), for the evaluation.

TUM files and the `Trajectory` container live in `recon4d.io.tum`, quaternions in
`recon4d.geometry.quaternions`.
"""

from __future__ import annotations

import numpy as np


def nearest_within(query: np.ndarray, stamps: np.ndarray, max_dt: float) -> np.ndarray:
    """For each query time, the index of the nearest of `stamps` within `max_dt`, else -1.

    A tie goes to the earlier stamp (evo's rule for sorted stamps).
    """
    query, stamps = np.asarray(query, np.float64), np.asarray(stamps, np.float64)
    if len(stamps) == 0:
        return np.full(len(query), -1)
    order = np.argsort(stamps, kind="stable")
    ordered = stamps[order]
    upper = np.minimum(np.searchsorted(ordered, query, side="right"), len(ordered) - 1)
    lower = np.maximum(upper - 1, 0)
    diff_up = ordered[upper] - query
    diff_lo = np.where(upper > 0, query - ordered[lower], np.inf)
    in_range = (query >= ordered[0] - max_dt) & (query <= ordered[-1] + max_dt)
    take_up = (diff_up <= max_dt) & (diff_up < diff_lo)
    take_lo = ~take_up & (diff_lo <= max_dt) & (diff_lo <= diff_up)
    found = order[np.where(take_up, upper, lower)]
    return np.where(in_range & (take_up | take_lo), found, -1)


def associate(stamps_a: np.ndarray, stamps_b: np.ndarray,
              max_dt: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (ia, ib) of nearest timestamps within `max_dt` seconds (evo's rule).

    Every stamp of the shorter list (of `stamps_b` when it is not longer) takes its nearest
    stamp in the other list; pairs come in the order of the shorter list.
    """
    b_shorter = len(stamps_b) <= len(stamps_a)
    short, long_ = (stamps_b, stamps_a) if b_shorter else (stamps_a, stamps_b)
    found = nearest_within(short, long_, max_dt)
    idx_short = np.nonzero(found >= 0)[0]
    idx_long = found[idx_short]
    return (idx_long, idx_short) if b_shorter else (idx_short, idx_long)
