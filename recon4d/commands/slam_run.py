"""`recon4d slam`: build the options, stream the frames, print the summary line."""

from __future__ import annotations

import argparse

from recon4d.options import options_from_args
from recon4d.options.slam import SlamOptions
from recon4d.pipeline.slam import slam


def run(args: argparse.Namespace) -> int:
    """SLAM into --out (the pipeline checks --out and the checkpoints before any frame)."""
    options = options_from_args(SlamOptions, args)
    result = slam(args.out, args.input, oracle=args.oracle, options=options)
    print(f"recon4d slam: {result.summary()}")
    return 0
