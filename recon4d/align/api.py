"""`global_align`: pair predictions of N images -> one aligned `Scene` (the public entry point)."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from recon4d.align.cleaning import contradicted_points
from recon4d.align.init_mst import mst_init, similarity_to_known
from recon4d.align.inputs import PairData, as_pair_data
from recon4d.align.known import CameraPriors, KnownCameras, resolve_known
from recon4d.align.objective import Objective
from recon4d.align.pair_viewer import pair_view
from recon4d.align.solver_adam import LR_MIN, SCHEDULES, solve_adam
from recon4d.align.solver_fast import MAX_ITERS, solve_fast
from recon4d.align.sparse.matches import (
    EdgePredictions,
    MatchCache,
    Matcher,
    collect_correspondences,
)
from recon4d.align.sparse.run import SparseSettings, solve_sparse
from recon4d.align.state import AlignState
from recon4d.align.video import VideoSetup, VideoTerms, resolve_video
from recon4d.errors import InputError, Recon4dError
from recon4d.options import SOLVERS, AlignOptions
from recon4d.options.pipeline import ALIGN_METHODS
from recon4d.scene import Scene

_DEFAULTS = AlignOptions()
ADAM_NITER = 300
VIDEO_LR_MIN = 1e-3  # MonST3R's floor of the Adam schedule for videos
FILL_GREY = 128  # colour of the images when the predictions carry none


def _check_options(solver: str, niter: int | None, lr: float, schedule: str,
                   conf_threshold: float) -> None:
    if solver not in SOLVERS:
        raise InputError(f"unknown solver {solver!r}; choose one of {SOLVERS}")
    if niter is not None and (not isinstance(niter, int) or niter < 0):
        raise InputError(f"niter must be a non-negative integer or None, got {niter!r}")
    if schedule not in SCHEDULES:
        raise InputError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
    if not (math.isfinite(lr) and lr > 0):
        raise InputError(f"lr must be a positive number, got {lr!r}")
    if not math.isfinite(conf_threshold):
        raise InputError(f"conf_threshold must be a finite number, got {conf_threshold!r}")


def _images(data: PairData, images: Any) -> np.ndarray:
    """The (N, H, W, 3) uint8 colours: the override, the predictions' images, or grey."""
    shape = (data.n_images, data.height, data.width, 3)
    if images is None:
        if data.images is None:
            return np.full(shape, FILL_GREY, np.uint8)
        return data.images.cpu().numpy().astype(np.uint8)
    arr = np.asarray(images)
    if arr.shape != shape or arr.dtype != np.uint8:
        raise InputError(f"images: expected a {shape} uint8 array (the model inputs), got "
                         f"{arr.shape} {arr.dtype}")
    return arr


def _solve(data: PairData, priors: CameraPriors, obj: Objective, solver: str, niter: int | None,
           lr: float, schedule: str, progress: bool, video: VideoSetup | None) -> AlignState:
    """Initialise, then optimise with the chosen solver (or the pair viewer for two images)."""
    n = data.n_images
    if n == 2 and not priors.n_known_poses:
        return pair_view(data, priors, obj)
    state = mst_init(data, priors, obj, shared_focal=video is not None and video.terms.shared_focal)
    fixed = priors.fixed_pose_mask
    fixed = torch.zeros(n, dtype=torch.bool) if fixed is None else fixed.clone()
    fix_focal = priors.focals is not None and priors.fix
    scale_gauge = int(fixed.sum()) <= 1
    steps = (MAX_ITERS if solver == "fast" else ADAM_NITER) if niter is None else niter
    with tqdm(total=steps, desc=f"align ({solver})", unit="it", disable=not progress) as bar:
        def tick(step: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4g}")
        if solver == "fast":
            solve_fast(obj, state, fixed, fix_focal, scale_gauge, max_iters=steps, callback=tick,
                       video=video)
        else:
            state, _ = solve_adam(obj, state, fixed, fix_focal, scale_gauge, niter=steps, lr=lr,
                                  lr_min=LR_MIN if video is None else VIDEO_LR_MIN,
                                  schedule=schedule, callback=tick, video=video)
        bar.total = bar.n  # the fast solver usually converges before `steps`
    if priors.n_known_poses and not priors.fix:
        state.apply_similarity(*similarity_to_known(state.rot, state.trans, priors))
    if fixed.any():  # exactly as given (Adam stores them as float32 quaternions)
        state.rot[fixed] = priors.poses[fixed, :3, :3]
        state.trans[fixed] = priors.poses[fixed, :3, 3]
    return state


