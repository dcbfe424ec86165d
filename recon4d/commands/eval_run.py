"""`recon4d eval`: evaluate, print the tables, write the JSON report."""

from __future__ import annotations

import argparse

from recon4d.eval.evaluate import evaluate
from recon4d.eval.readers import FrameSelection
from recon4d.eval.report import format_table, write_report_json
from recon4d.io.atomic import check_output_file
from recon4d.io.layout import METRICS_FILE
from recon4d.options import EvalOptions, options_from_args


def run(args: argparse.Namespace) -> int:
    """Evaluate PRED_DIR against GT_DIR; metrics to --out (default PRED_DIR/metrics.json)."""
    options = options_from_args(EvalOptions, args)
    out = args.out or args.pred_dir / METRICS_FILE
    check_output_file(out)
    given = {name: getattr(args, name) for name in ("start", "stride", "max_frames")}
    selection = FrameSelection(**{k: v for k, v in given.items() if v is not None})
    report = evaluate(args.pred_dir, args.gt_dir, args.gt_format, selection, options,
                      args.sequence)
    write_report_json(out, report)
    print(format_table(report))
    print(f"\nmetrics written to {out}")
    return 0
