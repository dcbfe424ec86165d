"""Sharded pair inference on Ray: speed-up with 1 and 2 actors over the single-process run.

One synthetic video (`--frames`, complete graph: F(F-1) pairs) at `--size`, through a
random-weight network of the DUSt3R architecture (ViT-S encoder, 6-block decoder, linear head
by default; weights seeded so every actor holds the same network), in one run, side by side:
- `single`: `infer_pairs` in this process with torch's default threads (all cores);
- `ray-1`: `run_sharded` with one actor of all cores (`--worker-cpus` = cores);
- `ray-2`: two actors of half the cores each.
Times are wall seconds of the whole call, actor start-up and network loading included (the
local Ray instance itself is started once before); speed-up = single / sharded. Timings only:
random weights give no result worth looking at.

On this kind of machine (a few shared CPU cores) expect no gain: the single process already
keeps every core busy with torch's threads, and each actor pays its own start-up (a fresh
Python process importing torch, loading the weights, encoding its frames). The point of
sharding is a GPU cluster: with one actor per GPU (`recon4d infer --workers N --device cuda
--ray ADDRESS`), each GPU runs its contiguous share of the pairs and only the predictions
travel back, so for graphs of thousands of pairs (where start-up, a few seconds per actor, is
small against minutes of inference) the pair throughput should grow almost linearly with the
number of GPUs, until the driver's network link or its writing of the predictions (about 1 MB
per 512x384 pair, more with MASt3R descriptors) becomes the limit; a `PairStore` sink keeps the
driver's memory bounded then.

    python benchmarks/bench_sharded_infer.py [--frames 8] [--size 224] [--repeats 1]
"""

from __future__ import annotations

import argparse
import functools
import os
import time


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


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs")
    args = parser.parse_args()

    import ray
    import torch

    from recon4d.cluster.sharded import run_sharded
    from recon4d.inference import infer_pairs
    from recon4d.io import FrameSource
    from recon4d.options import NetworkOptions
    from recon4d.options.batch import ShardOptions
    from recon4d.synthetic import generate_scene

    cores = os.cpu_count() or 1
    scene = generate_scene(frames=args.frames, width=args.size, height=args.size * 3 // 4,
                           movers=1, seed=0)
    source = FrameSource("synthetic", list(scene.rgb), [f"{i}.png" for i in range(args.frames)])
    network = NetworkOptions(graph="complete", batch_size=4)
    load = functools.partial(random_network, args.size, network)
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
             object_store_memory=256 << 20)
    try:
        net = load(source)
        runs = {"single": lambda: infer_pairs(net.model, net.views, net.edges, batch_size=4,
                                              progress=False)}
        for workers in (1, 2):
            options = ShardOptions(workers=workers, worker_cpus=max(1, cores // workers))
            runs[f"ray-{workers}"] = functools.partial(run_sharded, source, load, options,
                                                       progress=False)
        best = {name: min(timed(fn) for _ in range(args.repeats)) for name, fn in runs.items()}
    finally:
        ray.shutdown()
    print(f"{len(net.edges)} pairs of {args.size}x{args.size * 3 // 4} on {cores} CPU cores "
          f"(torch {torch.__version__}, ray {ray.__version__})")
    print(f"{'run':<8} {'seconds':>8} {'speed-up':>9}")
    for name, seconds in best.items():
        print(f"{name:<8} {seconds:8.2f} {best['single'] / seconds:9.2f}")


if __name__ == "__main__":
    main()
