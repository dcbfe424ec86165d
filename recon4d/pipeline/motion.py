"""Motion masks of pair predictions, shared by `recon4d masks` and `recon4d reconstruct`.

`resolve_method` turns `--motion auto` into the estimator a source allows (attention needs the
network or saved probes; the oracle and plain predictions files give flow). `network_masks` runs
Easi3R's two passes on a loaded network (pass 1: decoders and probes only; pass 2: the decoder-1
cross-attention re-weighted by pass 1's masks, with the heads when the caller needs pointmaps),
or one plain pass for flow masks. SAM 2 refines each pass's masks when `--sam2` is given.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recon4d.dynamics.aggregation import check_edge_coverage
from recon4d.dynamics.attention import attention_masks
from recon4d.dynamics.flow import flow_masks
from recon4d.dynamics.masks import MotionMasks
from recon4d.dynamics.sam2_refine import Sam2Refiner, check_sam2, load_sam2, refine_masks
from recon4d.errors import InputError, OptionError
from recon4d.inference import PairPredictions
from recon4d.inference.engine import PairSink, has_encoder
from recon4d.inference.run import LoadedNetwork, NetworkRun
from recon4d.options import MotionOptions

__all__ = ["check_motion", "load_refiner", "masks_of", "masks_record", "network_masks",
           "refined", "resolve_method"]


def resolve_method(motion: MotionOptions, source: str, has_probes: bool = False) -> str:
    """The estimator for `source` ("input", "predictions" or "oracle"): the chosen one, or for
    auto attention when the network runs or the predictions hold probes, else flow."""
    if motion.motion == "attention" and source == "oracle":
        raise OptionError("--oracle gives no attention (it is not the network): use --motion "
                          "flow")
    if motion.motion != "auto":
        return motion.motion
    return "attention" if source == "input" or has_probes else "flow"


def check_motion(motion: MotionOptions, method: str) -> None:
    """The cheap checks of the estimator's files (RAFT weights, SAM 2 checkpoint)."""
    if method == "flow" and motion.flow == "raft" and not Path(motion.raft_weights).is_file():
        raise InputError(f"{motion.raft_weights}: RAFT weights file not found")
    if motion.sam2 is not None:
        check_sam2(motion.sam2, motion.sam2_config)


def load_refiner(motion: MotionOptions, device: torch.device | str) -> Sam2Refiner | None:
    """SAM 2 of `--sam2` on `device`, or None without it."""
    return None if motion.sam2 is None else load_sam2(motion.sam2, motion.sam2_config, device)


def masks_of(predictions: PairPredictions, motion: MotionOptions, method: str) -> MotionMasks:
    """One estimate from pair predictions: attention from their probes, or flow from their
    images and pointmaps; InputError names what the predictions lack."""
    if method == "attention":
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
    return flow_masks(predictions, predictions.images, method=motion.flow,
                      threshold=motion.threshold, raft_weights=motion.raft_weights)


def refined(masks: MotionMasks, images: Any, refiner: Sam2Refiner | None) -> MotionMasks:
    """`masks` OR SAM 2's masks prompted by them when a refiner is given (the maps stay);
    `images` are the (N, H, W, 3) uint8 model inputs, InputError when the source lacks them."""
    if refiner is None:
        return masks
    if not isinstance(images, np.ndarray):
        raise InputError("--sam2 needs the frames: these predictions hold no images of one size "
                         "(rerun `recon4d infer`, which keeps them)")
    return dataclasses.replace(masks, masks=refine_masks(refiner, images, masks.masks),
                               method=f"{masks.method}+sam2")


def sam2_record(refiner: Sam2Refiner | None) -> dict[str, Any] | None:
    """The SAM 2 refinement's scene.json record (None without one)."""
    return None if refiner is None else refiner.record()


def masks_record(masks: MotionMasks, motion: MotionOptions, method: str,
                 refiner: Sam2Refiner | None) -> dict[str, Any]:
    """What scene.json says about an estimator's masks (both commands)."""
    return {"method": masks.method, "threshold": masks.threshold,
            "passes": motion.passes if method == "attention" else 1,
            "moving_fraction": round(float(masks.masks.mean()), 6),
            "sam2": sam2_record(refiner)}


def check_attention_graph(edges: np.ndarray, n_frames: int) -> None:
    """Attention masks need every frame on both sides of two edges: refuse other graphs before
    the weights load."""
    check_edge_coverage(torch.from_numpy(edges), n_frames)


def network_masks(loaded: LoadedNetwork, motion: MotionOptions, method: str,
                  refiner: Sam2Refiner | None, *, heads: bool, progress: bool,
                  sink: PairSink | None = None) -> tuple[NetworkRun, MotionMasks]:
    """The network's masks and its last run (with the heads, so with pointmaps, when `heads`;
    attention only: those go to `sink` when given).

    Attention: pass 1 keeps only the probes; with 2 passes, pass 2 re-weights decoder 1 with
    pass 1's masks and its masks are final (the encoder runs once per frame for both). Flow: one
    pass with the heads (the masks come from the pointmaps).
    """
    if method != "attention":
        run = loaded.run(probes=False, heads=True, progress=progress)
        return run, refined(masks_of(run.predictions, motion, method), run.predictions.images,
                            refiner)
    two = motion.passes == 2
    if two and has_encoder(loaded.model):
        loaded.keep_tokens()  # pass 2 changes only the decoders
    last = {"sink": sink} if heads else {}
    run = loaded.run(probes=True, heads=heads and not two, progress=progress,
                     **({} if two else last))
    masks = refined(masks_of(run.predictions, motion, method), run.predictions.images, refiner)
    if two:
        run = loaded.run(probes=True, motion_masks=masks.masks, heads=heads, progress=progress,
                         **last)
        masks = refined(masks_of(run.predictions, motion, method), run.predictions.images,
                        refiner)
    return run, masks
