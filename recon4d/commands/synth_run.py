"""`recon4d synth`: generate a synthetic scene, write it atomically, print a summary."""

from __future__ import annotations

import argparse
import dataclasses
import time

from recon4d.io.scene_json import check_output_folder
from recon4d.options import SynthOptions, options_from_args
from recon4d.synthetic.scene import generate_scene
from recon4d.synthetic.scene_io import write_scene


def run(args: argparse.Namespace) -> int:
    """Check OUT, render, write, summarise."""
    options = options_from_args(SynthOptions, args)
    check_output_folder(args.out, "synth")
    start = time.perf_counter()
    scene = generate_scene(**dataclasses.asdict(options), progress=True)
    write_scene(scene, args.out, progress=True)
    valid = scene.depth > 0
    print(f"wrote {args.out}: {scene.num_frames} frames {options.width}x{options.height}, "
          f"{options.movers} movers, trajectory {options.trajectory}, seed {options.seed}")
    print(f"  depth {scene.depth[valid].min():.2f}..{scene.depth.max():.2f}, "
          f"dynamic pixels {scene.dynamic_mask.mean():.1%}, "
          f"valid flow {scene.flow_valid.mean():.1%}, {time.perf_counter() - start:.1f} s")
    return 0