def global_align(predictions: Any, *, solver: str = _DEFAULTS.solver,
                 niter: int | None = _DEFAULTS.niter, lr: float = 0.01, schedule: str = "cosine",
                 known: KnownCameras | None = None,
                 conf_threshold: float = _DEFAULTS.conf_threshold, clean: bool = True,
                 device: str | torch.device = "cpu", progress: bool = False,
                 images: Any = None, video: VideoTerms | None = None,
                 method: str = _DEFAULTS.align, matcher: Matcher | None = None,
                 sparse: SparseSettings | None = None,
                 match_cache: str | os.PathLike | None = None) -> Scene:
    """Global alignment of pair predictions into per-image depth, intrinsics and poses.

    `predictions`: `recon4d.inference.PairPredictions` or the originals' inference dict.
    `method`: "dense" (DUSt3R's, default) or "sparse" (MASt3R's, from descriptor matches;
    see `sparse_align`). `solver`: "fast" (default) or "adam" (the reference schedule: `niter`
    300, `lr`, `schedule`). Masks keep pixels whose raw confidence (max over the image's
    pairs) exceeds `conf_threshold` and, with `clean`, that no more confident view contradicts.
    Bad inputs raise `InputError`; see docs/algorithms.md, "Failure modes".
    """
    if method not in ALIGN_METHODS:
        raise InputError(f"unknown alignment method {method!r}; choose one of {ALIGN_METHODS}")
    if method == "sparse":
        return sparse_align(predictions, matcher, settings=sparse, known=known,
                            conf_threshold=conf_threshold, clean=clean, progress=progress,
                            images=images, video=video, match_cache=match_cache)
    _check_options(solver, niter, lr, schedule, conf_threshold)
    with torch.device(device):  # every tensor the alignment creates lives on `device`
        data = as_pair_data(predictions, device=device)
        colours = _images(data, images)
        im_conf = data.image_confidence()
        if float(im_conf.max()) <= conf_threshold:
            raise InputError(f"predictions: every confidence is at most "
                             f"{float(im_conf.max()):.3g}, not above conf_threshold "
                             f"{conf_threshold:g}: the network found no reliable geometry (lower "
                             "conf_threshold or check the inputs)")
        priors = resolve_known(known, data.n_images, data.height, data.width)
        setup = resolve_video(video, data)
        obj = Objective(data, None if setup is None else setup.static_weights)
        state = _solve(data, priors, obj, solver, niter, lr, schedule, progress, setup)
        for name, value in (("poses", state.trans), ("rotations", state.rot),
                            ("focals", state.focals), ("depths", state.depths)):
            if not torch.isfinite(value).all():
                raise Recon4dError(f"global alignment diverged: non-finite {name}; try the "
                                   "other solver or check the predictions")
        masks = im_conf > conf_threshold
        if clean:
            masks &= ~contradicted_points(state.depths, state.focals, state.pps, state.rot,
                                          state.trans, im_conf)
    scene = scene_from_state(state, colours, im_conf.cpu().numpy(), masks.cpu().numpy())
    if setup is not None and setup.masks is not None:
        scene.dynamic_masks = setup.masks.cpu().numpy()
    return scene


