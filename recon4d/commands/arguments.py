"""Argument types and option groups shared by several sub-commands."""

from __future__ import annotations

import argparse

from recon4d.inference.engine import AUTOCAST_DTYPES
from recon4d.inference.graphs import GRAPH_HELP, PREFILTER_HELP
from recon4d.inference.run import AUTO_GRAPH_WINDOW, DEFAULT_WEIGHTS


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_network_arguments(p: argparse.ArgumentParser) -> None:
    """Options choosing the network, its input size, the pair graph, device and batching."""
    p.add_argument("--weights", "--model", dest="weights", default=DEFAULT_WEIGHTS,
                   help=f"checkpoint: .pth file, Hugging Face folder or repo id, or registry "
                        f"name (default {DEFAULT_WEIGHTS})")
    p.add_argument("--size", type=positive_int, default=None,
                   help="model input size, 512 or 224 (default: from the checkpoint)")
    p.add_argument("--graph", default="auto",
                   help=f"pair graph: {GRAPH_HELP}; auto (default) = complete up to "
                        f"{2 * AUTO_GRAPH_WINDOW + 1} frames, else swin-{AUTO_GRAPH_WINDOW}")
    p.add_argument("--prefilter", default=None, help=PREFILTER_HELP)
    p.add_argument("--no-symmetrize", action="store_true",
                   help="do not add the swapped copy (j, i) of every pair (i, j)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="pairs per network call (default: sized from free memory)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="default: cuda when available, else cpu")
    p.add_argument("--dtype", choices=tuple(AUTOCAST_DTYPES), default="fp32",
                   help="bf16/fp16 autocast of the network trunk, CUDA only (default fp32)")


def add_frame_arguments(p: argparse.ArgumentParser) -> None:
    """Options selecting the frames of a video or folder."""
    p.add_argument("--fps", type=float, default=None, help="video: frames per second to sample")
    p.add_argument("--num-frames", type=positive_int, default=None,
                   help="use at most this many frames (the first ones)")
