"""Frames -> pair graph -> network predictions: the shared front half of infer and reconstruct."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recon4d import models
from recon4d.errors import InputError, Recon4dError
from recon4d.inference.engine import autocast_context, infer_pairs, requested_device
from recon4d.inference.graphs import make_pairs
from recon4d.inference.predictions import PairPredictions
from recon4d.io import FrameSource, load_images
from recon4d.models.config import ModelConfig

DEFAULT_WEIGHTS = "DUSt3R_ViTLarge_BaseDecoder_512_dpt"
AUTO_GRAPH_WINDOW = 5  # `auto`: complete graph up to 2*5+1 frames, swin-5 beyond


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


def run_network(source: FrameSource, *, weights: str = DEFAULT_WEIGHTS, size: int | None = None,
                graph: str = "auto", prefilter: str | None = None, symmetrize: bool = True,
                batch_size: int | None = None, device: str | None = None, dtype: str = "fp32",
                same_shape: bool = False, progress: bool = True) -> NetworkRun:
    """Frames -> pair graph -> network predictions; checks cheap things before loading weights.

    `same_shape` refuses frames whose model inputs differ in size (global alignment needs one).
    """
    source.require(2)
    graph = resolve_graph(graph, len(source))
    edges = make_pairs(len(source), graph, symmetrize=symmetrize, prefilter=prefilter)
    if len(edges) == 0:
        raise Recon4dError(f"pair graph {graph!r} with prefilter {prefilter!r} leaves no "
                           f"pairs among {len(source)} frames")
    if size is not None and size % 16:
        raise Recon4dError(f"--size must be a multiple of 16 (512 or 224), got {size}")
    # check device and dtype before loading weights, which can take a while
    device = requested_device(device)
    autocast_context(dtype, device)
    model = models.load_model(weights, device=device)
    config = getattr(model, "config", None)
    size = size or default_size(config)
    views = load_images(source.frames, size=size)
    if same_shape:
        _require_same_shape(views, source)
    preds = infer_pairs(model, views, edges, batch_size=batch_size, device=device, dtype=dtype,
                        progress=progress)
    preds.image_names = list(source.names)
    preds.timestamps = source.timestamps
    return NetworkRun(preds, config if isinstance(config, ModelConfig) else None, size, graph,
                      source, weights)


def _require_same_shape(views: list[dict], source: FrameSource) -> None:
    """InputError naming the first frame whose model input differs in size from the first."""
    shapes = [tuple(np.asarray(v["true_shape"]).reshape(2).tolist()) for v in views]
    for name, shape in zip(source.names, shapes, strict=True):
        if shape != shapes[0]:
            raise InputError(
                f"{source.input}: images of different sizes: {name} becomes {shape[1]}x{shape[0]} "
                f"at the model input but {source.names[0]} becomes {shapes[0][1]}x{shapes[0][0]};"
                " reconstruct needs one image size (crop or resize the images to one aspect "
                "ratio)")


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
