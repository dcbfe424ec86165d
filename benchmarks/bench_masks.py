"""Easi3R mask post-processing benchmark, CPU: k-means refinement and the video-level Otsu.

Inputs (seeded): 200 frames at 512x288, i.e. 18x32 tokens of 1024-d features and a random
dynamic map per frame. `--features iid` draws every token from N(0, I) (no cluster structure:
Lloyd's worst case); `mixture` draws them around 64 random centres (encoder features cluster).
Printed side by side, in one run:

* `ours`: `cluster_refine` (k-means++ then Lloyd, 64 clusters, 300 iterations, tol 1e-4, all
  1024 dimensions), then upsampling and `adaptive_threshold` on the full-resolution stack
  (200 x 288 x 512 values): the whole `attention_masks` tail after the dynamic map;
* `sklearn`: scikit-learn's KMeans with the reference's settings on all 1024 dimensions (when
  installed);
* `otsu`: `adaptive_threshold` alone on the full-resolution stack.

    python benchmarks/bench_masks.py [--features iid|mixture] [--skip-sklearn]

Times are wall-clock seconds on a shared machine: other jobs can inflate them.
"""

from __future__ import annotations

import argparse
import time

import torch

from recon4d.dynamics.attention import upsample_maps
from recon4d.dynamics.clusters import cluster_refine, kmeans
from recon4d.dynamics.otsu import adaptive_threshold

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


def timed(label: str, func) -> object:
    """Run `func` once and print its wall time."""
    start = time.perf_counter()
    out = func()
    print(f"{label:<28s} {time.perf_counter() - start:7.2f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", choices=("iid", "mixture"), default="iid")
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args()
    dynamic, features = inputs(args.features)
    print(f"{FRAMES} frames {WIDTH}x{HEIGHT}, {dynamic[0].numel()} tokens/frame, {DIM}-d "
          f"{args.features} features, {torch.get_num_threads()} torch threads")

    def ours() -> float:
        refined = cluster_refine(dynamic, features, clusters=CLUSTERS)
        return adaptive_threshold(upsample_maps(refined, (HEIGHT, WIDTH))).threshold

    timed("ours (k-means + otsu)", ours)
    points = features.reshape(-1, DIM)
    result = timed("ours k-means alone", lambda: kmeans(points, CLUSTERS))
    print(f"{'':<28s} {result.iterations} Lloyd iterations")
    if not args.skip_sklearn:
        try:
            from sklearn.cluster import KMeans
        except ImportError:
            print("sklearn                      not installed")
        else:
            model = KMeans(CLUSTERS, init="k-means++", n_init=1, max_iter=300, tol=1e-4,
                           algorithm="lloyd", random_state=42)
            timed("sklearn (KMeans 1024-d)", lambda: model.fit(points.numpy()))
            print(f"{'':<28s} {model.n_iter_} Lloyd iterations")
    stack = upsample_maps(torch.rand(FRAMES, HEIGHT // 16, WIDTH // 16), (HEIGHT, WIDTH))
    timed(f"otsu ({stack.numel() / 1e6:.1f} M values)", lambda: adaptive_threshold(stack))


if __name__ == "__main__":
    main()
