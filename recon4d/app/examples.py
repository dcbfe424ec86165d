"""Examples of the web app: synthetic scenes (`recon4d synth`) rendered on demand, whose ground
truth lets the oracle replace the network and `recon4d eval` score the result."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from recon4d.io.layout import RGB_DIR, SCENE_JSON
from recon4d.options import SynthOptions
from recon4d.synthetic.scene import generate_scene
from recon4d.synthetic.scene_io import write_scene

EXAMPLES_DIR = "examples"  # inside the runs folder, beside the jobs
_RENDERING = threading.Lock()  # two users asking for one example render it once


def example_name(options: SynthOptions) -> str:
    """The folder name of the example rendered with `options`."""
    return (f"synth-{options.frames}f-{options.width}x{options.height}-{options.movers}m-"
            f"{options.trajectory}-seed{options.seed}")


def make_example(runs_dir: Path, options: SynthOptions) -> Path:
    """The scene folder of `options` under `runs_dir/examples`, rendered the first time it is
    asked for (the same options give the same scene, so it is reused)."""
    folder = runs_dir / EXAMPLES_DIR / example_name(options)
    with _RENDERING:
        if not (folder / SCENE_JSON).is_file():
            write_scene(generate_scene(**dataclasses.asdict(options)), folder)
    return folder


def example_frames(scene: Path) -> Path:
    """The folder of an example's colour frames (the input of a job run with a checkpoint)."""
    return scene / RGB_DIR
