"""Frames -> pair graph -> network predictions: the shared front half of infer and reconstruct."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recon4d import models
from recon4d.errors import InputError, Recon4dError
from recon4d.inference.engine import EncoderCache, PairSink, infer_pairs, requested_device
from recon4d.inference.graphs import make_pairs, retrieval_params
from recon4d.inference.predictions import PairPredictions
from recon4d.io import FrameSource, load_images
from recon4d.models.config import ModelConfig
from recon4d.models.precision import autocast_context
from recon4d.models.specs import parse_spec
from recon4d.options import AUTO_GRAPH_WINDOW, NetworkOptions


@dataclass
class NetworkRun:
    """What `run_network` produced: predictions (with names, timestamps) and how."""

    predictions: PairPredictions
    config: ModelConfig | None
    size: int
    graph: str
    source: FrameSource
    weights: str

    def record(self) -> dict[str, Any]:
        """The "inputs" and "model" entries of scene.json for this run."""
        return {"inputs": {"source": self.source.input, "frames": len(self.source),
                           "size": self.size, "graph": self.graph,
                           "pairs": len(self.predictions)},
                "model": model_summary(self.weights, self.config)}


@dataclass
class LoadedNetwork:
    """A loaded network with its frames' model inputs and pair graph, ready to run (again)."""

    model: Any
    config: ModelConfig | None
    size: int
    views: list[dict]
    edges: np.ndarray  # (E, 2) int64 (view 1, view 2) frame indices
    graph: str
    source: FrameSource
    options: NetworkOptions
    device: torch.device
    # the network's encoder tokens of `views`, kept between passes when `keep_tokens` ran
    encoder_cache: EncoderCache | None = field(default=None, repr=False)

    def keep_tokens(self) -> None:
        """Keep the encoder tokens of the first pass for the next ones (Easi3R's pass 2 changes
        only the decoders); costs N x tokens x enc_dim floats on the device (see the engine)."""
        self.encoder_cache = EncoderCache()

    def run(self, *, probes: bool = False, motion_masks: np.ndarray | None = None,
            heads: bool = True, progress: bool = True, sink: PairSink | None = None
            ) -> NetworkRun:
        """One pass over the pair graph; `probes`, `motion_masks`, `heads` and `sink` as in
        `infer_pairs`, reusing the kept encoder tokens after `keep_tokens`."""
        opts = self.options
        preds = infer_pairs(self.model, self.views, self.edges, batch_size=opts.batch_size,
                            device=self.device, dtype=opts.dtype, progress=progress,
                            probes=probes, motion_masks=motion_masks, heads=heads,
                            encoder_cache=self.encoder_cache, sink=sink)
        preds.image_names = list(self.source.names)
        preds.timestamps = self.source.timestamps
        return NetworkRun(preds, self.config, self.size, self.graph, self.source, opts.weights)


def load_network(source: FrameSource, network: NetworkOptions | None = None, *,
                 same_shape: bool = False) -> LoadedNetwork:
    """Pair graph, weights and model inputs of `source`; checks cheap things before loading.

    `network` defaults to `NetworkOptions()`; `same_shape` refuses frames whose model inputs
    differ in size (global alignment and motion masks need one).
    """
    opts = network or NetworkOptions()
    source.require(2)
    edges, graph = pair_edges(len(source), opts)
    device = check_network(opts)
    model = models.load_model(opts.weights, device=device)
    config = getattr(model, "config", None)
    size = opts.size or default_size(config)
    views = load_images(source.frames, size=size)
    if same_shape:
        _require_same_shape(views, source)
    cache = None
    if retrieval_params(graph) is not None:
        edges, cache = _retrieval_edges(model, views, opts, device)
    return LoadedNetwork(model, config if isinstance(config, ModelConfig) else None, size, views,
                         edges, graph, source, opts, device, encoder_cache=cache)


