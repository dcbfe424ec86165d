"""`recon4d eval PRED_DIR GT_DIR`: metrics of output folders against a benchmark folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from recon4d.commands.arguments import nonnegative_int, positive_int
from recon4d.errors import Recon4dError
from recon4d.eval.depth import DEPTH_ALIGN_MODES, FIT_SPACES, SCALE_SHIFT_FITS
from recon4d.eval.evaluate import DEFAULT, METRIC_GROUPS, EvalOptions, evaluate
from recon4d.eval.masks import BOUNDARY_TOLERANCE
from recon4d.eval.poses import ALIGN_MODES
from recon4d.eval.readers import GT_FORMATS, FrameSelection
from recon4d.eval.report import format_table, write_report_json
from recon4d.eval.resize import GEOMETRIES, RESIZE_METHODS


def max_depth_arg(text: str) -> float | str | None:
    """`default` (the benchmark's cap), `none` (no cap) or a positive number."""
    if text.lower() in ("default", "none"):
        return None if text.lower() == "none" else DEFAULT
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive, 'none' or 'default'")
    return value


def metrics_arg(text: str) -> tuple[str, ...]:
    """Comma-separated metric groups."""
    groups = tuple(g.strip() for g in text.split(",") if g.strip())
    unknown = [g for g in groups if g not in METRIC_GROUPS]
    if unknown or not groups:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(METRIC_GROUPS)}")
    return groups


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `eval` sub-command."""
    p = subparsers.add_parser(
        "eval", help="evaluate outputs against a benchmark's ground truth",
        description="Evaluate a recon4d output folder (or a folder of them, one per sequence) "
                    "against a ground-truth folder; prints tables and writes the metrics as JSON.")
    p.add_argument("pred_dir", type=Path, help="recon4d output folder, or folder of them")
    p.add_argument("gt_dir", type=Path, help="benchmark sequence or dataset folder")
    p.add_argument("--gt-format", default="auto", choices=("auto", *GT_FORMATS))
    p.add_argument("--out", type=Path, help="JSON file to write (default PRED_DIR/metrics.json)")
    p.add_argument("--sequence", help="ground-truth sequence to use when GT_DIR holds several")
    p.add_argument("--metrics", type=metrics_arg, default=METRIC_GROUPS,
                   help="comma-separated subset of " + ",".join(METRIC_GROUPS))
    frames = p.add_argument_group("ground-truth frames the prediction was made from")
    frames.add_argument("--start", type=nonnegative_int, default=0)
    frames.add_argument("--stride", type=positive_int, default=1)
    frames.add_argument("--max-frames", type=positive_int)
    frames.add_argument("--truncate", action="store_true",
                        help="if frame counts differ, evaluate the common prefix (else: error)")
    poses = p.add_argument_group("poses")
    poses.add_argument("--align", default="sim3", choices=ALIGN_MODES)
    poses.add_argument("--delta", type=positive_int, default=1, help="RPE frame offset")
    poses.add_argument("--consecutive-pairs", action="store_true",
                       help="RPE on pairs (0,d),(d,2d),... instead of all (i,i+d)")
    poses.add_argument("--max-dt", type=float, default=0.01,
                       help="timestamp association tolerance in seconds")
    depth = p.add_argument_group("depth")
    depth.add_argument("--depth-align", default="median", choices=DEPTH_ALIGN_MODES)
    depth.add_argument("--depth-fit", default="l1", choices=SCALE_SHIFT_FITS,
                       help="scale_shift objective (reference = the reference's Adam run)")
    depth.add_argument("--depth-space", default="depth", choices=FIT_SPACES)
    depth.add_argument("--max-depth", type=max_depth_arg, default=DEFAULT,
                       help="depth cap: a number, 'none', or 'default' (Sintel/Bonn 70)")
    depth.add_argument("--resize", default="bicubic", choices=RESIZE_METHODS)
    depth.add_argument("--geometry", default="resize", choices=GEOMETRIES,
                       help="prediction covers the whole GT image (resize) or its centre crop")
    masks = p.add_argument_group("masks and clouds")
    masks.add_argument("--boundary-tolerance", type=float, default=BOUNDARY_TOLERANCE,
                       help="F tolerance: fraction of the image diagonal (>= 1: pixels)")
    masks.add_argument("--cloud-threshold", type=float, default=0.05,
                       help="F-score distance (ground-truth units)")
    masks.add_argument("--cloud-voxel", type=float,
                       help="voxel size for downsampling both clouds (default threshold/2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the tables, write the JSON report."""
    options = EvalOptions(
        metrics=args.metrics, align=args.align, delta=args.delta,
        all_pairs=not args.consecutive_pairs, max_dt=args.max_dt, depth_align=args.depth_align,
        depth_fit=args.depth_fit, depth_space=args.depth_space, max_depth=args.max_depth,
        resize=args.resize, geometry=args.geometry, boundary_tolerance=args.boundary_tolerance,
        truncate=args.truncate, cloud_threshold=args.cloud_threshold,
        cloud_voxel=args.cloud_voxel)
    selection = FrameSelection(args.start, args.stride, args.max_frames)
    report = evaluate(args.pred_dir, args.gt_dir, args.gt_format, selection, options,
                      args.sequence)
    out = args.out or args.pred_dir / "metrics.json"
    try:
        write_report_json(out, report)
    except OSError as exc:
        raise Recon4dError(f"{out}: cannot write the metrics ({exc.strerror or exc})") from None
    print(format_table(report))
    print(f"\nmetrics written to {out}")
    return 0
