"""`recon4d masks`: build the options, estimate the masks, print the summary line."""

from __future__ import annotations

import argparse

from recon4d.options import MasksOptions, options_from_args
from recon4d.pipeline.masks import estimate_masks, summary_line


def run(args: argparse.Namespace) -> int:
    """Estimate motion masks into --out (the pipeline checks --out before any slow work)."""
    options = options_from_args(MasksOptions, args)
    result = estimate_masks(args.out, args.input, predictions=args.predictions,
                            oracle=args.oracle, options=options)
    print(f"recon4d masks: {summary_line(result)}")
    return 0
