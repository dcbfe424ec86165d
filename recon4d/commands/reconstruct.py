"""`recon4d reconstruct` flags: images, a video, a predictions file or a synthetic scene -> 3D."""

from __future__ import annotations

import argparse

from recon4d.commands import add_sources, runner
from recon4d.options import ReconstructOptions, add_options


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `reconstruct` sub-command."""
    p = subparsers.add_parser(
        "reconstruct",
        description="Run the pair network (or read its predictions, or use the synthetic "
                    "oracle), align all frames globally and write depth, intrinsics, "
                    "trajectory, point cloud, GLB, COLMAP and transforms.json into --out "
                    "(atomically).")
    add_sources(p, "reconstruct",
                predictions_help="align a predictions.npz (from `recon4d infer` or other code) "
                                 "instead of running the network; images inside are optional "
                                 "(else grey points)",
                oracle_help="a `recon4d synth` folder: the ground-truth oracle replaces the "
                            "network")
    add_options(p, ReconstructOptions)
    p.set_defaults(func=runner("reconstruct"))
    return p