def sparse_align(predictions: Any, matcher: Matcher | None, *,
                 settings: SparseSettings | None = None, known: KnownCameras | None = None,
                 conf_threshold: float = _DEFAULTS.conf_threshold, clean: bool = True,
                 progress: bool = False, images: Any = None, video: VideoTerms | None = None,
                 match_cache: str | os.PathLike | None = None) -> Scene:
    """MASt3R's sparse alignment of pair predictions with descriptors (docs/sparse.md).

    `matcher(pred1, pred2, mask1, mask2) -> (xy1, xy2, conf, ...)` finds one edge's matches,
    e.g. `functools.partial(recon4d.matching.match_descriptors, options=MatchOptions(...))`
    (`recon4d.pipeline.reconstruct.sparse_matcher` builds the default). Matches are computed
    once per edge; `match_cache` names a folder caching them by the descriptors' content.
    `video.dynamic_masks` keep moving pixels out of the matches and the fallback loss.
    `known` intrinsics and/or poses are fixed (`fix=True`) or initial values. The solve runs
    on the CPU in float64 (a few unknowns per image and per 8x8 block); the search runs where
    the descriptors are.
    """
    if matcher is None:
        raise InputError("sparse alignment needs a matcher: pass matcher=recon4d.pipeline."
                         "reconstruct.sparse_matcher() (or match_descriptors with options)")
    settings = settings or SparseSettings()
    if not math.isfinite(conf_threshold):
        raise InputError(f"conf_threshold must be a finite number, got {conf_threshold!r}")
    edges = EdgePredictions(predictions)  # no descriptors: refused before anything else
    data = as_pair_data(predictions)
    colours = _images(data, images)
    priors = resolve_known(known, data.n_images, data.height, data.width)
    setup = resolve_video(video, data)
    moving = None if setup is None else setup.masks
    static = None if moving is None else ~moving.cpu()
    cache = None if match_cache is None else MatchCache(match_cache, repr(matcher))
    corrs = collect_correspondences(edges, matcher, static, cache)
    with tqdm(desc=f"align (sparse, {settings.schedule})", unit="eval",
              disable=not progress) as bar:
        sol = solve_sparse(data, corrs, priors, settings, conf_threshold, clean, static,
                           tick=lambda: bar.update(1))
    scene = scene_from_cameras(sol.rot, sol.trans, sol.focals, sol.pps, sol.depths, colours,
                               sol.confs.cpu().numpy(), sol.masks.cpu().numpy())
    if moving is not None:
        scene.dynamic_masks = moving.cpu().numpy()
    return scene


def scene_from_state(state: AlignState, images: np.ndarray, confs: np.ndarray,
                     masks: np.ndarray) -> Scene:
    """The Scene of solver state `state` (cameras, depths) with per-pixel colours, confidences
    and kept-point masks."""
    return scene_from_cameras(state.rot, state.trans, state.focals, state.pps, state.depths,
                              images, confs, masks)


def scene_from_cameras(rot: torch.Tensor, trans: torch.Tensor, focals: torch.Tensor,
                       pps: torch.Tensor, depths: torch.Tensor, images: np.ndarray,
                       confs: np.ndarray, masks: np.ndarray) -> Scene:
    """A Scene from camera-to-world rotations (N, 3, 3) and translations (N, 3), focals (N,),
    principal points (N, 2), depths (N, H, W), colours, confidences and kept-point masks."""
    n = depths.shape[0]
    intrinsics = np.zeros((n, 3, 3))
    intrinsics[:, 0, 0] = intrinsics[:, 1, 1] = focals.cpu().numpy()
    intrinsics[:, :2, 2] = pps.cpu().numpy()
    intrinsics[:, 2, 2] = 1
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, :3, :3] = rot.cpu().numpy()
    poses[:, :3, 3] = trans.cpu().numpy()
    return Scene(images=images, depths=depths.cpu().numpy().astype(np.float32),
                 confs=np.asarray(confs, dtype=np.float32), intrinsics=intrinsics,
                 poses_c2w=poses, masks=np.asarray(masks, dtype=bool))
