"""`recon4d view` flags: a recon4d output folder -> a 4D viewer in the web browser."""

from __future__ import annotations

import argparse

from recon4d.commands import runner
from recon4d.options import ViewOptions, add_options


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `view` sub-command."""
    p = subparsers.add_parser(
        "view",
        description="Open a recon4d output folder (static or 4D) in a web viewer (viser, extra "
                    "`viewer`): the static cloud, the moving points of the current frame, the "
                    "camera frustums and their trail, with a timeline, play/pause, fps, "
                    "toggles, a confidence threshold and the point size. Runs until Ctrl-C.")
    p.add_argument("folder", metavar="DIR",
                   help="an output folder of `recon4d reconstruct` (trajectory_tum.txt and "
                        "pointcloud.ply, or static.ply and dynamic/ for a 4D folder)")
    add_options(p, ViewOptions)
    p.set_defaults(func=runner("view"))
    return p
