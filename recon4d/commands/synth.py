"""`recon4d synth` flags: render a synthetic dynamic scene with ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from recon4d.commands import runner
from recon4d.options import SynthOptions, add_options


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `synth` sub-command."""
    p = subparsers.add_parser(
        "synth",
        description="Render a seeded textured room with moving boxes: RGB frames plus depth, "
                    "masks, instances, poses, intrinsics, optical and scene flow.")
    p.add_argument("out", type=Path, help="output folder (replaced only if it holds a scene)")
    add_options(p, SynthOptions)
    p.set_defaults(func=runner("synth"))
    return p
