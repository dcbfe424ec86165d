"""`recon4d infer`: frames -> pair graph -> network predictions in predictions.npz."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from recon4d.inference.run import check_network, run_network
from recon4d.io import collect_frames
from recon4d.io.atomic import atomic_output_dir
from recon4d.io.layout import PREDICTIONS_FILE
from recon4d.io.scene_json import check_output_folder, write_scene_json
from recon4d.options import InferOptions, options_from_args


def run(args: argparse.Namespace) -> int:
    """Check the options and --out, run the network, write predictions.npz and scene.json."""
    start = time.perf_counter()
    options = options_from_args(InferOptions, args)
    out = Path(args.out)
    check_output_folder(out, "infer")
    check_network(options.network)
    source = collect_frames(args.input, fps=options.frames.fps,
                            num_frames=options.frames.num_frames)
    net = run_network(source, options.network, probes=options.probes)
    record = {"input": args.input, **dataclasses.asdict(options)}
    with atomic_output_dir(out) as staging:
        net.predictions.save_npz(staging / PREDICTIONS_FILE)
        write_scene_json(staging, "infer", record, net.record())
    seconds = time.perf_counter() - start
    print(f"recon4d infer: {len(source)} frames, {len(net.predictions)} pairs, {seconds:.1f} s "
          f"-> {out / PREDICTIONS_FILE}")
    return 0
