"""Sharded pair inference: the pair graph of one input split across Ray actors.

Each actor (`PairWorker`) loads the network and the frames' model inputs once. The first one
plans the batches exactly as a single-process `infer_pairs` would (same shape groups, same
symmetric couples, same batch size); the plan is cut into one contiguous run of batches per
actor (consecutive pairs share frames, so each actor encodes few frames it does not need), and
every actor streams its batches' predictions back as they come out of the network. The driver
gathers them in edge order (`PairCollector`, or any `PairSink` such as `PairStore.add`), so the
result is the single-process one: bit for bit on a CPU in float32 when every actor runs as many
torch threads (`--worker-cpus`) as the single process (CPU kernels split their sums by thread,
so other thread counts round differently, by about 1e-6 relative).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from recon4d.cluster.collector import PairCollector
from recon4d.cluster.ray_runtime import ray_session, require_resources, user_error
from recon4d.errors import Recon4dError
from recon4d.inference.batching import plan_batches
from recon4d.inference.engine import EncoderCache, PairSink, has_encoder, infer_pairs
from recon4d.inference.memory import auto_batch_size
from recon4d.inference.model_images import Images, img_to_uint8, stack_if_uniform
from recon4d.inference.predictions import group_by_shape
from recon4d.inference.run import LoadedNetwork, NetworkRun
from recon4d.io import FrameSource
from recon4d.models.config import ModelConfig
from recon4d.options.batch import ShardOptions

# load(source) -> the network, model inputs and pair graph of `source` (e.g. `load_network`
# with its options bound by functools.partial); run once in every actor
NetworkLoader = Callable[[FrameSource], LoadedNetwork]


@dataclass
class ShardPlan:
    """What the driver needs from the first actor: the pairs, their batches, how it ran."""

    edges: np.ndarray  # (E, 2)
    true_shape1: np.ndarray  # (E, 2) (H, W) of view 1
    true_shape2: np.ndarray
    batches: list[np.ndarray]  # edge positions of each batch, in the single-process order
    images: Images | None  # the uint8 model inputs, as `infer_pairs(keep_images=True)`
    config: ModelConfig | None
    size: int
    graph: str
    weights: str


class PairWorker:
    """The body of one Ray actor: a loaded network and its model inputs."""

    def __init__(self) -> None:
        self.net: LoadedNetwork | None = None
        self.cache: EncoderCache | None = None

    def load(self, load: NetworkLoader, source: FrameSource, threads: int) -> None:
        """Load the network and model inputs of `source` once, using `threads` torch threads."""
        torch.set_num_threads(threads)
        self.net = load(source)
        self.cache = EncoderCache() if has_encoder(self.net.model) else None

    def plan(self) -> ShardPlan:
        """The batches of the whole pair graph, planned as the single-process run plans them."""
        net = self.net
        shapes = np.stack([np.asarray(v["true_shape"]).reshape(2) for v in net.views])
        shapes = shapes.astype(np.int32)
        ts1, ts2 = shapes[net.edges[:, 0]], shapes[net.edges[:, 1]]
        groups = group_by_shape(ts1, ts2)
        trunk_bytes = 4 if net.options.dtype == "fp32" else 2

        def batch_size(g: int) -> int:
            if net.options.batch_size is not None:
                return net.options.batch_size
            height, width = np.maximum(ts1[groups[g][0]], ts2[groups[g][0]])
            return auto_batch_size(int(height), int(width), net.config, net.device, trunk_bytes)

        images = None
        if all(isinstance(v.get("img"), torch.Tensor) for v in net.views):
            images = stack_if_uniform([img_to_uint8(v["img"][0]) for v in net.views])
        return ShardPlan(net.edges, ts1, ts2, plan_batches(net.edges, groups, batch_size),
                         images, net.config, net.size, net.graph, net.options.weights)

    def run(self, batches: list[np.ndarray]) -> Iterator[tuple[np.ndarray, dict, dict]]:
        """Predict each batch as one network call; yields (edge positions, pred1, pred2) with
        numpy arrays (zero-copy through Ray's object store)."""
        net = self.net
        for batch in batches:
            preds = infer_pairs(net.model, net.views, net.edges[batch], batch_size=len(batch),
                                device=net.device, dtype=net.options.dtype, progress=False,
                                keep_images=False, encoder_cache=self.cache)
            group = preds.groups[0]
            yield (batch[group.edge_index],
                   *({name: value.numpy() for name, value in side.items()}
                     for side in (group.pred1, group.pred2)))


def split_batches(batches: list[np.ndarray], parts: int) -> list[list[np.ndarray]]:
    """`parts` contiguous runs of `batches` holding about equal numbers of pairs."""
    starts = np.cumsum([0] + [len(b) for b in batches])[:-1]
    total = sum(len(b) for b in batches)
    owner = np.minimum(starts * parts // max(total, 1), parts - 1)
    return [[b for b, k in zip(batches, owner, strict=True) if k == part]
            for part in range(parts)]


def run_sharded(source: FrameSource, load: NetworkLoader, options: ShardOptions, *,
                gpus: float = 0.0, sink: PairSink | None = None, progress: bool = True,
                timings: dict[str, float] | None = None) -> NetworkRun:
    """Predict every pair of `source` on `options.workers` Ray actors (each `gpus` GPUs and
    `options.worker_cpus` CPUs), gathered as `run_network` returns them; with `sink`, each
    batch goes there and the predictions hold empty pred dicts. A `timings` dict receives the
    seconds of the two phases: `startup` (Ray, the actors' processes, network and frame loading,
    the plan) and `pairs` (until the last prediction arrived)."""
    start = time.perf_counter()
    try:
        with ray_session(options.ray) as ray:
            require_resources(ray, {"CPU": options.workers * options.worker_cpus,
                                    "GPU": options.workers * gpus},
                              f"--workers {options.workers} (--worker-cpus "
                              f"{options.worker_cpus}, {gpus:g} GPU each)")
            actor = ray.remote(PairWorker).options(num_cpus=options.worker_cpus, num_gpus=gpus)
            workers = [actor.remote() for _ in range(options.workers)]
            source_ref = ray.put(source)
            ray.get([w.load.remote(load, source_ref, options.worker_cpus) for w in workers])
            plan = ray.get(workers[0].plan.remote())
            ready = time.perf_counter()
            collector = PairCollector(plan.edges, plan.true_shape1, plan.true_shape2, sink)
            streams = [w.run.remote(chunk) for w, chunk in
                       zip(workers, split_batches(plan.batches, len(workers)), strict=True)
                       if chunk]
            with tqdm(total=len(plan.edges), unit="pair", desc="pairs",
                      disable=not progress) as bar:
                while streams:
                    [stream], streams = ray.wait(streams, num_returns=1)
                    try:
                        positions, pred1, pred2 = ray.get(next(stream))
                    except StopIteration:
                        continue
                    collector.add(positions, pred1, pred2)
                    bar.update(len(positions))
                    streams.append(stream)
            if timings is not None:
                timings.update(startup=ready - start, pairs=time.perf_counter() - ready)
    except Recon4dError as exc:  # raised in an actor: Ray's wrapper around the user's error
        raise user_error(exc) from None
    preds = collector.predictions(plan.images)
    preds.image_names = list(source.names)
    preds.timestamps = source.timestamps
    return NetworkRun(preds, plan.config, plan.size, plan.graph, source, plan.weights)
