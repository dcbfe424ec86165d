"""Multi-Otsu thresholds on a histogram, and Easi3R's adaptive video-level threshold (§8.1.5).

Multi-Otsu with m thresholds over n bins picks bin indices t_1 < ... < t_m <= n - 2 splitting the
bins into classes [0, t_1], [t_1 + 1, t_2], ..., [t_m + 1, n - 1] that maximise the between-class
variance, i.e. sum over classes of S_k^2 / P_k (P_k the class's count, S_k its count-weighted sum
of bin values; an empty class adds 0). The search is exact: a dynamic programme over "best
total of the classes covering bins s..n-1" costs O(m n^2) instead of the O(n^m) enumeration, and
ties go to the lexicographically smallest thresholds, as an in-order enumeration keeping strict
improvements would choose.

The adaptive threshold: 256 bins over [min, max] of all values; for c = 2, 3, 4 classes the
thresholds are the centres of the chosen bins; values are put in classes by those thresholds
(a value equal to a threshold goes up); score = population variance of the c unweighted class
means / sqrt(c), NaN (an empty class, or fewer non-empty bins than classes) skipped; the highest
score wins, ties keeping the smaller c; the threshold is the winner's highest one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

HIST_BINS = 256
CLASS_CHOICES = (2, 3, 4)
# values binned per chunk (bounded temporary memory on full-resolution stacks)
CHUNK_VALUES = 4 * 2**20


@dataclass
class OtsuResult:
    """The chosen threshold, the class count that won (None: no valid split) and each score."""

    threshold: float
    classes: int | None
    scores: dict[int, float]


def class_variance_table(counts: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """(n, n) float64 table [a, b] = S^2 / P of the class of bins a..b (0 empty, -inf a > b)."""
    zero = counts.new_zeros(1)
    cum_p = torch.cat([zero, counts.cumsum(0)])
    cum_s = torch.cat([zero, (counts * values).cumsum(0)])
    mass = cum_p[None, 1:] - cum_p[:-1, None]
    first = cum_s[None, 1:] - cum_s[:-1, None]
    table = torch.where(mass > 0, first.square() / mass.clamp(min=1e-300), torch.zeros_like(mass))
    n = len(counts)
    upper = torch.ones(n, n, dtype=torch.bool, device=counts.device).triu()
    return table.masked_fill(~upper, -torch.inf)


def multiotsu_bins(counts: torch.Tensor, classes: int,
                   values: torch.Tensor | None = None) -> torch.Tensor:
    """Bin indices (classes - 1,) of the multi-Otsu thresholds of a 1-D histogram `counts`.

    `values` are the bins' values (default: their index; any affine map gives the same answer).
    """
    if counts.ndim != 1 or not 2 <= classes <= len(counts):
        raise ValueError(f"need a 1-D histogram with at least {classes} bins, got "
                         f"{tuple(counts.shape)}")
    counts = counts.to(torch.float64)
    n = len(counts)
    if values is None:
        values = torch.arange(n, dtype=torch.float64, device=counts.device)
    table = class_variance_table(counts, values.to(counts))
    n_thresholds = classes - 1
    last = torch.arange(n, device=counts.device)
    # tails[r][s]: best sum over r + 1 classes covering bins s..n-1 (r thresholds in [s, n-2])
    tails = [table[:, n - 1]]
    for r in range(1, n_thresholds):
        tails.append(_best_split(table, tails[-1], r, last)[0])
    chosen = []
    start = 0
    for r in range(n_thresholds, 0, -1):
        _, arg = _best_split(table[start:start + 1], tails[r - 1], r, last, first_row=start)
        chosen.append(int(arg[0]))
        start = chosen[-1] + 1
    return torch.tensor(chosen, dtype=torch.long)


def _best_split(table: torch.Tensor, tail: torch.Tensor, remaining: int, bins: torch.Tensor,
                first_row: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """For each start row s: max over t of table[s, t] + tail[t + 1], t in [s, n-1-remaining].

    Returns the maxima and the first maximising t (the smallest, for ties).
    """
    n = table.shape[1]
    candidates = table[:, :-1] + tail[1:][None, :]
    rows = torch.arange(first_row, first_row + table.shape[0], device=table.device)[:, None]
    t = bins[None, :-1]
    valid = (t >= rows) & (t <= n - 1 - remaining)
    return candidates.masked_fill(~valid, -torch.inf).max(dim=1)


def half_bin_sums(values: torch.Tensor, low: float, high: float,
                  bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts and float64 value sums of `values` in 2 * bins equal half-bins over [low, high].

    Half-bins split every bin at its centre, so the class sums of any thresholds at bin centres
    follow from cumulative sums. The top edge belongs to the last half-bin.
    """
    flat = values.reshape(-1)
    scale = 2 * bins / (high - low)
    counts = torch.zeros(2 * bins, dtype=torch.float64, device=flat.device)
    sums = torch.zeros_like(counts)
    for start in range(0, len(flat), CHUNK_VALUES):
        chunk = flat[start:start + CHUNK_VALUES]
        index = ((chunk - low) * scale).floor_().clamp_(0, 2 * bins - 1).long()
        counts += torch.bincount(index, minlength=2 * bins)
        sums += torch.bincount(index, weights=chunk.to(torch.float64), minlength=2 * bins)
    return counts, sums


def adaptive_threshold(values: torch.Tensor) -> OtsuResult:
    """Easi3R's video-level threshold of all `values` (any shape): see the module docstring.

    A constant input (max == min) has nothing to separate: the threshold is that value, so
    `values > threshold` is all False.
    """
    low, high = float(values.min()), float(values.max())
    if not high > low:
        return OtsuResult(threshold=high, classes=None, scores={})
    half_counts, half_sums = half_bin_sums(values, low, high, HIST_BINS)
    counts = half_counts.view(HIST_BINS, 2).sum(dim=1)
    width = (high - low) / HIST_BINS
    result = OtsuResult(threshold=high, classes=None, scores={})
    best_score = -math.inf
    cum_n = torch.cat([half_counts.new_zeros(1), half_counts.cumsum(0)])
    cum_s = torch.cat([half_sums.new_zeros(1), half_sums.cumsum(0)])
    for classes in CLASS_CHOICES:
        if int((counts > 0).sum()) < classes:
            result.scores[classes] = math.nan
            continue
        bins = multiotsu_bins(counts, classes)
        # values below the centre of bin t fill half-bins 0..2t: class edges in half-bins
        edges = torch.cat([torch.tensor([0]), 2 * bins + 1, torch.tensor([2 * HIST_BINS])])
        sizes = cum_n[edges[1:]] - cum_n[edges[:-1]]
        means = (cum_s[edges[1:]] - cum_s[edges[:-1]]) / sizes  # NaN for an empty class
        score = float(means.var(unbiased=False)) / math.sqrt(classes)
        result.scores[classes] = score
        if score > best_score:  # False for NaN; strict, so ties keep the smaller c
            best_score = score
            result.threshold = low + (int(bins[-1]) + 0.5) * width
            result.classes = classes
    return result
