"""`estimate_masks`: per-frame motion masks (Easi3R attention or MonST3R flow) into a folder.

Sources: frames + network (attention: pass 1 with probes, then Easi3R's re-weighted pass 2 with
pass 1's masks, both without heads and from one encoding per frame; flow: one plain pass), a
predictions.npz (no network: its probes, or its images and pointmaps), or a `recon4d synth`
scene (the oracle's predictions; flow only). With `--sam2`, every estimate is refined by SAM 2
(`recon4d.dynamics.sam2_refine`): for attention, pass 1's refined masks steer pass 2 and pass 2's
masks are refined again (spec §8.1 items 8 and 11). Every cheap check (options, checkpoint spec,
--out, the SAM 2 file and config, the pair graph) runs before any slow work, and SAM 2 loads
before the network does; the output folder appears only when complete.

Conventions: N frames; masks and maps at the model resolution H x W (`MotionMasks`); PNG masks at
each frame's original resolution when it is known (frames), else at the model resolution.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recon4d.dynamics.masks import MotionMasks
from recon4d.inference.engine import requested_device
from recon4d.inference.run import check_network, load_network, pair_edges
from recon4d.io import collect_frames
from recon4d.io.atomic import atomic_output_dir
from recon4d.io.images import upright_size
from recon4d.io.layout import (
    DYNAMIC_MAPS_DIR,
    DYNAMIC_MASK_DIR,
    MOTION_OVERLAY_GIF,
    MOTION_OVERLAY_VIDEO,
    SCENE_JSON,
    frame_file,
)
from recon4d.io.scene_json import check_output_folder, write_scene_json
from recon4d.io.writers.files import save_npy
from recon4d.io.writers.masks import write_masks
from recon4d.matching.coords import LoaderGeometry, loader_geometry
from recon4d.matching.masks import mask_to_original
from recon4d.options import MasksOptions, MotionOptions
from recon4d.pipeline.inputs import PreparedInputs, from_npz, from_oracle, one_source
from recon4d.pipeline.motion import (
    check_attention_graph,
    check_motion,
    load_refiner,
    masks_of,
    masks_record,
    network_masks,
    refined,
    resolve_method,
    sam2_record,
)
from recon4d.viz.overlay import frame_rate, tint_moving, write_gif, write_mp4

__all__ = ["MasksResult", "estimate_masks", "masks_of", "refined", "summary_line"]

GREY = 128  # overlay background when the predictions file holds no images


@dataclass
class MaskedFrames:
    """The masks of one source and what it knows about the frames."""

    masks: MotionMasks
    images: np.ndarray | None  # (N, H, W, 3) uint8 model inputs, if known
    timestamps: np.ndarray | None  # (N,) float64 seconds, videos only
    geometries: list[LoaderGeometry] | None  # per frame: model input -> original image
    record: dict[str, Any]  # "inputs" and "model" of scene.json
    sam2: dict[str, Any] | None = None  # the SAM 2 refinement's record, if refined


@dataclass
class MasksResult:
    """The masks, where they went, the files written and seconds per stage."""

    masks: MotionMasks
    out_dir: Path
    files: list[str]
    timing: dict[str, float] = field(default_factory=dict)


def estimate_masks(out: str | os.PathLike, input: str | os.PathLike | None = None, *,
                   predictions: str | os.PathLike | None = None,
                   oracle: str | os.PathLike | None = None,
                   options: MasksOptions | None = None, progress: bool = True) -> MasksResult:
    """Motion masks of one of `input` (images folder or video), `predictions` (npz) or `oracle`
    (a `recon4d synth` folder) into `out`; Recon4dError on bad input, nothing written."""
    opts = options or MasksOptions()
    start = time.perf_counter()
    out = Path(out)
    sources = {"input": input, "predictions": predictions, "oracle": oracle}
    source = one_source(sources)
    if input is not None:
        check_network(opts.network)
    if predictions is not None:
        prepared = from_npz(predictions)
        method = resolve_method(opts.motion, source, prepared.predictions.has_probes)
    else:
        method = resolve_method(opts.motion, source)
    check_motion(opts.motion, method)
    check_output_folder(out, "masks")

    if input is not None:
        frames = _from_frames(input, opts, method, progress)
    elif predictions is not None:
        frames = _from_npz(prepared, opts, method)
    else:
        frames = _from_oracle(oracle, opts, progress)
    timing = {"masks": time.perf_counter() - start}

    tick = time.perf_counter()
    with atomic_output_dir(out) as staging:
        files = _write_outputs(staging, frames)
        record = {**frames.record, "masks": _masks_record(frames, opts.motion, method)}
        timing["write"] = time.perf_counter() - tick
        timing["total"] = time.perf_counter() - start
        record["timing"] = {k: round(v, 3) for k, v in timing.items()}
        write_scene_json(staging, "masks", _options_record(opts, source, sources), record)
    return MasksResult(frames.masks, out, sorted(files) + [SCENE_JSON], timing)


def summary_line(result: MasksResult) -> str:
    """`N frames, method, P % moving, T s -> DIR`."""
    masks = result.masks
    return (f"{len(masks.masks)} frames, {masks.method} (threshold {masks.threshold:.3g}), "
            f"{100 * masks.masks.mean():.1f} % moving, {result.timing['total']:.1f} s "
            f"-> {result.out_dir}")


def _from_frames(input: str | os.PathLike, opts: MasksOptions, method: str,
                 progress: bool) -> MaskedFrames:
    """Frames -> network pass(es) -> masks; the graph is checked before the weights load."""
    source = collect_frames(input, fps=opts.frames.fps, num_frames=opts.frames.num_frames)
    source.require(2)
    if method == "attention":
        check_attention_graph(pair_edges(len(source), opts.network)[0], len(source))
    refiner = load_refiner(opts.motion, requested_device(opts.network.device))
    loaded = load_network(source, opts.network, same_shape=True)
    # attention needs only the probes: the heads are skipped (no pointmaps in these predictions)
    run, masks = network_masks(loaded, opts.motion, method, refiner,
                               heads=method != "attention", progress=progress)
    geometries = [loader_geometry(*upright_size(frame), size=loaded.size)
                  for frame in source.frames]
    return MaskedFrames(masks, run.predictions.images, source.timestamps, geometries,
                        run.record(), sam2_record(refiner))


def _from_npz(prepared: PreparedInputs, opts: MasksOptions, method: str) -> MaskedFrames:
    """A predictions.npz -> masks (no network); model resolution throughout."""
    preds = prepared.predictions
    record = prepared.record
    record["inputs"]["probes"] = preds.has_probes
    images = preds.images if isinstance(preds.images, np.ndarray) else None
    masks = masks_of(preds, opts.motion, method)
    refiner = load_refiner(opts.motion, requested_device(opts.network.device))
    return MaskedFrames(refined(masks, images, refiner), images, prepared.timestamps, None,
                        record, sam2_record(refiner))


def _from_oracle(scene_dir: str | os.PathLike, opts: MasksOptions,
                 progress: bool) -> MaskedFrames:
    """A `recon4d synth` scene -> oracle predictions (default corruption) -> flow masks, at the
    scene's resolution (the oracle refuses a size that would resize it)."""
    prepared = from_oracle(scene_dir, opts.network, progress=progress, static=False)
    preds = prepared.predictions
    masks = masks_of(preds, opts.motion, "flow")
    refiner = load_refiner(opts.motion, requested_device(opts.network.device))
    return MaskedFrames(refined(masks, preds.images, refiner), preds.images,
                        prepared.timestamps, None, prepared.record, sam2_record(refiner))


