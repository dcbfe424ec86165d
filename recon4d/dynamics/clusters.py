"""K-means in torch (k-means++ then Lloyd), and Easi3R's cluster refinement of the dynamic map.

Conventions: points (M, D) float32 rows; N frames of h x w tokens; features (N, h, w, D);
dynamic and refined maps (N, h, w). Distances are computed block by block as
|c|^2 - 2 x.c (|x|^2 is the same for every centre), one fused matrix product per block; a Lloyd
step is one such pass over the points (the cost of k-means: ~0.14 CPU s per pass for 115k x 1024
points and 64 centres), and the cluster sums follow only the points whose label changed. The
buffers of a step (score blocks, moved points) are allocated once and reused: fresh pages
cost more than the bookkeeping (8.7 against 9.6 s on 117 passes, measured).
Bound-based pruning (Hamerly, Elkan) was measured and dropped: on 1024-d tokens without cluster
structure the bounds still send 60-100% of the points to the full pass. Keeping the scores
between steps and recomputing only the columns of centres that moved was measured too (late
steps move 2-50 of the 64): no gain, as a pass of a few columns still reads all the points
(10.26 s against 10.16 s on the i.i.d. benchmark, quiet machine). Float32 products are
rounded differently with other thread counts, so near-tied labels, and hence the iteration
count, can differ between machines.

Departures from the reference's scikit-learn KMeans (64 clusters, k-means++, Lloyd, 300
iterations, tol 1e-4 x the mean feature variance, seed 42), each documented here:
* its random stream is not reproduced: a torch generator seeded with `seed` drives the greedy
  k-means++ (2 + ln k candidates per centre, the one lowering the potential most is kept), run
  on a seeded sample of at most `SEED_SAMPLE` points (256 per cluster: the seeding only needs
  to cover the data, and it is sequential, so on all points it costs more than Lloyd);
* a cluster left empty by a Lloyd step keeps its previous centre (scikit-learn relocates it),
  and scores 0 in the refinement (no token has its label, so the score is never used);
* with fewer tokens than clusters, every token is its own cluster (the refined map is then the
  dynamic map, normalised per frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from recon4d.dynamics.aggregation import minmax_normalize
from recon4d.errors import InputError

# rows per distance block: scores of at most 2^16 x k floats at a time, and few blocks (each
# matrix product is one parallel region: many small ones stall on a busy machine, measured)
CHUNK_ROWS = 2**16
# k-means++ seeds from a seeded sample of at most this many points
SEED_SAMPLE = 16384
# points whose label changed are added to the float64 sums this many rows at a time
MOVED_ROWS = 8192


@dataclass
class KMeansResult:
    """Labels (M,) int64, centres (k, D) float32 and the number of Lloyd iterations run."""

    labels: torch.Tensor
    centers: torch.Tensor
    iterations: int


@dataclass
class LloydScratch:
    """Buffers a Lloyd step reuses: a block of scores (rows, k) and its minima, moved points."""

    scores: torch.Tensor
    best: torch.Tensor
    moved32: torch.Tensor
    moved64: torch.Tensor

    @classmethod
    def for_points(cls, points: torch.Tensor, clusters: int) -> LloydScratch:
        """Buffers sized for (M, D) points and `clusters` centres."""
        rows = min(CHUNK_ROWS, len(points))
        moved = min(MOVED_ROWS, len(points))
        return cls(scores=points.new_empty(rows, clusters), best=points.new_empty(rows),
                   moved32=points.new_empty(moved, points.shape[1]),
                   moved64=points.new_empty(moved, points.shape[1], dtype=torch.float64))


def row_blocks(n_rows: int) -> list[slice]:
    """Consecutive row slices of at most CHUNK_ROWS rows covering 0..n_rows-1."""
    return [slice(start, start + CHUNK_ROWS) for start in range(0, n_rows, CHUNK_ROWS)]


def mean_feature_variance(points: torch.Tensor) -> float:
    """Mean over features of the population variance of (M, D) points (scikit-learn's tol scale).

    Two passes (mean, then centred squares summed per row and totalled in float64), so a large
    common offset does not cancel the variance away.
    """
    mean = torch.mv(points.T, points.new_ones(len(points))) / len(points)
    total = sum(float((points[rows] - mean).square_().sum(dim=1).sum(dtype=torch.float64))
                for rows in row_blocks(len(points)))
    return total / points.numel()


def squared_distances(points: torch.Tensor, point_sq: torch.Tensor,
                      centers: torch.Tensor) -> torch.Tensor:
    """(M, k) squared Euclidean distances from |x|^2 (M,), clamped at 0 (float rounding)."""
    scores = torch.addmm(centers.square().sum(dim=1), points, centers.T, alpha=-2)
    return scores.add_(point_sq[:, None]).clamp_(min=0)


def nearest_center(points: torch.Tensor, centers: torch.Tensor, *,
                   out: torch.Tensor | None = None,
                   scratch: LloydScratch | None = None) -> torch.Tensor:
    """Index (M,) of each point's nearest centre (first one on ties), into `out` if given.

    Scores |c|^2 - 2 x.c (|x|^2 is the same for every centre) come from one fused matrix product
    per row block into a buffer that `scratch` keeps between calls (fresh pages cost more than
    the arithmetic of a pass, measured).
    """
    if out is None:
        out = torch.empty(len(points), dtype=torch.long, device=points.device)
    if scratch is None:
        scratch = LloydScratch.for_points(points, len(centers))
    center_sq = centers.square().sum(dim=1)
    for rows in row_blocks(len(points)):
        block = points[rows]
        n = len(block)
        torch.addmm(center_sq, block, centers.T, alpha=-2, out=scratch.scores[:n])
        torch.min(scratch.scores[:n], dim=1, out=(scratch.best[:n], out[rows]))
    return out


def cluster_sums(points: torch.Tensor, labels: torch.Tensor, clusters: int) -> torch.Tensor:
    """(clusters, D) float64 sums of the points of each label (float32 per block, float64 total)."""
    sums = torch.zeros(clusters, points.shape[1], dtype=torch.float64, device=points.device)
    block_sums = points.new_empty(clusters, points.shape[1])
    for rows in row_blocks(len(points)):
        sums += block_sums.zero_().index_add_(0, labels[rows], points[rows])
    return sums


def move_points(sums: torch.Tensor, points: torch.Tensor, rows: torch.Tensor,
                old: torch.Tensor, new: torch.Tensor, scratch: LloydScratch) -> None:
    """Move the points `rows` from clusters `old` to `new` (label per row) in float64 `sums`.

    Block by block through the scratch buffers, so no large array is allocated per Lloyd step.
    """
    step = len(scratch.moved32)
    for start in range(0, len(rows), step):
        block = rows[start:start + step]
        n = len(block)
        torch.index_select(points, 0, block, out=scratch.moved32[:n])
        moved = scratch.moved64[:n].copy_(scratch.moved32[:n])
        sums.index_add_(0, new[start:start + n], moved)
        sums.index_add_(0, old[start:start + n], moved, alpha=-1)


def kmeans_plusplus(points: torch.Tensor, clusters: int,
                    generator: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding: (clusters, D) centres drawn among the points."""
    n_points = len(points)
    trials = 2 + int(math.log(clusters))
    point_sq = points.square().sum(dim=1)
    first = int(torch.randint(n_points, (1,), generator=generator))
    picked = [first]
    closest = squared_distances(points, point_sq, points[first:first + 1])[:, 0].double()
    for _ in range(1, clusters):
        cumulative = closest.cumsum(0)
        if cumulative[-1] > 0:
            draws = torch.rand(trials, generator=generator, dtype=torch.float64)
            picks = torch.searchsorted(cumulative, draws * cumulative[-1]).clamp_(max=n_points - 1)
        else:  # every point sits on a centre already: any pick is as good
            picks = torch.randint(n_points, (trials,), generator=generator)
        candidate = torch.minimum(closest[:, None],
                                  squared_distances(points, point_sq, points[picks]).double())
        best = int(candidate.sum(dim=0).argmin())
        closest = candidate[:, best].contiguous()
        picked.append(int(picks[best]))
    return points[picked].clone()


def kmeans(points: torch.Tensor, clusters: int, *, seed: int = 42, max_iter: int = 300,
           tol: float = 1e-4) -> KMeansResult:
    """Lloyd's k-means from a k-means++ seeding; stops when labels repeat or centres settle.

    Centres settle when the summed squared shift of one step is at most tol x the mean
    per-feature variance of the points (scikit-learn's rule). Labels always belong to the
    returned centres.
    """
    if points.ndim != 2 or not 1 <= clusters <= len(points):
        raise InputError(f"k-means needs (M, D) points with M >= {clusters} clusters, got "
                         f"{tuple(points.shape)}")
    points = points.to(torch.float32).contiguous()
    generator = torch.Generator().manual_seed(seed)
    settle = tol * mean_feature_variance(points)
    sample = points
    if len(points) > SEED_SAMPLE:
        sample = points[torch.randperm(len(points), generator=generator)[:SEED_SAMPLE]]
    centers = kmeans_plusplus(sample, clusters, generator)
    scratch = LloydScratch.for_points(points, clusters)
    labels = nearest_center(points, centers, scratch=scratch)
    new_labels = torch.empty_like(labels)
    sums = cluster_sums(points, labels, clusters)
    sizes = torch.bincount(labels, minlength=clusters)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        # an empty cluster keeps its centre
        new = torch.where(sizes[:, None] > 0, sums / sizes.clamp(min=1)[:, None],
                          centers.to(torch.float64)).to(torch.float32)
        shift = float((new - centers).square().sum())
        centers = new
        nearest_center(points, centers, out=new_labels, scratch=scratch)
        changed = (new_labels != labels).nonzero()[:, 0]
        if len(changed):  # the sums follow the points that moved (float64: no drift)
            move_points(sums, points, changed, labels[changed], new_labels[changed], scratch)
            sizes = torch.bincount(new_labels, minlength=clusters)
        labels, new_labels = new_labels, labels
        if not len(changed) or shift <= settle:
            break
    return KMeansResult(labels=labels, centers=centers, iterations=iterations)


def cluster_refine(dynamic: torch.Tensor, features: torch.Tensor, *, clusters: int = 64,
                   seed: int = 42) -> torch.Tensor:
    """Refined map (N, h, w): each token gets its cluster's mean dynamic value, per-frame min-max.

    Clusters are found jointly over all tokens of all frames (§3.2); see the module docstring.
    """
    if features.ndim != 4 or features.shape[:3] != dynamic.shape:
        raise InputError(f"token features (N, h, w, D) must match the dynamic map "
                         f"{tuple(dynamic.shape)}, got {tuple(features.shape)}")
    points = features.reshape(-1, features.shape[-1]).to(torch.float32)
    labels = kmeans(points, min(clusters, len(points)), seed=seed).labels
    return refine_with_labels(dynamic, labels)


def refine_with_labels(dynamic: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The refined map (N, h, w) of a dynamic map from its tokens' cluster labels (flat, (N*h*w,)).

    A cluster's score is the mean dynamic value of its tokens; per-frame min-max of the scores.
    """
    values = dynamic.reshape(-1).to(torch.float64)
    sizes = torch.bincount(labels)
    sums = torch.bincount(labels, weights=values, minlength=len(sizes))
    scores = torch.where(sizes > 0, sums / sizes.clamp(min=1), torch.zeros_like(sums))
    refined = scores[labels].view(dynamic.shape).to(dynamic.dtype)
    return minmax_normalize(refined, per_frame=True)
