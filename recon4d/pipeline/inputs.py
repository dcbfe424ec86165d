"""The first stage of `reconstruct`: pair predictions from frames + network, a file, or the oracle.

Each source also says what it knows about the frames (names, timestamps, original resolution and
crop, the original pixels for writers) and what scene.json should record about it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recon4d.errors import InputError, OptionError
from recon4d.inference import PairPredictions, infer_pairs
from recon4d.inference.engine import PairSink
from recon4d.inference.graphs import retrieval_params
from recon4d.inference.run import (
    NetworkRun,
    check_network,
    pair_edges,
    resolve_graph,
    run_network,
)
from recon4d.io import collect_frames
from recon4d.io.layout import frame_name, frame_stem
from recon4d.options import FrameOptions, NetworkOptions
from recon4d.pipeline.cameras import frame_geometry
from recon4d.synthetic import OracleModel, load_scene

logger = logging.getLogger(__name__)

@dataclass
class PreparedInputs:
    """Pair predictions of N same-size frames plus what is known about the frames."""

    predictions: PairPredictions  # its images (model inputs) colour the points, else grey
    names: list[str]
    timestamps: np.ndarray | None = None
    original_sizes: np.ndarray | None = None  # (N, 2) (W0, H0)
    crops: np.ndarray | None = None  # (N, 4) (left, top, resized_w, resized_h)
    sources: list[Path] | None = None  # original image files (writers copy them), if files
    record: dict[str, Any] = field(default_factory=dict)  # "inputs" and "model" of scene.json


def one_source(sources: dict[str, Any]) -> str:
    """The name of the one source given among `sources` (input, predictions, oracle), else
    OptionError naming what was given."""
    given = [name for name, value in sources.items() if value is not None]
    if len(given) != 1:
        flags = {"input": "INPUT", "predictions": "--predictions", "oracle": "--oracle"}
        raise OptionError("give exactly one of INPUT (images folder or video), --predictions "
                          f"FILE or --oracle SCENE_DIR (got "
                          f"{', '.join(flags[g] for g in given) or 'none'})")
    return given[0]


def from_frames(input: str | os.PathLike, network: NetworkOptions, frames: FrameOptions, *,
                progress: bool = True) -> PreparedInputs:
    """Images folder or video -> network predictions (refuses frames of different sizes)."""
    check_network(network)
    source = collect_frames(input, fps=frames.fps, num_frames=frames.num_frames)
    return from_run(run_network(source, network, same_shape=True, progress=progress))


def from_run(run: NetworkRun) -> PreparedInputs:
    """The predictions of a network run with what its frame source knows about the frames."""
    source = run.source
    sizes, crops = frame_geometry(source.frames, run.size)
    files = source.frames if all(isinstance(f, Path) for f in source.frames) else None
    return PreparedInputs(run.predictions, list(source.names), source.timestamps, sizes, crops,
                          files, run.record())


def from_npz(path: str | os.PathLike) -> PreparedInputs:
    """A predictions.npz (ours or built in the originals' layout); images are optional."""
    preds = PairPredictions.load_npz(path)
    shapes = np.concatenate([preds.true_shape1, preds.true_shape2])
    if len(shapes) and (shapes != shapes[0]).any():
        odd = shapes[np.flatnonzero((shapes != shapes[0]).any(axis=1))[0]]
        raise InputError(f"{path}: images of different sizes ({shapes[0][1]}x{shapes[0][0]} and "
                         f"{odd[1]}x{odd[0]}); global alignment needs one image size")
    n = preds.num_images
    names = (list(preds.image_names)[:n] if preds.image_names is not None
             else [frame_name(i) for i in range(n)])
    timestamps = preds.timestamps[:n] if preds.timestamps is not None else None
    record = {"inputs": {"predictions": str(path), "frames": n, "pairs": len(preds),
                         "images": preds.images is not None},
              "model": {"weights": None, "predictions": str(path)}}
    return PreparedInputs(preds, names, timestamps, record=record)


def from_oracle(scene_dir: str | os.PathLike, network: NetworkOptions, *,
                progress: bool = True, static: bool = True, sink: PairSink | None = None,
                check_graph: Callable[[int, np.ndarray], object] | None = None,
                desc_dim: int = 0) -> PreparedInputs:
    """A `recon4d synth` folder; the oracle predictor (default corruption) replaces the network,
    so of `network` only the input size, pair graph and batch size apply. `static`: the caller
    treats every pixel as static (a scene with movers is then worth a warning). `check_graph`
    sees (frame count, edges) before any prediction, to refuse bad options early. `desc_dim`
    > 0: the oracle also gives MASt3R-like descriptors of that size (for sparse alignment)."""
    scene = load_scene(scene_dir)
    if scene.num_frames < 2:
        raise InputError(f"{scene_dir}: {scene.num_frames} frame(s), at least 2 needed")
    if static and scene.dynamic_mask.any():
        logger.warning("%s: the scene has moving objects; static reconstruction treats them as "
                       "static (render it with --movers 0)", scene_dir)
    if retrieval_params(resolve_graph(network.graph, scene.num_frames)) is not None:
        raise OptionError(f"--graph {network.graph}: retrieval graphs rank images with the "
                          "network's encoder, which the oracle does not have; choose another "
                          "graph")
    oracle = OracleModel(scene, desc_dim=desc_dim)
    views = oracle.views(network.size)
    edges, graph = pair_edges(scene.num_frames, network)
    if check_graph is not None:
        check_graph(scene.num_frames, edges)
    preds = infer_pairs(oracle, views, edges, batch_size=network.batch_size or 8, device="cpu",
                        progress=progress, sink=sink)
    height, width = scene.shape
    n = scene.num_frames
    record = {"inputs": {"oracle": str(scene_dir), "frames": n, "size": max(height, width),
                         "graph": graph, "pairs": len(edges)},
              "model": {"weights": "oracle",
                        "corruption": dataclasses.asdict(oracle.corruption)}}
    return PreparedInputs(preds, [f"{frame_stem(i)}.png" for i in range(n)],
                          scene.timestamps, np.tile([width, height], (n, 1)),
                          np.tile([0, 0, width, height], (n, 1)), record=record)

