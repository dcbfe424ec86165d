"""`recon4d slam` flags: images or a video (or a synthetic scene's oracle) -> streaming SLAM."""

from __future__ import annotations

import argparse

from recon4d.commands import add_out, runner
from recon4d.options import add_options
from recon4d.options.slam import SlamOptions


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `slam` sub-command."""
    p = subparsers.add_parser(
        "slam",
        description="Stream the frames through SLAM3R (--method slam3r: I2P local pointmaps, "
                    "L2W registration) or MASt3R-SLAM (--method mast3r: tracking against "
                    "keyframes, a windowed Sim(3) back end with loop closure, relocalisation, "
                    "mover masks), a camera per frame, and write the trajectory, fused point "
                    "cloud (PLY, GLB), intrinsics, per-frame table and scene.json into --out "
                    "(atomically; mast3r also keyframes, masks and a map video).")
    p.add_argument("input", nargs="?", default=None,
                   help="a folder of images or a video file (or use --oracle)")
    add_out(p, "slam")
    p.add_argument("--oracle", default=None, metavar="SCENE_DIR",
                   help="a `recon4d synth` folder: the ground-truth oracle replaces the networks")
    add_options(p, SlamOptions)
    p.set_defaults(func=runner("slam"))
    return p
