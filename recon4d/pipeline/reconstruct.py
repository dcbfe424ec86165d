"""`reconstruct`: pair predictions (network, file or oracle) -> global alignment -> every format.

The output folder appears only when complete (staged, then renamed): an error or Ctrl-C at any
stage leaves the previous folder or nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from recon4d import align
from recon4d.align.known import KnownCameras
from recon4d.align.sparse import Matcher, SparseSettings
from recon4d.align.tsdf import refine_scene_tsdf
from recon4d.align.video import VideoTerms
from recon4d.dynamics.masks import MotionMasks
from recon4d.dynamics.sam2_refine import Sam2Refiner
from recon4d.errors import InputError, OptionError
from recon4d.inference import PairPredictions
from recon4d.inference.engine import requested_device
from recon4d.inference.pair_store import PairStore
from recon4d.inference.run import check_network, load_network, pair_edges
from recon4d.io import collect_frames, writers
from recon4d.io.atomic import atomic_output_dir
from recon4d.io.images import upright_size
from recon4d.io.layout import SCENE_JSON
from recon4d.io.scene_json import check_output_folder, write_scene_json
from recon4d.matching import match_descriptors
from recon4d.matching.coords import loader_geometry
from recon4d.options import (
    AlignOptions,
    MatchOptions,
    MotionOptions,
    ReconstructOptions,
    VideoOptions,
)
from recon4d.pipeline import cameras, inputs
from recon4d.pipeline.dynamic import (
    Motion,
    frames_method,
    masks_given,
    video_flows,
    video_terms,
)
from recon4d.pipeline.long_video import (
    align_windows,
    store_parent,
    store_predictions,
    window_flow_masks,
    windows_for,
)
from recon4d.pipeline.motion import (
    check_attention_graph,
    check_motion,
    load_refiner,
    masks_of,
    masks_record,
    network_masks,
    refined,
    resolve_method,
)
from recon4d.pipeline.user_masks import mask_files, read_motion_masks
from recon4d.scene import Scene

logger = logging.getLogger(__name__)

__all__ = ["ReconstructOptions", "ReconstructResult", "reconstruct", "sparse_matcher",
           "summary_line"]

ORACLE_DESC_DIM = 24  # MASt3R's descriptor size, for the oracle of a sparse run

# The network options each prediction source uses (scene.json records only those).
_NETWORK_FIELDS_USED = {
    "input": None,  # all of them
    "oracle": ("size", "graph", "prefilter", "symmetrize", "batch_size", "device"),
    "predictions": ("device",),  # the alignment's device
}


# The alignment options only one method uses (scene.json records those of the method run; a
# record without "align" is a dense run, as before the sparse method existed).
_DENSE_FIELDS = ("solver", "niter")
_SPARSE_FIELDS = ("sparse_tree", "sparse_level", "sparse_schedule", "shared_intrinsics",
                  "match_cache")


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
    with contextlib.ExitStack() as stack:
        prepared, motion, windowed = _prepare(input, predictions, oracle, opts, progress,
                                              stack, out_dir)
        timing = {"predict": time.perf_counter() - start}

        tick = time.perf_counter()
        flows = _flows(prepared, motion, opts, progress)
        timing["flow"] = time.perf_counter() - tick
        tick = time.perf_counter()
        known = _known_cameras(prepared, alignment.focal, calib)
        kwargs = {"solver": alignment.solver, "niter": alignment.niter,
                  "conf_threshold": alignment.conf_threshold, "device": str(device),
                  **_sparse_kwargs(alignment)}
        scene = _align(prepared, motion, windowed, flows, opts, known, kwargs, progress)
        if alignment.tsdf > 0:
            scene = refine_scene_tsdf(scene, alignment.tsdf, device=device, progress=progress)
    _describe(scene, prepared)
    timing["align"] = time.perf_counter() - tick

    tick = time.perf_counter()
    options_record = _options_record(opts, source, sources)
    with atomic_output_dir(out_dir) as staging:
        files = writers.write_scene(scene, staging, formats=formats, sources=prepared.sources)
        timing["write"] = time.perf_counter() - tick
        timing["total"] = time.perf_counter() - start
        record = {**prepared.record, "motion": motion.record or {"method": "none"},
                  "timing": {k: round(v, 3) for k, v in timing.items()},
                  "result": {"frames": len(scene), "points": int(scene.masks.sum())}}
        write_scene_json(staging, "reconstruct", options_record, record)
    return ReconstructResult(scene, out_dir, sorted(files) + [SCENE_JSON], timing)


def _align(prepared: inputs.PreparedInputs, motion: Motion, windowed: Windowed,
           flows: np.ndarray | None, opts: ReconstructOptions, known: KnownCameras | None,
           kwargs: dict[str, Any], progress: bool) -> Scene:
    """Global alignment in one piece, or window by window from the pairs on disk; with the
    video terms on the dynamic path."""
    if windowed is None:  # (sparse: the motion masks keep movers out of the matches)
        video = None if motion.masks is None else video_terms(motion.masks, flows, opts.video)
        return align.global_align(prepared.predictions, known=known, progress=progress,
                                  video=video, **kwargs)
    store, windows = windowed

    def terms(frames: np.ndarray, positions: np.ndarray) -> VideoTerms:
        return video_terms(motion.masks[frames], None if flows is None else flows[positions],
                           opts.video)

    scene = align_windows(store, windows, known, None if motion.masks is None else terms,
                          kwargs, progress)
    scene.dynamic_masks = motion.masks
    return scene


# seeds per pair of the sparse matcher's grid, at least (the 8-pixel grid gives 3,072 on a
# 512x384 input; smaller inputs get a finer grid instead of fewer matches)
SPARSE_MIN_SEEDS = 512


def sparse_matcher(options: MatchOptions | None = None) -> Matcher:
    """The matcher of the sparse alignment: `recon4d.matching.match_descriptors` with
    MASt3R's sparse-GA settings (confidence = geometric mean, no border filter) by default,
    plus sub-pixel matches and at least SPARSE_MIN_SEEDS seeds per pair (docs/sparse.md)."""
    options = options or MatchOptions(border=0, conf_mode="geometric", subpixel=True,
                                      min_seeds=SPARSE_MIN_SEEDS)
    return functools.partial(match_descriptors, options=options)


def _sparse_kwargs(alignment: AlignOptions) -> dict[str, Any]:
    """`global_align` arguments of the alignment method (none for the dense one)."""
    if alignment.align != "sparse":
        return {}
    settings = SparseSettings(tree=alignment.sparse_tree, level=alignment.sparse_level,
                              schedule=alignment.sparse_schedule,
                              shared_intrinsics=alignment.shared_intrinsics)
    return {"method": "sparse", "matcher": sparse_matcher(), "sparse": settings,
            "match_cache": alignment.match_cache}


def _refuse_sparse_windows(opts: ReconstructOptions, windows: list[range]) -> None:
    """The sparse alignment runs in one piece: OptionError when the frames need windows."""
    if opts.alignment.align == "sparse" and len(windows) > 1:
        raise OptionError(f"--align sparse aligns the whole sequence at once, but it is split "
                          f"into {len(windows)} windows; raise --window or use --align dense")


def require_descriptors(preds: PairPredictions, source: str) -> None:
    """InputError unless the predictions carry MASt3R descriptors (for --align sparse)."""
    if not preds.groups or "desc" not in preds.groups[0].pred1:
        raise InputError(f"{source}: the predictions hold no descriptors: --align sparse needs "
                         "a MASt3R checkpoint (DUSt3R and MonST3R give none); use --align dense")


def summary_line(result: ReconstructResult) -> str:
    """`N frames, P points, T s (predict a s, align b s, write c s) -> DIR`."""
    t = result.timing
    moving = result.scene.dynamic_masks
    motion = "" if moving is None else f", {100 * moving.mean():.1f} % moving"
    return (f"{len(result.scene)} frames{motion}, {result.num_points} points, "
            f"{t['total']:.1f} s (predict {t['predict']:.1f} s, flow {t['flow']:.1f} s, "
            f"align {t['align']:.1f} s, write {t['write']:.1f} s) -> {result.out_dir}")


Windowed = tuple[PairStore, list[range]] | None  # the pairs on disk and the windows, or None


def _prepare(input: str | os.PathLike | None, predictions: str | os.PathLike | None,
             oracle: str | os.PathLike | None, opts: ReconstructOptions, progress: bool,
             stack: contextlib.ExitStack, out_dir: Path
             ) -> tuple[inputs.PreparedInputs, Motion, Windowed]:
    """Run the chosen prediction source and find what moves (checks before slow work); a
    video longer than a window leaves its pairs in a store on disk (closed by `stack`)."""
    motion, video = opts.motion, opts.video
    if input is not None:
        return _prepare_frames(input, opts, progress, stack, out_dir)
    if predictions is not None:
        prepared = inputs.from_npz(predictions)
        preds = prepared.predictions
        method = _file_method(motion, video, "predictions", preds.has_probes,
                              isinstance(preds.images, np.ndarray))
    else:
        method = _file_method(motion, video, "oracle", False, True)
    check_motion(motion, method)
    sparse = opts.alignment.align == "sparse"
    if predictions is not None and sparse:
        require_descriptors(preds, str(predictions))
    if oracle is not None:
        prepared = inputs.from_oracle(
            oracle, opts.network, progress=progress, static=method == "none",
            check_graph=lambda n, edges: windows_for(n, edges, video.window),
            desc_dim=ORACLE_DESC_DIM if sparse else 0)
    preds = prepared.predictions
    if method in ("none", "given"):
        found = _given(prepared, video, None) if method == "given" else Motion("none")
    else:
        refiner = load_refiner(motion, requested_device(opts.network.device))
        found = _estimated(method, refined(masks_of(preds, motion, method), preds.images,
                                           refiner), motion, refiner)
    windows = windows_for(len(prepared.names), preds.edges, video.window)
    _refuse_sparse_windows(opts, windows)
    if len(windows) == 1:
        return prepared, found, None
    height, width = (int(v) for v in preds.true_shape1[0])
    store = stack.enter_context(PairStore(store_parent(out_dir), preds.edges,
                                          len(prepared.names), height, width))
    store_predictions(store, preds)
    return prepared, found, (store, windows)


def _file_method(motion: MotionOptions, video: VideoOptions, source: str, has_probes: bool,
                 has_images: bool) -> str:
    """The estimator for predictions from a file or the oracle: given masks, the chosen one,
    or for auto attention with probes, flow with images, else the static path."""
    if masks_given(motion, video):
        return "given"
    if motion.motion == "none":
        return "none"
    method = resolve_method(motion, source, has_probes)
    if motion.motion == "auto" and method == "flow" and not has_images:
        logger.warning("the predictions hold neither attention probes nor images: no motion "
                       "masks, static path")
        return "none"
    return method


def _prepare_frames(input: str | os.PathLike, opts: ReconstructOptions, progress: bool,
                    stack: contextlib.ExitStack, out_dir: Path
                    ) -> tuple[inputs.PreparedInputs, Motion, Windowed]:
    """Frames -> (masks and) network predictions; graph, windows and files checked before the
    weights load; a long video streams its pointmaps to disk."""
    motion, network = opts.motion, opts.network
    check_network(network)
    source = collect_frames(input, fps=opts.frames.fps, num_frames=opts.frames.num_frames)
    source.require(2)
    method = frames_method(motion, opts.video, source)
    check_motion(motion, method)
    if method == "given":
        mask_files(opts.video.masks, len(source))  # the count, before the weights load
    edges = pair_edges(len(source), network)[0]
    if method == "attention":
        check_attention_graph(edges, len(source))
    windows = windows_for(len(source), edges, opts.video.window)
    _refuse_sparse_windows(opts, windows)
    refiner = load_refiner(motion, requested_device(network.device)) if method in (
        "attention", "flow") else None
    loaded = load_network(source, network, same_shape=True)
    if opts.alignment.align == "sparse" and (loaded.config is None
                                             or not loaded.config.desc_dim):
        raise InputError(f"{network.weights}: this checkpoint gives no descriptors: --align "
                         "sparse needs a MASt3R checkpoint; use --align dense")
    store = None
    if len(windows) > 1:
        height, width = (int(v) for v in loaded.views[0]["true_shape"].reshape(-1)[:2])
        store = stack.enter_context(PairStore(store_parent(out_dir), loaded.edges,
                                              len(source), height, width))
    sink = None if store is None else store.add
    if method == "attention":
        run, estimate = network_masks(loaded, motion, method, refiner, heads=True,
                                      progress=progress, sink=sink)
        found = _estimated(method, estimate, motion, refiner)
    else:
        run = loaded.run(progress=progress, sink=sink)
        found = Motion(method)
    prepared = inputs.from_run(run)
    if store is not None:
        store.add_images(run.predictions.images)
    if method == "flow":
        if store is None:
            estimate = refined(masks_of(run.predictions, motion, method),
                               run.predictions.images, refiner)
            found = _estimated(method, estimate, motion, refiner)
        else:
            estimate = window_flow_masks(store, windows, motion)
            found = _estimated(method, refined(estimate, run.predictions.images, refiner),
                               motion, refiner)
    elif method == "given":
        geometries = [loader_geometry(*upright_size(frame), size=loaded.size)
                      for frame in source.frames]
        found = _given(prepared, opts.video, geometries)
    return prepared, found, None if store is None else (store, windows)


def _estimated(method: str, estimate: MotionMasks, motion: MotionOptions,
               refiner: Sam2Refiner | None) -> Motion:
    """The Motion of an estimator's masks, with its scene.json record."""
    return Motion(method, estimate.masks, estimate,
                  masks_record(estimate, motion, method, refiner))


