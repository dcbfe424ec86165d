"""`recon4d reconstruct` flags: images, a video, a predictions file or a synthetic scene -> 3D."""

from __future__ import annotations

import argparse

from recon4d.commands import runner
from recon4d.options import ReconstructOptions, add_options


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `reconstruct` sub-command."""
    p = subparsers.add_parser(
        "reconstruct",
        description="Run the pair network (or read its predictions, or use the synthetic "
                    "oracle), align all frames globally and write depth, intrinsics, "
                    "trajectory, point cloud, GLB, COLMAP and transforms.json into --out "
                    "(atomically).")
    p.add_argument("input", nargs="?", default=None,
                   help="a folder of images or a video file (or use --predictions / --oracle)")
    p.add_argument("--out", required=True, help="output folder (replaced atomically if it is a "
                   "previous `recon4d reconstruct` output)")
    p.add_argument("--predictions", default=None,
                   help="align a predictions.npz (from `recon4d infer` or other code) instead "
                        "of running the network; images inside are optional (else grey points)")
    p.add_argument("--oracle", default=None, metavar="SCENE_DIR",
                   help="a `recon4d synth` folder: the ground-truth oracle replaces the network")
    add_options(p, ReconstructOptions)
    p.set_defaults(func=runner("reconstruct"))
    return p
