"""`recon4d infer`: run the pair network over a pair graph of frames and save predictions.npz."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

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
from recon4d.io import collect_frames, load_images
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
    p.add_argument("--weights", default=DEFAULT_WEIGHTS,
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
    p.add_argument("--fps", type=float, default=None, help="video: frames per second to sample")
    p.add_argument("--num-frames", type=_positive_int, default=None,
                   help="use at most this many frames (the first ones)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Frames -> views -> pairs -> predictions; write predictions.npz and scene.json."""
    start = time.perf_counter()
    out = Path(args.out)
    _check_output_folder(out)
    source = collect_frames(args.input, fps=args.fps, num_frames=args.num_frames)
    source.require(2)
    graph = resolve_graph(args.graph, len(source))
    edges = make_pairs(len(source), graph, symmetrize=not args.no_symmetrize,
                       prefilter=args.prefilter)
    if len(edges) == 0:
        raise Recon4dError(f"pair graph {graph!r} with prefilter {args.prefilter!r} leaves no "
                           f"pairs among {len(source)} frames")
    if args.size is not None and args.size % 16:
        raise Recon4dError(f"--size must be a multiple of 16 (512 or 224), got {args.size}")
    # check device and dtype before loading weights, which can take a while
    device = resolve_device(None, args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    autocast_context(args.dtype, device)
    model = models.load_model(args.weights, device=device)
    config = getattr(model, "config", None)
    size = args.size or default_size(config)
    views = load_images(source.frames, size=size)
    preds = infer_pairs(model, views, edges, batch_size=args.batch_size, device=device,
                        dtype=args.dtype)
    preds.image_names = list(source.names)
    preds.timestamps = source.timestamps
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
