"""`recon4d reconstruct`: images, a video, a predictions file or a synthetic scene -> 3D scene."""

from __future__ import annotations

import argparse

from recon4d.align import SOLVERS
from recon4d.commands.arguments import (
    add_frame_arguments,
    add_network_arguments,
    nonnegative_int,
)
from recon4d.pipeline import ReconstructOptions, reconstruct, summary_line


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `reconstruct` sub-command."""
    p = subparsers.add_parser(
        "reconstruct", help="images or video -> depth, cameras, point cloud in every format",
        description="Run the pair network (or read its predictions, or use the synthetic "
                    "oracle), align all frames globally and write depth, intrinsics, "
                    "trajectory, point cloud, GLB, COLMAP and transforms.json into --out "
                    "(atomically).")
    p.add_argument("input", nargs="?", default=None,
                   help="a folder of images or a video file (or use --predictions / --oracle)")
    p.add_argument("--out", required=True, help="output folder (replaced atomically if it is a "
                   "previous `recon4d reconstruct` output)")
    p.add_argument("--predictions", default=None,
                   help="align a predictions.npz (from `recon4d infer` or other code) instead "
                        "of running the network; images inside are optional (else grey points)")
    p.add_argument("--oracle", default=None, metavar="SCENE_DIR",
                   help="a `recon4d synth` folder: the ground-truth oracle replaces the network")
    add_network_arguments(p)
    add_frame_arguments(p)
    p.add_argument("--solver", choices=SOLVERS, default="fast",
                   help="fast (default) or adam (the originals' 300-step schedule)")
    p.add_argument("--niter", type=nonnegative_int, default=None,
                   help="solver iterations (default: the solver's own; 0 = initialisation only)")
    p.add_argument("--conf-threshold", type=float, default=3.0,
                   help="keep points with confidence above this (default 3)")
    p.add_argument("--focal", type=float, default=None,
                   help="known focal length in pixels of the original images (fixed)")
    p.add_argument("--calib", default=None,
                   help="JSON calibration at the original resolution: {fx, fy, cx, cy}, "
                        "{\"K\": 3x3} or a 3x3 list (fixed)")
    p.add_argument("--formats", default=None,
                   help="comma-separated subset of the output formats (default: all)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Parse the options, reconstruct, print the summary line."""
    options = ReconstructOptions(
        weights=args.weights, size=args.size, graph=args.graph, prefilter=args.prefilter,
        symmetrize=not args.no_symmetrize, batch_size=args.batch_size, device=args.device,
        dtype=args.dtype, fps=args.fps, num_frames=args.num_frames, solver=args.solver,
        niter=args.niter, conf_threshold=args.conf_threshold, focal=args.focal, calib=args.calib,
        formats=None if args.formats is None else [f.strip() for f in args.formats.split(",")
                                                   if f.strip()])
    result = reconstruct(args.out, args.input, predictions=args.predictions, oracle=args.oracle,
                         options=options)
    print(f"recon4d reconstruct: {summary_line(result)}")
    return 0
