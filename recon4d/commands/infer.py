"""`recon4d infer` flags: run the pair network over a pair graph of frames."""

from __future__ import annotations

import argparse

from recon4d.commands import add_out, runner
from recon4d.options import InferOptions, add_options
from recon4d.options.batch import ShardOptions


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `infer` sub-command."""
    p = subparsers.add_parser(
        "infer",
        description="Run the DUSt3R/MASt3R/MonST3R pair network over a pair graph of the input "
                    "frames and write predictions.npz and scene.json into --out (atomically). With "
                    "--workers N the pairs are split across N Ray actors (locally or on a "
                    "cluster with --ray) and gathered in the same order, with the same values.")
    p.add_argument("input", help="a folder of images or a video file")
    add_out(p, "infer")
    add_options(p, InferOptions)
    add_options(p, ShardOptions)
    p.set_defaults(func=runner("infer"))
    return p
