"""`reconstruct`: pair predictions (network, file or oracle) -> global alignment -> every format.

The output folder appears only when complete (staged, then renamed): an error or Ctrl-C at any
stage leaves the previous folder or nothing.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recon4d import align
from recon4d.align import SOLVERS
from recon4d.align.known import KnownCameras
from recon4d.errors import InputError, Recon4dError
from recon4d.inference.engine import requested_device
from recon4d.inference.run import DEFAULT_WEIGHTS
from recon4d.io import writers
from recon4d.io.atomic import atomic_output_dir
from recon4d.io.scene_json import check_output_folder, write_scene_json
from recon4d.pipeline import cameras, inputs
from recon4d.scene import Scene


@dataclass
class ReconstructOptions:
    """Every choice of a run (recorded in scene.json); defaults are the command's defaults."""

    weights: str = DEFAULT_WEIGHTS  # checkpoint path, Hugging Face id or registry name
    size: int | None = None  # model input size; None = from the checkpoint
    graph: str = "auto"
    prefilter: str | None = None
    symmetrize: bool = True
    batch_size: int | None = None
    device: str | None = None  # None = cuda when available, else cpu
    dtype: str = "fp32"
    fps: float | None = None
    num_frames: int | None = None
    solver: str = "fast"
    niter: int | None = None  # None = the solver's default
    conf_threshold: float = 3.0
    focal: float | None = None  # pixels of the original images (model pixels for --predictions)
    calib: str | None = None  # JSON K at the original resolution (model pixels for --predictions)
    formats: Sequence[str] | None = None  # None = every writer format


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
    given = [name for name, v in (("INPUT", input), ("--predictions", predictions),
                                  ("--oracle", oracle)) if v is not None]
    if len(given) != 1:
        raise Recon4dError("give exactly one of INPUT (images folder or video), --predictions "
                           f"FILE or --oracle SCENE_DIR (got {', '.join(given) or 'none'})")
    _check_options(opts)
    check_output_folder(out_dir, "reconstruct")
    device = requested_device(opts.device)
    calib = cameras.read_calibration(opts.calib) if opts.calib is not None else None
    prepared = _prepare(input, predictions, oracle, opts, progress)
    timing = {"predict": time.perf_counter() - start}

    tick = time.perf_counter()
    known = _known_cameras(prepared, opts.focal, calib)
    scene = align.global_align(prepared.predictions, solver=opts.solver, niter=opts.niter,
                               known=known, conf_threshold=opts.conf_threshold,
                               device=str(device), progress=progress)
    _describe(scene, prepared)
    timing["align"] = time.perf_counter() - tick

    tick = time.perf_counter()
    formats = tuple(opts.formats) if opts.formats is not None else tuple(writers.FORMATS)
    with atomic_output_dir(out_dir) as staging:
        files = writers.write_scene(scene, staging, formats=formats, sources=prepared.sources)
        timing["write"] = time.perf_counter() - tick
        timing["total"] = time.perf_counter() - start
        record = {**prepared.record, "timing": {k: round(v, 3) for k, v in timing.items()},
                  "result": {"frames": len(scene), "points": int(scene.masks.sum())}}
        write_scene_json(staging, "reconstruct", _options_record(opts, input, predictions,
                                                                 oracle), record)
    return ReconstructResult(scene, out_dir, sorted(files) + ["scene.json"], timing)


def summary_line(result: ReconstructResult) -> str:
    """`N frames, P points, T s (predict a s, align b s, write c s) -> DIR`."""
    t = result.timing
    return (f"{len(result.scene)} frames, {result.num_points} points, {t['total']:.1f} s "
            f"(predict {t['predict']:.1f} s, align {t['align']:.1f} s, write {t['write']:.1f} s)"
            f" -> {result.out_dir}")


def _check_options(opts: ReconstructOptions) -> None:
    """Refuse bad option values before any slow work."""
    if opts.solver not in SOLVERS:
        raise Recon4dError(f"unknown solver {opts.solver!r}; choose {' or '.join(SOLVERS)}")
    if opts.niter is not None and opts.niter < 0:
        raise Recon4dError(f"--niter must be >= 0, got {opts.niter}")
    if not np.isfinite(opts.conf_threshold) or opts.conf_threshold < 1:
        raise Recon4dError(f"--conf-threshold must be a number >= 1 (confidences start at 1), "
                           f"got {opts.conf_threshold}")
    if opts.focal is not None and opts.calib is not None:
        raise Recon4dError("give either --focal or --calib, not both")
    if opts.focal is not None and not (np.isfinite(opts.focal) and opts.focal > 0):
        raise Recon4dError(f"--focal must be a positive number of pixels, got {opts.focal}")
    if opts.formats is not None:
        unknown = [f for f in opts.formats if f not in writers.FORMATS]
        if unknown or not opts.formats:
            raise Recon4dError(f"unknown output format(s) {', '.join(unknown) or '(none given)'};"
                               f" choose from {', '.join(writers.FORMATS)}")


def _prepare(input: str | os.PathLike | None, predictions: str | os.PathLike | None,
             oracle: str | os.PathLike | None, opts: ReconstructOptions,
             progress: bool) -> inputs.PreparedInputs:
    """Run the chosen prediction source."""
    if predictions is not None:
        return inputs.from_npz(predictions)
    if oracle is not None:
        return inputs.from_oracle(oracle, size=opts.size, graph=opts.graph,
                                  prefilter=opts.prefilter, symmetrize=opts.symmetrize,
                                  batch_size=opts.batch_size, progress=progress)
    return inputs.from_frames(input, weights=opts.weights, size=opts.size, graph=opts.graph,
                              prefilter=opts.prefilter, symmetrize=opts.symmetrize,
                              batch_size=opts.batch_size, device=opts.device, dtype=opts.dtype,
                              fps=opts.fps, num_frames=opts.num_frames, progress=progress)


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


def _options_record(opts: ReconstructOptions, input: Any, predictions: Any,
                    oracle: Any) -> dict[str, Any]:
    """The options as scene.json records them (sources included, paths as strings)."""
    record = dataclasses.asdict(opts)
    record["formats"] = list(opts.formats) if opts.formats is not None else None
    record.update(input=input and str(input), predictions=predictions and str(predictions),
                  oracle=oracle and str(oracle))
    return record
