"""Sharded pair inference on Ray: start-up and pair phase with 1 and 2 actors against one process.

One synthetic video (`--frames`, pair graph `--graph`, default complete: F(F-1) pairs) at
`--size`, through a random-weight network of the DUSt3R architecture (ViT-S encoder, 6-block
decoder, linear head; weights seeded so every actor holds the same network), run three ways:
- `single`: in this process with torch's default threads (all cores);
- `ray-1`: `run_sharded` with one actor of all cores (`--worker-cpus` = cores);
- `ray-2`: two actors of half the cores each.
Each run is split in two phases. Start-up: building the network and loading the frames (the
single process), or starting the actors' processes and doing the same in each, and planning
the batches (`run_sharded`'s `timings`; the local Ray instance itself is started once before).
Pair phase: running the network on every pair until the last prediction is in the driver.
Speed-ups are single / sharded, of the pair phase and of the whole call. Timings only: random
weights give no result worth looking at.

On a machine of a few CPU cores expect no gain: the single process already keeps every core
busy with torch's threads, and each actor pays its own start-up (a fresh Python process
importing torch, building the network, loading the frames). The point of sharding is a GPU
cluster: with one actor per GPU (`recon4d infer --workers N --device cuda --ray ADDRESS`), each
GPU runs its contiguous share of the pairs and only the predictions travel back, so the pair
phase should speed up almost linearly with the number of GPUs, until the driver's network link
or its writing of the predictions (about 1 MB per 512x384 pair, more with MASt3R descriptors)
becomes the limit (a `PairStore` sink keeps the driver's memory bounded then); start-up, a few
seconds to a minute per actor with a real checkpoint, is paid once in parallel.

    python benchmarks/bench_sharded_infer.py [--frames 32] [--size 224] [--graph complete]
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Phases:
    """Seconds of one run's start-up and pair phase."""

    startup: float
    pairs: float

    @property
    def total(self) -> float:
        return self.startup + self.pairs


def random_network(size: int, network, source):
    """A seeded random-weight network (ViT-S encoder) and the model inputs of `source`."""
    import torch

    from recon4d.inference.run import LoadedNetwork, pair_edges
    from recon4d.io import load_images
    from recon4d.models.config import ModelConfig
    from recon4d.models.network import build_model

    config = ModelConfig(enc_embed_dim=384, enc_depth=12, enc_num_heads=6, dec_embed_dim=256,
                         dec_depth=6, dec_num_heads=8, img_size=(size, size))
    torch.manual_seed(0)
    model = build_model(config, device="cpu")
    edges, graph = pair_edges(len(source), network)
    return LoadedNetwork(model, config, size, load_images(source.frames, size=size), edges,
                         graph, source, network, torch.device("cpu"))


def run_single(load, source, batch_size: int) -> tuple[Phases, int]:
    """(phases, number of pairs) of the single-process run."""
    from recon4d.inference import infer_pairs

    start = time.perf_counter()
    net = load(source)
    ready = time.perf_counter()
    infer_pairs(net.model, net.views, net.edges, batch_size=batch_size, progress=False)
    return Phases(ready - start, time.perf_counter() - ready), len(net.edges)


def run_ray(load, source, workers: int, cores: int) -> Phases:
    """The phases of `run_sharded` on `workers` actors sharing the cores."""
    from recon4d.cluster.sharded import run_sharded
    from recon4d.options.batch import ShardOptions

    timings: dict[str, float] = {}
    options = ShardOptions(workers=workers, worker_cpus=max(1, cores // workers))
    run_sharded(source, load, options, progress=False, timings=timings)
    return Phases(timings["startup"], timings["pairs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--graph", default="complete")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()

    import ray
    import torch

    from recon4d.io import FrameSource
    from recon4d.options import NetworkOptions
    from recon4d.synthetic import generate_scene

    cores = os.cpu_count() or 1
    height = args.size * 3 // 4
    scene = generate_scene(frames=args.frames, width=args.size, height=height, movers=1, seed=0)
    source = FrameSource("synthetic", list(scene.rgb), [f"{i}.png" for i in range(args.frames)])
    network = NetworkOptions(graph=args.graph, batch_size=args.batch_size)
    load = functools.partial(random_network, args.size, network)
    load_before = os.getloadavg()[0]
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
             object_store_memory=256 << 20)
    try:
        runs = {}
        runs["single"], pairs = run_single(load, source, args.batch_size)
        for workers in (1, 2):
            runs[f"ray-{workers}"] = run_ray(load, source, workers, cores)
    finally:
        ray.shutdown()
    print(f"{pairs} pairs ({args.graph}, {args.frames} frames) of {args.size}x{height} on "
          f"{cores} CPU cores, load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after (torch {torch.__version__}, ray {ray.__version__})")
    single = runs["single"]
    print("| run | start-up s | pair phase s | pairs/s | pair speed-up | total s | "
          "total speed-up |\n|---|---|---|---|---|---|---|")
    for name, phases in runs.items():
        print(f"| {name} | {phases.startup:.2f} | {phases.pairs:.2f} | "
              f"{pairs / phases.pairs:.2f} | {single.pairs / phases.pairs:.2f} | "
              f"{phases.total:.2f} | {single.total / phases.total:.2f} |")


if __name__ == "__main__":
    main()
