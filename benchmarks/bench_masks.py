"""Easi3R mask post-processing, CPU: our k-means and Otsu against the originals' way, one run.

Inputs (seeded): 200 frames at 512x288, i.e. 18x32 tokens of 1024-d features and a random
dynamic map per frame. `--features iid` draws every token from N(0, I) (no cluster structure:
Lloyd's worst case, ~100 iterations); `mixture` draws them around 64 random centres (encoder
features cluster). Side by side, in one run, each stage timed in wall and process CPU seconds
(CPU counts all threads; on a busy machine wall time inflates, CPU time much less):

* `ours`: `kmeans` (k-means++ on a sample, then Lloyd over all tokens: 64 clusters, 300
  iterations, tol 1e-4, 1024 dimensions) as `cluster_refine` runs it, then the refined map,
  upsampling and `adaptive_threshold` on the full-resolution stack (200 x 288 x 512 values);
* `originals`: scikit-learn's KMeans with the reference's settings over all N*h*w x 1024
  float32 tokens, then the adaptive multi-Otsu with scikit-image's `threshold_multiotsu` and
  `numpy.digitize` on the full-resolution stack (algorithms spec §3.3, §8.1 item 5).

Row `map + Otsu` is, for ours, the refined map, its upsampling and the threshold; for the
originals, the threshold alone (their refinement and upsampling cost the same as ours).
Quality is printed with the times: the mean squared distance of a token to its centre for both
k-means, and both thresholds of the same (our) upsampled stack.

    python benchmarks/bench_masks.py [--features iid|mixture] [--skip-originals] [--seed S]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from recon4d.dynamics.attention import upsample_maps
from recon4d.dynamics.clusters import kmeans, refine_with_labels
from recon4d.dynamics.otsu import CLASS_CHOICES, adaptive_threshold

FRAMES, HEIGHT, WIDTH, DIM, CLUSTERS = 200, 288, 512, 1024, 64


def inputs(kind: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(dynamic (N, h, w), features (N, h, w, D)) of the benchmark clip."""
    gen = torch.Generator().manual_seed(seed)
    h, w = HEIGHT // 16, WIDTH // 16
    dynamic = torch.rand(FRAMES, h, w, generator=gen)
    features = torch.randn(FRAMES, h, w, DIM, generator=gen)
    if kind == "mixture":
        centres = 3 * torch.randn(CLUSTERS, DIM, generator=gen)
        features += centres[torch.randint(CLUSTERS, (FRAMES, h, w), generator=gen)]
    return dynamic, features


def timed(func: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run `func` once: its result, wall seconds and process CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = func()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def mean_sq_distance(points: np.ndarray, labels: np.ndarray, centres: np.ndarray) -> float:
    """Mean squared distance of the points to their centres (float64)."""
    return float(np.mean(np.sum((points - centres[labels]).astype(np.float64) ** 2, axis=1)))


def originals_threshold(stack: np.ndarray) -> float:
    """The adaptive multi-Otsu as the originals run it, on the full-resolution stack."""
    from skimage.filters import threshold_multiotsu

    best, threshold = -math.inf, float(stack.max())
    for classes in CLASS_CHOICES:
        thresholds = threshold_multiotsu(stack, classes=classes)
        regions = np.digitize(stack, bins=thresholds)
        means = [stack[regions == c].mean() for c in range(classes)]
        score = float(np.var(means)) / math.sqrt(classes)
        if score > best:
            best, threshold = score, float(thresholds[-1])
    return threshold


def column(kmeans_s: list[float], otsu_s: list[float], iterations: int, spread: float,
           threshold: float) -> dict[str, str]:
    """One side of the table: stage times ('wall s (cpu s)') and the quality figures."""
    total = [kmeans_s[0] + otsu_s[0], kmeans_s[1] + otsu_s[1]]
    times = {"k-means": kmeans_s, "map + Otsu": otsu_s, "total": total}
    out = {label: f"{wall:6.2f} s ({cpu:6.2f} cpu)" for label, (wall, cpu) in times.items()}
    out.update({"Lloyd iterations": str(iterations), "mean squared distance": f"{spread:.3f}",
                "threshold of our stack": f"{threshold:.6f}"})
    return out


def run_ours(dynamic: torch.Tensor, points: torch.Tensor) -> tuple[dict[str, str], np.ndarray]:
    """Our stages, timed: the table column and the full-resolution stack."""
    result, *kmeans_s = timed(lambda: kmeans(points, CLUSTERS))

    def tail() -> tuple[torch.Tensor, float]:
        stack = upsample_maps(refine_with_labels(dynamic, result.labels), (HEIGHT, WIDTH))
        return stack, adaptive_threshold(stack).threshold

    (stack, threshold), *tail_s = timed(tail)
    spread = mean_sq_distance(points.numpy(), result.labels.numpy(), result.centers.numpy())
    return column(kmeans_s, tail_s, result.iterations, spread, threshold), stack.numpy()


def run_originals(points: np.ndarray, stack: np.ndarray) -> dict[str, str]:
    """The originals' stages, timed: scikit-learn's KMeans, Otsu with scikit-image."""
    from sklearn.cluster import KMeans

    model = KMeans(CLUSTERS, init="k-means++", n_init=1, max_iter=300, tol=1e-4,
                   algorithm="lloyd", random_state=42)
    _, *kmeans_s = timed(lambda: model.fit(points))
    threshold, *otsu_s = timed(lambda: originals_threshold(stack))
    spread = mean_sq_distance(points, model.labels_, model.cluster_centers_)
    return column(kmeans_s, otsu_s, model.n_iter_, spread, threshold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", choices=("iid", "mixture"), default="iid")
    parser.add_argument("--skip-originals", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="draw of the features (spread)")
    args = parser.parse_args()
    dynamic, features = inputs(args.features, args.seed)
    points = features.reshape(-1, DIM)
    print(f"{FRAMES} frames {WIDTH}x{HEIGHT}, {dynamic[0].numel()} tokens/frame, {DIM}-d "
          f"{args.features} features, {torch.get_num_threads()} torch threads")
    ours, stack = run_ours(dynamic, points)
    theirs = (dict.fromkeys(ours, "-") if args.skip_originals
              else run_originals(points.numpy(), stack))
    print(f"{'':<26s} {'ours':>22s} {'originals':>22s}")
    for label, value in ours.items():
        print(f"{label:<26s} {value:>22s} {theirs[label]:>22s}")


if __name__ == "__main__":
    main()