def _write_outputs(staging: Path, frames: MaskedFrames) -> list[str]:
    """PNG masks (original resolution when known), float32 maps, overlay GIF and MP4."""
    masks = frames.masks
    originals = (list(masks.masks) if frames.geometries is None else
                 [mask_to_original(torch.from_numpy(m), g)
                  for m, g in zip(masks.masks, frames.geometries, strict=True)])
    files = write_masks(originals, staging, DYNAMIC_MASK_DIR)
    for index, dynamic_map in enumerate(masks.maps):
        name = frame_file(DYNAMIC_MAPS_DIR, index, ".npy")
        save_npy(staging / name, dynamic_map.astype(np.float32))
        files.append(name)
    images = (frames.images if frames.images is not None
              else np.full((*masks.masks.shape, 3), GREY, np.uint8))
    tinted = tint_moving(images, masks.masks)
    fps = frame_rate(frames.timestamps)
    write_gif(tinted, staging / MOTION_OVERLAY_GIF, fps)
    files.append(MOTION_OVERLAY_GIF)
    if write_mp4(tinted, staging / MOTION_OVERLAY_VIDEO, fps):
        files.append(MOTION_OVERLAY_VIDEO)
    return files


def _masks_record(frames: MaskedFrames, motion: MotionOptions, method: str) -> dict[str, Any]:
    """What scene.json says about the masks."""
    masks = frames.masks
    return {**masks_record(masks, motion, method, None), "sam2": frames.sam2,
            "frames": len(masks.masks), "model_size": list(masks.masks.shape[1:])}


def _options_record(opts: MasksOptions, source: str,
                    sources: dict[str, Any]) -> dict[str, Any]:
    """The options as scene.json records them, plus the source paths as strings."""
    record = dataclasses.asdict(opts)
    if source != "input":
        del record["frames"]
    record.update({name: None if value is None else str(value)
                   for name, value in sources.items()})
    return record

