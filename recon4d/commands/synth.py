"""`recon4d synth OUT`: render a synthetic dynamic scene with ground truth into a folder."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from recon4d.commands.arguments import nonnegative_int
from recon4d.io.scene_json import check_output_folder
from recon4d.synthetic.scene import generate_scene
from recon4d.synthetic.scene_io import write_scene
from recon4d.synthetic.trajectories import TRAJECTORIES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `synth` sub-command."""
    p = subparsers.add_parser(
        "synth", help="render a synthetic dynamic scene with ground truth",
        description="Render a seeded textured room with moving boxes: RGB frames plus depth, "
                    "masks, instances, poses, intrinsics, optical and scene flow.")
    p.add_argument("out", type=Path, help="output folder (replaced only if it holds a scene)")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=384)
    p.add_argument("--movers", type=int, default=2, help="number of independently moving boxes")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--trajectory", choices=TRAJECTORIES, default="orbit",
                   help="camera path (rotation = pure rotation, a degenerate case)")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--no-stops", dest="stops", action="store_false",
                   help="movers never pause (default: each pauses once)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate, write atomically and print a summary."""
    check_output_folder(args.out, "synth")
    start = time.perf_counter()
    scene = generate_scene(args.frames, args.width, args.height, args.movers, args.seed,
                           args.trajectory, fps=args.fps, stops=args.stops, progress=True)
    write_scene(scene, args.out, progress=True)
    valid = scene.depth > 0
    print(f"wrote {args.out}: {scene.num_frames} frames {args.width}x{args.height}, "
          f"{args.movers} movers, trajectory {args.trajectory}, seed {args.seed}")
    print(f"  depth {scene.depth[valid].min():.2f}..{scene.depth.max():.2f}, "
          f"dynamic pixels {scene.dynamic_mask.mean():.1%}, "
          f"valid flow {scene.flow_valid.mean():.1%}, {time.perf_counter() - start:.1f} s")
    return 0
