"""`recon4d infer`: run the pair network over a pair graph of frames and save predictions.npz."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recon4d import models
from recon4d.errors import InputError, Recon4dError
from recon4d.inference.engine import (
    AUTOCAST_DTYPES,
    autocast_context,
    infer_pairs,
    resolve_device,
)
from recon4d.inference.graphs import GRAPH_HELP, PREFILTER_HELP, make_pairs
from recon4d.inference.predictions import PairPredictions
from recon4d.io import FrameSource, collect_frames, load_images
from recon4d.io.atomic import atomic_output_dir
from recon4d.io.scene_json import write_scene_json
from recon4d.models.config import ModelConfig

DEFAULT_WEIGHTS = "DUSt3R_ViTLarge_BaseDecoder_512_dpt"
AUTO_GRAPH_WINDOW = 5  # `auto`: complete graph up to 2*5+1 frames, swin-5 beyond
PREDICTIONS_FILE = "predictions.npz"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `infer` sub-command."""
    p = subparsers.add_parser(
        "infer", help="run the pair network on images or a video; writes predictions.npz",
        description="Run the DUSt3R/MASt3R/MonST3R pair network over a pair graph of the input "
                    "frames and write predictions.npz and scene.json into --out (atomically).")
    p.add_argument("input", help="a folder of images or a video file")
    p.add_argument("--out", required=True, help="output folder (replaced atomically if it is a "
                   "previous recon4d output)")
    add_network_arguments(p)
    add_frame_arguments(p)
    p.set_defaults(func=run)


def add_network_arguments(p: argparse.ArgumentParser) -> None:
    """Options choosing the network, its input size, the pair graph, device and batching."""
    p.add_argument("--weights", "--model", dest="weights", default=DEFAULT_WEIGHTS,
                   help=f"checkpoint: .pth file, Hugging Face folder or repo id, or registry "
                        f"name (default {DEFAULT_WEIGHTS})")
    p.add_argument("--size", type=_positive_int, default=None,
                   help="model input size, 512 or 224 (default: from the checkpoint)")
    p.add_argument("--graph", default="auto",
                   help=f"pair graph: {GRAPH_HELP}; auto (default) = complete up to "
                        f"{2 * AUTO_GRAPH_WINDOW + 1} frames, else swin-{AUTO_GRAPH_WINDOW}")
    p.add_argument("--prefilter", default=None, help=PREFILTER_HELP)
    p.add_argument("--no-symmetrize", action="store_true",
                   help="do not add the swapped copy (j, i) of every pair (i, j)")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="pairs per network call (default: sized from free memory)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="default: cuda when available, else cpu")
    p.add_argument("--dtype", choices=tuple(AUTOCAST_DTYPES), default="fp32",
                   help="bf16/fp16 autocast of the network trunk, CUDA only (default fp32)")


def add_frame_arguments(p: argparse.ArgumentParser) -> None:
    """Options selecting the frames of a video or folder."""
    p.add_argument("--fps", type=float, default=None, help="video: frames per second to sample")
    p.add_argument("--num-frames", type=_positive_int, default=None,
                   help="use at most this many frames (the first ones)")


def run(args: argparse.Namespace) -> int:
    """Frames -> views -> pairs -> predictions; write predictions.npz and scene.json."""
    start = time.perf_counter()
    out = Path(args.out)
    _check_output_folder(out)
    source = collect_frames(args.input, fps=args.fps, num_frames=args.num_frames)
    net = run_network(source, weights=args.weights, size=args.size, graph=args.graph,
                      prefilter=args.prefilter, symmetrize=not args.no_symmetrize,
                      batch_size=args.batch_size, device=args.device, dtype=args.dtype)
    preds, config, size, graph, edges = net.predictions, net.config, net.size, net.graph, net.edges
    options = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
    extra: dict[str, Any] = {
        "model": _model_summary(args.weights, config),
        "inputs": {"source": source.input, "frames": len(source), "size": size,
                   "graph": graph, "pairs": len(edges)},
    }
    with atomic_output_dir(out) as staging:
        preds.save_npz(staging / PREDICTIONS_FILE)
        write_scene_json(staging, "infer", options, extra)
    seconds = time.perf_counter() - start
    print(f"recon4d infer: {len(source)} frames, {len(edges)} pairs, {seconds:.1f} s "
          f"-> {out / PREDICTIONS_FILE}")
    return 0


@dataclass
class NetworkRun:
    """What `run_network` produced: predictions (with names, timestamps) and how."""

    predictions: PairPredictions
    config: ModelConfig | None
    size: int
    graph: str
    edges: np.ndarray


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
    device = resolve_device(None, device or ("cuda" if torch.cuda.is_available() else "cpu"))
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
                      edges)


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


def _check_output_folder(out: Path) -> None:
    """Refuse to replace a file or a non-empty folder that is not a previous recon4d output."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "scene.json").is_file():
        raise InputError(f"{out}: --out is a non-empty folder that is not a recon4d output "
                         "(no scene.json); choose a new or empty folder")


def _model_summary(weights: str, config: ModelConfig | None) -> dict[str, Any]:
    """What scene.json records about the network."""
    summary: dict[str, Any] = {"weights": str(weights)}
    if isinstance(config, ModelConfig):
        summary.update(arch=config.arch, head_type=config.head_type,
                       output_mode=config.output_mode, img_size=list(config.img_size))
    return summary


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
