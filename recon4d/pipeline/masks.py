"""`estimate_masks`: per-frame motion masks (Easi3R attention or MonST3R flow) into a folder.

Sources: frames + network (attention: pass 1 with probes, then Easi3R's re-weighted pass 2 with
pass 1's masks, both without heads and from one encoding per frame; flow: one plain pass), a
predictions.npz (no network: its probes, or its images and pointmaps), or a `recon4d synth`
scene (the oracle's predictions; flow only). Every cheap check (options, checkpoint spec, --out,
the pair graph) runs before any slow work; the output folder appears only when complete.

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

from recon4d.dynamics.aggregation import check_edge_coverage
from recon4d.dynamics.attention import attention_masks
from recon4d.dynamics.flow import flow_masks
from recon4d.dynamics.masks import MotionMasks
from recon4d.errors import InputError, OptionError
from recon4d.inference import PairPredictions
from recon4d.inference.engine import has_encoder
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
from recon4d.options import MasksOptions
from recon4d.pipeline.inputs import from_npz, from_oracle, one_source
from recon4d.viz.overlay import tint_moving, write_gif, write_mp4

__all__ = ["MasksResult", "estimate_masks", "masks_of", "summary_line"]

OVERLAY_FPS = 10.0  # overlay frame rate when the frames have no timestamps
GREY = 128  # overlay background when the predictions file holds no images


@dataclass
class MaskedFrames:
    """The masks of one source and what it knows about the frames."""

    masks: MotionMasks
    images: np.ndarray | None  # (N, H, W, 3) uint8 model inputs, if known
    timestamps: np.ndarray | None  # (N,) float64 seconds, videos only
    geometries: list[LoaderGeometry] | None  # per frame: model input -> original image
    record: dict[str, Any]  # "inputs" and "model" of scene.json


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
    if oracle is not None and opts.motion == "attention":
        raise OptionError("--oracle gives no attention (it is not the network): use --motion flow")
    if input is not None:
        check_network(opts.network)
    if opts.motion == "flow" and opts.flow == "raft" and not Path(opts.raft_weights).is_file():
        raise InputError(f"{opts.raft_weights}: RAFT weights file not found")
    check_output_folder(out, "masks")

    if input is not None:
        frames = _from_frames(input, opts, progress)
    elif predictions is not None:
        frames = _from_npz(predictions, opts)
    else:
        frames = _from_oracle(oracle, opts, progress)
    timing = {"masks": time.perf_counter() - start}

    tick = time.perf_counter()
    with atomic_output_dir(out) as staging:
        files = _write_outputs(staging, frames)
        record = {**frames.record, "masks": _masks_record(frames.masks, opts)}
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


def masks_of(predictions: PairPredictions, opts: MasksOptions) -> MotionMasks:
    """One estimate from pair predictions: attention from their probes, or flow from their
    images and pointmaps; InputError names what the predictions lack."""
    if opts.motion == "attention":
        if not predictions.has_probes:
            raise InputError("these predictions hold no attention probes; rerun `recon4d infer "
                             "... --probes` (or use --motion flow)")
        height, width = (int(v) for v in predictions.true_shape1[0])
        return attention_masks(predictions.edges, predictions.attn_maps1.numpy(),
                               predictions.attn_maps2.numpy(),
                               predictions.token_features.numpy(), (height, width))
    if not isinstance(predictions.images, np.ndarray):
        raise InputError("flow masks need the frames: these predictions hold no images of one "
                         "size (rerun `recon4d infer`, which keeps them)")
    return flow_masks(predictions, predictions.images, method=opts.flow,
                      threshold=opts.threshold, raft_weights=opts.raft_weights)


def _from_frames(input: str | os.PathLike, opts: MasksOptions, progress: bool) -> MaskedFrames:
    """Frames -> network pass(es) -> masks; the graph is checked before the weights load."""
    source = collect_frames(input, fps=opts.frames.fps, num_frames=opts.frames.num_frames)
    source.require(2)
    attention = opts.motion == "attention"
    if attention:
        edges, _ = pair_edges(len(source), opts.network)
        check_edge_coverage(torch.from_numpy(edges), len(source))
    loaded = load_network(source, opts.network, same_shape=True)
    if attention and opts.passes == 2 and has_encoder(loaded.model):
        loaded.keep_tokens()  # pass 2 changes only the decoders
    # attention needs only the probes: the heads are skipped (no pointmaps in these predictions)
    run = loaded.run(probes=attention, heads=not attention, progress=progress)
    masks = masks_of(run.predictions, opts)
    if attention and opts.passes == 2:
        run = loaded.run(probes=True, motion_masks=masks.masks, heads=False, progress=progress)
        masks = masks_of(run.predictions, opts)
    geometries = [loader_geometry(*upright_size(frame), size=loaded.size)
                  for frame in source.frames]
    return MaskedFrames(masks, run.predictions.images, source.timestamps, geometries,
                        run.record())


def _from_npz(path: str | os.PathLike, opts: MasksOptions) -> MaskedFrames:
    """A predictions.npz -> masks (no network); model resolution throughout."""
    prepared = from_npz(path)
    preds = prepared.predictions
    record = prepared.record
    record["inputs"]["probes"] = preds.has_probes
    images = preds.images if isinstance(preds.images, np.ndarray) else None
    return MaskedFrames(masks_of(preds, opts), images, prepared.timestamps, None, record)


def _from_oracle(scene_dir: str | os.PathLike, opts: MasksOptions,
                 progress: bool) -> MaskedFrames:
    """A `recon4d synth` scene -> oracle predictions (default corruption) -> flow masks, at the
    scene's resolution (the oracle refuses a size that would resize it)."""
    prepared = from_oracle(scene_dir, opts.network, progress=progress, static=False)
    preds = prepared.predictions
    return MaskedFrames(masks_of(preds, opts), preds.images, prepared.timestamps, None,
                        prepared.record)


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
    fps = _frame_rate(frames.timestamps)
    write_gif(tinted, staging / MOTION_OVERLAY_GIF, fps)
    files.append(MOTION_OVERLAY_GIF)
    if write_mp4(tinted, staging / MOTION_OVERLAY_VIDEO, fps):
        files.append(MOTION_OVERLAY_VIDEO)
    return files


def _frame_rate(timestamps: np.ndarray | None) -> float:
    """Frames per second of the overlay: the frames' own rate when known."""
    if timestamps is None or len(timestamps) < 2:
        return OVERLAY_FPS
    step = float(np.median(np.diff(np.asarray(timestamps, np.float64))))
    return 1.0 / step if step > 0 else OVERLAY_FPS


def _masks_record(masks: MotionMasks, opts: MasksOptions) -> dict[str, Any]:
    """What scene.json says about the masks."""
    return {"method": masks.method, "threshold": masks.threshold,
            "passes": opts.passes if opts.motion == "attention" else 1,
            "frames": len(masks.masks), "model_size": list(masks.masks.shape[1:]),
            "moving_fraction": round(float(masks.masks.mean()), 6)}


def _options_record(opts: MasksOptions, source: str,
                    sources: dict[str, Any]) -> dict[str, Any]:
    """The options as scene.json records them, plus the source paths as strings."""
    record = dataclasses.asdict(opts)
    if source != "input":
        del record["frames"]
    record.update({name: None if value is None else str(value)
                   for name, value in sources.items()})
    return record

