"""`recon4d reconstruct`: build the options, reconstruct, print the summary line."""

from __future__ import annotations

import argparse

from recon4d.options import ReconstructOptions, options_from_args
from recon4d.pipeline import reconstruct, summary_line


def run(args: argparse.Namespace) -> int:
    """Reconstruct into --out (the pipeline checks --out before any slow work)."""
    options = options_from_args(ReconstructOptions, args)
    result = reconstruct(args.out, args.input, predictions=args.predictions, oracle=args.oracle,
                         options=options)
    print(f"recon4d reconstruct: {summary_line(result)}")
    return 0
