"""`recon4d infer`: run the pair network over a pair graph of frames and save predictions.npz."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from recon4d.commands.arguments import add_frame_arguments, add_network_arguments
from recon4d.inference.run import run_network
from recon4d.io import collect_frames
from recon4d.io.atomic import atomic_output_dir
from recon4d.io.scene_json import check_output_folder, write_scene_json

PREDICTIONS_FILE = "predictions.npz"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `infer` sub-command."""
    p = subparsers.add_parser(
        "infer", help="run the pair network on images or a video; writes predictions.npz",
        description="Run the DUSt3R/MASt3R/MonST3R pair network over a pair graph of the input "
                    "frames and write predictions.npz and scene.json into --out (atomically).")
    p.add_argument("input", help="a folder of images or a video file")
    p.add_argument("--out", required=True, help="output folder (replaced atomically if it is a "
                   "previous `recon4d infer` output)")
    add_network_arguments(p)
    add_frame_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Frames -> views -> pairs -> predictions; write predictions.npz and scene.json."""
    start = time.perf_counter()
    out = Path(args.out)
    check_output_folder(out, "infer")
    source = collect_frames(args.input, fps=args.fps, num_frames=args.num_frames)
    net = run_network(source, weights=args.weights, size=args.size, graph=args.graph,
                      prefilter=args.prefilter, symmetrize=not args.no_symmetrize,
                      batch_size=args.batch_size, device=args.device, dtype=args.dtype)
    options = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
    with atomic_output_dir(out) as staging:
        net.predictions.save_npz(staging / PREDICTIONS_FILE)
        write_scene_json(staging, "infer", options, net.record())
    seconds = time.perf_counter() - start
    print(f"recon4d infer: {len(source)} frames, {len(net.predictions)} pairs, {seconds:.1f} s "
          f"-> {out / PREDICTIONS_FILE}")
    return 0