def _retrieval_edges(model: Any, views: list[dict], opts: NetworkOptions,
                     device: torch.device) -> tuple[np.ndarray, EncoderCache]:
    """A retrieval graph's pairs from the images' similarity, and the encoder tokens computed
    for it (kept, so that the pairs are not encoded again)."""
    from recon4d.inference.retrieval import image_similarity
    from recon4d.models.retrieval import load_retrieval

    retriever = (None if opts.retrieval_weights is None
                 else load_retrieval(opts.retrieval_weights, device=device))
    cache = EncoderCache()
    similarity = image_similarity(model, views, retriever, device=device, dtype=opts.dtype,
                                  encoder_cache=cache)
    return pair_edges(len(views), opts, similarity)[0], cache


def run_network(source: FrameSource, network: NetworkOptions | None = None, *,
                same_shape: bool = False, progress: bool = True,
                probes: bool = False) -> NetworkRun:
    """Frames -> pair graph -> network predictions (with attention probes if `probes`); see
    `load_network` for `network` and `same_shape`."""
    return load_network(source, network, same_shape=same_shape).run(probes=probes,
                                                                     progress=progress)


def check_network(network: NetworkOptions) -> torch.device:
    """Refuse a bad checkpoint spec, device or dtype before any slow work (decoding frames,
    loading weights); returns the device to run on."""
    parse_spec(network.weights)
    if network.retrieval_weights is not None and not parse_spec(network.retrieval_weights).path:
        raise InputError(f"--retrieval-weights {network.retrieval_weights}: give the local "
                         "path of the MASt3R retrieval checkpoint")
    device = requested_device(network.device)
    autocast_context(network.dtype, device)
    return device


def pair_edges(num_frames: int, network: NetworkOptions,
               similarity: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """The (E, 2) pairs of the options' graph over `num_frames` frames and the graph's resolved
    name; Recon4dError when the graph and prefilter leave no pair. A retrieval graph needs the
    images' `similarity`; without it (before the images are encoded) it stands for the complete
    graph, every pair it may choose from, so that early checks see a superset."""
    graph = resolve_graph(network.graph, num_frames)
    planned = "complete" if retrieval_params(graph) and similarity is None else graph
    edges = make_pairs(num_frames, planned, symmetrize=network.symmetrize,
                       prefilter=network.prefilter, similarity=similarity)
    if len(edges) == 0:
        raise Recon4dError(f"pair graph {graph!r} with prefilter {network.prefilter!r} leaves "
                           f"no pairs among {num_frames} frames")
    return edges, graph


def _require_same_shape(views: list[dict], source: FrameSource) -> None:
    """InputError naming the first frame whose model input differs in size from the first."""
    shapes = [tuple(np.asarray(v["true_shape"]).reshape(2).tolist()) for v in views]
    for name, shape in zip(source.names, shapes, strict=True):
        if shape != shapes[0]:
            raise InputError(
                f"{source.input}: images of different sizes: {name} becomes {shape[1]}x{shape[0]} "
                f"at the model input but {source.names[0]} becomes {shapes[0][1]}x{shapes[0][0]};"
                " reconstruct and motion masks need one image size (crop or resize the images to "
                "one aspect ratio)")


def resolve_graph(graph: str, num_frames: int) -> str:
    """`auto` -> complete for small sets (a cyclic window would cover them anyway), else swin."""
    if graph != "auto":
        return graph
    return "complete" if num_frames <= 2 * AUTO_GRAPH_WINDOW + 1 else f"swin-{AUTO_GRAPH_WINDOW}"


def default_size(config: ModelConfig | None) -> int:
    """224 for checkpoints trained at 224, else 512."""
    if isinstance(config, ModelConfig) and max(config.img_size) <= 224:
        return 224
    return 512


def model_summary(weights: str, config: ModelConfig | None) -> dict[str, Any]:
    """What scene.json records about the network."""
    summary: dict[str, Any] = {"weights": str(weights)}
    if isinstance(config, ModelConfig):
        summary.update(arch=config.arch, head_type=config.head_type,
                       output_mode=config.output_mode, img_size=list(config.img_size))
    return summary
