"""`reconstruct`: pair predictions (network, file or oracle) -> global alignment -> every format.

The output folder appears only when complete (staged, then renamed): an error or Ctrl-C at any
stage leaves the previous folder or nothing.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recon4d import align
from recon4d.align.known import KnownCameras
from recon4d.errors import InputError
from recon4d.inference.engine import requested_device
from recon4d.io import writers
from recon4d.io.atomic import atomic_output_dir
from recon4d.io.layout import SCENE_JSON
from recon4d.io.scene_json import check_output_folder, write_scene_json
from recon4d.options import ReconstructOptions
from recon4d.pipeline import cameras, inputs
from recon4d.scene import Scene

__all__ = ["ReconstructOptions", "ReconstructResult", "reconstruct", "summary_line"]

# The network options each prediction source uses (scene.json records only those).
_NETWORK_FIELDS_USED = {
    "input": None,  # all of them
    "oracle": ("size", "graph", "prefilter", "symmetrize", "batch_size", "device"),
    "predictions": ("device",),  # the alignment's device
}


@dataclass
class ReconstructResult:
    """The aligned scene, where it went, the files written and seconds per stage."""

    scene: Scene
    out_dir: Path
    files: list[str]
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return int(self.scene.masks.sum())


def reconstruct(out_dir: str | os.PathLike, input: str | os.PathLike | None = None, *,
                predictions: str | os.PathLike | None = None,
                oracle: str | os.PathLike | None = None,
                options: ReconstructOptions | None = None,
                progress: bool = True) -> ReconstructResult:
    """Reconstruct one of `input` (images folder or video), `predictions` (npz) or `oracle`
    (a `recon4d synth` folder) into `out_dir`; Recon4dError on bad input, nothing written."""
    opts = options or ReconstructOptions()
    start = time.perf_counter()
    out_dir = Path(out_dir)
    sources = {"input": input, "predictions": predictions, "oracle": oracle}
    source = inputs.one_source(sources)
    # every cheap check before any slow work
    formats = (None if opts.outputs.formats is None
               else writers.check_formats(opts.outputs.formats))
    check_output_folder(out_dir, "reconstruct")
    device = requested_device(opts.network.device)
    alignment = opts.alignment
    calib = cameras.read_calibration(alignment.calib) if alignment.calib is not None else None
    prepared = _prepare(input, predictions, oracle, opts, progress)
    timing = {"predict": time.perf_counter() - start}

    tick = time.perf_counter()
    known = _known_cameras(prepared, alignment.focal, calib)
    scene = align.global_align(prepared.predictions, solver=alignment.solver,
                               niter=alignment.niter, known=known,
                               conf_threshold=alignment.conf_threshold, device=str(device),
                               progress=progress)
    _describe(scene, prepared)
    timing["align"] = time.perf_counter() - tick

    tick = time.perf_counter()
    options_record = _options_record(opts, source, sources)
    with atomic_output_dir(out_dir) as staging:
        files = writers.write_scene(scene, staging, formats=formats, sources=prepared.sources)
        timing["write"] = time.perf_counter() - tick
        timing["total"] = time.perf_counter() - start
        record = {**prepared.record, "timing": {k: round(v, 3) for k, v in timing.items()},
                  "result": {"frames": len(scene), "points": int(scene.masks.sum())}}
        write_scene_json(staging, "reconstruct", options_record, record)
    return ReconstructResult(scene, out_dir, sorted(files) + [SCENE_JSON], timing)


def summary_line(result: ReconstructResult) -> str:
    """`N frames, P points, T s (predict a s, align b s, write c s) -> DIR`."""
    t = result.timing
    return (f"{len(result.scene)} frames, {result.num_points} points, {t['total']:.1f} s "
            f"(predict {t['predict']:.1f} s, align {t['align']:.1f} s, write {t['write']:.1f} s)"
            f" -> {result.out_dir}")


def _prepare(input: str | os.PathLike | None, predictions: str | os.PathLike | None,
             oracle: str | os.PathLike | None, opts: ReconstructOptions,
             progress: bool) -> inputs.PreparedInputs:
    """Run the chosen prediction source."""
    if predictions is not None:
        return inputs.from_npz(predictions)
    if oracle is not None:
        return inputs.from_oracle(oracle, opts.network, progress=progress)
    return inputs.from_frames(input, opts.network, opts.frames, progress=progress)


def _known_cameras(prepared: inputs.PreparedInputs, focal: float | None,
                   calib: np.ndarray | None) -> KnownCameras | None:
    """Fixed intrinsics from --focal / --calib, in model-input pixels, or None."""
    if focal is None and calib is None:
        return None
    n = len(prepared.names)
    sizes, crops = prepared.original_sizes, prepared.crops
    if calib is not None:
        return KnownCameras.from_intrinsics(cameras.intrinsics_at_model(calib, sizes, crops, n))
    return KnownCameras(focals=cameras.known_focals(focal, sizes, crops, n))


def _describe(scene: Scene, prepared: inputs.PreparedInputs) -> None:
    """Attach frame names, timestamps and source geometry (global_align refuses non-finite
    geometry itself)."""
    if len(scene) != len(prepared.names):
        raise InputError(f"the predictions cover {len(scene)} images but {len(prepared.names)} "
                         "frames were given")
    scene.image_names = list(prepared.names)
    scene.timestamps = prepared.timestamps
    scene.original_sizes = prepared.original_sizes
    scene.crops = prepared.crops


def _options_record(opts: ReconstructOptions, source: str,
                    sources: dict[str, Any]) -> dict[str, Any]:
    """The options as scene.json records them: only those the prediction source used (an oracle
    or predictions-file run has no network weights), plus the source paths as strings."""
    record = dataclasses.asdict(opts)
    used = _NETWORK_FIELDS_USED[source]
    if used is not None:
        record["network"] = {name: record["network"][name] for name in used}
        del record["frames"]
    record["outputs"]["formats"] = (None if opts.outputs.formats is None
                                    else list(opts.outputs.formats))
    record.update({name: None if value is None else str(value)
                   for name, value in sources.items()})
    return record
