"""`recon4d eval` flags: metrics of output folders against a benchmark folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from recon4d.commands import runner
from recon4d.options import GT_FORMATS, EvalOptions, add_options, at_least


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `eval` sub-command."""
    p = subparsers.add_parser(
        "eval",
        description="Evaluate a recon4d output folder (or a folder of them, one per sequence) "
                    "against a ground-truth folder; prints tables and writes the metrics as JSON.")
    p.add_argument("pred_dir", type=Path, help="recon4d output folder, or folder of them")
    p.add_argument("gt_dir", type=Path, help="benchmark sequence or dataset folder")
    p.add_argument("--gt-format", default="auto", choices=("auto", *GT_FORMATS))
    p.add_argument("--out", type=Path, help="JSON file to write (default PRED_DIR/metrics.json)")
    p.add_argument("--sequence", help="ground-truth sequence to use when GT_DIR holds several")
    frames = p.add_argument_group("Ground-truth frames the prediction was made from")
    frames.add_argument("--start", type=at_least(0), help="first frame (default 0)")
    frames.add_argument("--stride", type=at_least(1),
                        help="take every STRIDE-th frame (default 1)")
    frames.add_argument("--max-frames", type=at_least(1),
                        help="at most this many frames (default all)")
    add_options(p, EvalOptions)
    p.set_defaults(func=runner("eval"))
    return p
