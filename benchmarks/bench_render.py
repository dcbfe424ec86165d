"""Headless 4D render benchmark, CPU: `write_render` of a 100-frame 512x288 dynamic scene.

The scene is `recon4d synth`'s generator (a textured room, 2 moving boxes, seed 0) taken as a
reconstruction: its true depth, cameras and motion masks. Its 100 x 512 x 288 pixels give
~14 M static points, of which the render draws a random 1 M (`STATIC_BUDGET`) in every frame,
plus the moving points of the frame. Printed side by side, in one run, with torch's default
thread count and with one thread (on a loaded machine one thread avoids waiting for
descheduled worker threads): building the static cloud alone, then for each point size the
whole `write_render` (static cloud, camera path, 100 frames, H.264 encoding).

    python benchmarks/bench_render.py [--frames 100] [--point-sizes 1 2]

Times are wall-clock seconds on a shared machine: other jobs can inflate them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from recon4d.scene import Scene
from recon4d.synthetic.scene import generate_scene
from recon4d.viz.render import STATIC_BUDGET, static_cloud, write_render

WIDTH, HEIGHT = 512, 288


def synthetic_scene(frames: int) -> Scene:
    """The generator's scene as a reconstruction (true geometry, every pixel with depth kept)."""
    synth = generate_scene(frames=frames, width=WIDTH, height=HEIGHT, movers=2, seed=0)
    return Scene(images=synth.rgb, depths=synth.depth, confs=np.ones_like(synth.depth),
                 intrinsics=synth.intrinsics, poses_c2w=synth.poses_c2w,
                 masks=synth.depth > 0, timestamps=synth.timestamps,
                 dynamic_masks=synth.dynamic_mask)


def timed(label: str, func) -> float:
    """Run `func` once, print and return its wall time."""
    start = time.perf_counter()
    func()
    seconds = time.perf_counter() - start
    print(f"{label:<40s} {seconds:7.2f} s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--point-sizes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    start = time.perf_counter()
    scene = synthetic_scene(args.frames)
    static = scene.masks & ~scene.dynamic_masks
    print(f"{args.frames} frames {WIDTH}x{HEIGHT}: {int(static.sum())} static points, "
          f"{int((scene.masks & scene.dynamic_masks).sum()) / args.frames:.0f} moving per "
          f"frame, {STATIC_BUDGET} drawn per frame (scene made in "
          f"{time.perf_counter() - start:.1f} s)")
    default_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "render_4d.mp4"
        for threads in dict.fromkeys((default_threads, 1)):
            torch.set_num_threads(threads)
            timed(f"static cloud threads={threads}", lambda: static_cloud(scene))
            for point_size in args.point_sizes:
                seconds = timed(f"write_render point_size={point_size} threads={threads}",
                                lambda size=point_size: write_render(scene, path,
                                                                     point_size=size))
                print(f"{'':<40s} {seconds / args.frames * 1000:7.0f} ms/frame, "
                      f"{path.stat().st_size / 1e6:.1f} MB")
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
