"""`recon4d batch` flags: one job over many inputs, as Ray tasks (locally or on a cluster)."""

from __future__ import annotations

import argparse

from recon4d.commands import runner
from recon4d.options import add_options
from recon4d.options.batch import BatchOptions


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `batch` sub-command."""
    p = subparsers.add_parser(
        "batch",
        description="Run one job (reconstruct, masks, slam or infer) over many inputs, one Ray "
                    "task per input, each writing its own output folder DIR/<input name> "
                    "atomically. A rerun skips the inputs whose folder is complete; a failed "
                    "task is run again up to --retries times, then reported with its error, "
                    "and the others go on. Ends with a summary table "
                    "(also DIR/batch_summary.csv) and, for benchmark sequences, the `recon4d "
                    "eval` metrics (DIR/metrics.json). Needs Ray: pip install 'recon4d[cluster]'.")
    p.add_argument("spec", help="YAML file with job, inputs (paths or globs), source (input, "
                                "oracle or predictions), options (the job's long flags without "
                                "the dashes) and resources (cpus, gpus, memory per task)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder of the outputs: one sub-folder per input, batch_summary.csv, "
                        "metrics.json")
    add_options(p, BatchOptions)
    p.set_defaults(func=runner("batch"))
    return p
