"""`recon4d masks` flags: images, a video, predictions or a synthetic scene -> motion masks."""

from __future__ import annotations

import argparse

from recon4d.commands import add_sources, runner
from recon4d.options import MasksOptions, add_options


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `masks` sub-command."""
    p = subparsers.add_parser(
        "masks",
        description="Per-frame motion masks (which pixels move): Easi3R's attention masks from "
                    "the pair network's cross-attention (two passes), or MonST3R's flow masks "
                    "from optical flow against the camera-induced flow; either refined by SAM 2 "
                    "with --sam2. Writes dynamic_mask/ PNGs (255 = moving), dynamic_maps/ "
                    "scores, an overlay GIF and MP4 and scene.json into --out (atomically).")
    add_sources(p, "masks",
                predictions_help="a predictions.npz instead of running the network: attention "
                                 "masks from its probes (`recon4d infer --probes`), flow masks "
                                 "from its images and pointmaps",
                oracle_help="a `recon4d synth` folder: the ground-truth oracle replaces the "
                            "network (--motion flow only: the oracle has no attention)")
    add_options(p, MasksOptions)
    p.set_defaults(func=runner("masks"))
    return p