def _given(prepared: inputs.PreparedInputs, video: VideoOptions,
           geometries: list | None) -> Motion:
    """The user's masks (`--masks DIR`) on the predictions' model grid."""
    preds = prepared.predictions
    height, width = (int(v) for v in preds.true_shape1[0])
    masks = read_motion_masks(video.masks, len(prepared.names), (height, width), geometries)
    return Motion("given", masks, None, {"method": "given", "folder": str(video.masks),
                                         "moving_fraction": round(float(masks.mean()), 6)})


def _flows(prepared: inputs.PreparedInputs, motion: Motion, opts: ReconstructOptions,
           progress: bool) -> np.ndarray | None:
    """Optical flow of every pair for the flow term (dynamic path with the frames known)."""
    preds = prepared.predictions
    if motion.masks is None or opts.video.flow_weight == 0:
        return None
    if not isinstance(preds.images, np.ndarray):
        logger.warning("no frames in the predictions: the alignment runs without its flow term")
        return None
    with tqdm(total=len(preds.edges), desc=f"optical flow ({opts.motion.flow})", unit="pair",
              disable=not progress) as bar:
        return video_flows(preds.images, preds.edges, opts.motion, progress=bar)


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
    """The options as scene.json records them: only those the prediction source and the
    alignment method used (an oracle or predictions-file run has no network weights), plus the
    source paths as strings."""
    record = dataclasses.asdict(opts)
    used = _NETWORK_FIELDS_USED[source]
    if used is not None:
        record["network"] = {name: record["network"][name] for name in used}
        del record["frames"]
    alignment = record["alignment"]
    unused = _SPARSE_FIELDS + ("align",) if opts.alignment.align == "dense" else _DENSE_FIELDS
    record["alignment"] = {k: v for k, v in alignment.items() if k not in unused}
    record["outputs"]["formats"] = (None if opts.outputs.formats is None
                                    else list(opts.outputs.formats))
    record.update({name: None if value is None else str(value)
                   for name, value in sources.items()})
    return record
