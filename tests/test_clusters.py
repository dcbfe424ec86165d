"""k-means building blocks and Lloyd's loop against independent truths.

Truths: scikit-learn's KMeans started from the same centres, numpy's float64 variance, per-label
loops and brute-force distances, hand-computed refined maps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon4d.dynamics import clusters
from recon4d.dynamics.clusters import (
    LloydScratch,
    cluster_sums,
    kmeans,
    kmeans_plusplus,
    mean_feature_variance,
    move_points,
    nearest_center,
    refine_with_labels,
)


def overlapping_blobs(n: int = 600, k: int = 5, dim: int = 3, seed: int = 0) -> torch.Tensor:
    """Blobs close enough that Lloyd moves labels for several steps."""
    gen = torch.Generator().manual_seed(seed)
    centres = 2 * torch.randn(k, dim, generator=gen)
    return centres[torch.randint(k, (n,), generator=gen)] + torch.randn(n, dim, generator=gen)


@pytest.mark.parametrize("tol, max_iter", [(1e-4, 300), (0.05, 300), (1e-4, 2)])
def test_kmeans_matches_scikit_learn_from_the_same_seeding(tol, max_iter, monkeypatch) -> None:
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    monkeypatch.setattr(clusters, "CHUNK_ROWS", 64)  # several distance blocks
    monkeypatch.setattr(clusters, "MOVED_ROWS", 16)  # moved points summed in several blocks
    points = overlapping_blobs()
    seeds = kmeans_plusplus(points, 5, torch.Generator().manual_seed(7))  # kmeans' own seeding
    ours = kmeans(points, 5, seed=7, tol=tol, max_iter=max_iter)
    theirs = sklearn_cluster.KMeans(5, init=seeds.numpy(), n_init=1, max_iter=max_iter, tol=tol,
                                    algorithm="lloyd").fit(points.numpy())
    assert ours.labels.tolist() == theirs.labels_.tolist()
    np.testing.assert_allclose(ours.centers.numpy(), theirs.cluster_centers_, atol=1e-5)
    assert ours.iterations > 1
    # scikit-learn also counts the step that only finds the labels unchanged
    assert theirs.n_iter_ - ours.iterations in (0, 1)


def test_mean_feature_variance_survives_a_large_offset() -> None:
    gen = torch.Generator().manual_seed(0)
    points = 1000 + torch.randn(3000, 7, generator=gen) * torch.arange(1.0, 8.0)
    truth = np.var(points.numpy().astype(np.float64), axis=0).mean()  # 20 = mean of 1..49 squares
    assert mean_feature_variance(points) == pytest.approx(truth, rel=1e-5)


def test_cluster_sums_over_blocks_match_a_per_label_loop(monkeypatch) -> None:
    monkeypatch.setattr(clusters, "CHUNK_ROWS", 7)
    gen = torch.Generator().manual_seed(1)
    points = torch.randn(50, 4, generator=gen)
    labels = torch.randint(0, 3, (50,), generator=gen)
    labels[:5] = 1  # label 3 stays empty
    sums = cluster_sums(points, labels, 4)
    assert sums.dtype == torch.float64
    for c in range(4):
        expected = points[labels == c].double().sum(dim=0)
        torch.testing.assert_close(sums[c], expected, atol=1e-5, rtol=1e-6)


def test_moving_points_in_blocks_gives_the_sums_of_the_new_labels(monkeypatch) -> None:
    monkeypatch.setattr(clusters, "MOVED_ROWS", 3)
    gen = torch.Generator().manual_seed(3)
    points = torch.randn(30, 4, generator=gen)
    old = torch.randint(0, 4, (30,), generator=gen)
    new = old.clone()
    rows = torch.tensor([1, 4, 5, 9, 17, 22, 29])  # three blocks of at most 3 rows
    new[rows] = (old[rows] + 1) % 4
    sums = cluster_sums(points, old, 4)
    move_points(sums, points, rows, old[rows], new[rows], LloydScratch.for_points(points, 4))
    for c in range(4):  # a per-label loop over the new labels
        torch.testing.assert_close(sums[c], points[new == c].double().sum(dim=0), atol=1e-5,
                                   rtol=1e-6)
    scratch = LloydScratch.for_points(points, 4)
    out = torch.full((30,), -1)
    nearest_center(points, points[:4], out=out, scratch=scratch)
    assert out[:4].tolist() == [0, 1, 2, 3]  # written in place, each seed point its own centre


def test_nearest_center_over_blocks_is_the_brute_force_argmin_first_on_ties(monkeypatch) -> None:
    monkeypatch.setattr(clusters, "CHUNK_ROWS", 6)
    gen = torch.Generator().manual_seed(2)
    points = torch.randn(40, 5, generator=gen)
    centres = torch.randn(4, 5, generator=gen)
    assert nearest_center(points, centres).tolist() == torch.cdist(points, centres).argmin(
        dim=1).tolist()
    doubled = torch.cat([centres, centres])  # every point ties between c and c + 4
    assert int(nearest_center(points, doubled).max()) < 4


def test_refine_with_labels_hand_computed() -> None:
    dynamic = torch.tensor([[[0.2, 0.4, 0.6]], [[1.0, 0.0, 0.8]]])
    labels = torch.tensor([0, 1, 0, 1, 2, 2])  # cluster means: 0.4, 0.7, 0.4
    refined = refine_with_labels(dynamic, labels)
    # frame 0 scores (0.4, 0.7, 0.4) -> (0, 1, 0); frame 1 (0.7, 0.4, 0.4) -> (1, 0, 0)
    expected = torch.tensor([[[0.0, 0.3, 0.0]], [[0.3, 0.0, 0.0]]]) / (0.3 + 1e-6)
    torch.testing.assert_close(refined, expected, atol=1e-6, rtol=0)
