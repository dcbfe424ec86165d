"""`recon4d infer`: frames -> pair graph -> network predictions in predictions.npz."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import time
from pathlib import Path

from recon4d.errors import OptionError
from recon4d.inference.run import NetworkRun, check_network, load_network, run_network
from recon4d.io import FrameSource, collect_frames
from recon4d.io.atomic import atomic_output_dir
from recon4d.io.layout import PREDICTIONS_FILE
from recon4d.io.scene_json import check_output_folder, write_scene_json
from recon4d.models.specs import parse_spec
from recon4d.options import InferOptions, options_from_args
from recon4d.options.batch import ShardOptions


def run(args: argparse.Namespace) -> int:
    """Check the options and --out, run the network, write predictions.npz and scene.json."""
    start = time.perf_counter()
    options = options_from_args(InferOptions, args)
    shard = options_from_args(ShardOptions, args)
    out = Path(args.out)
    check_output_folder(out, "infer")
    check_sources(options, shard)
    source = collect_frames(args.input, fps=options.frames.fps,
                            num_frames=options.frames.num_frames)
    net = predict(source, options, shard)
    record = {"input": args.input, **dataclasses.asdict(options)}
    with atomic_output_dir(out) as staging:
        net.predictions.save_npz(staging / PREDICTIONS_FILE)
        write_scene_json(staging, "infer", record, net.record())
    seconds = time.perf_counter() - start
    print(f"recon4d infer: {len(source)} frames, {len(net.predictions)} pairs, {seconds:.1f} s "
          f"-> {out / PREDICTIONS_FILE}")
    return 0


def check_sources(options: InferOptions, shard: ShardOptions) -> None:
    """Refuse bad options before decoding frames. Sharded, the device is checked by the actors
    (the driver of a GPU cluster may have none) and the probes are refused (their per-image
    features are picked across all pairs)."""
    if shard.workers is None:
        check_network(options.network)
        return
    parse_spec(options.network.weights)
    if options.probes:
        raise OptionError("--probes cannot be combined with --workers; run without --workers")


def predict(source: FrameSource, options: InferOptions, shard: ShardOptions) -> NetworkRun:
    """The network's predictions of every pair: in this process, or on `--workers` Ray actors
    (one GPU each with --device cuda)."""
    if shard.workers is None:
        return run_network(source, options.network, probes=options.probes)
    from recon4d.cluster.sharded import run_sharded

    gpus = 1.0 if options.network.device == "cuda" else 0.0
    return run_sharded(source, functools.partial(load_network, network=options.network), shard,
                       gpus=gpus)
