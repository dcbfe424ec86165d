"""Sparse alignment end to end: matches -> canonical views, anchors, tree -> coarse 3D stage ->
2D refinement -> dense depth maps (MASt3R sparse GA, §4.3, with a faster default schedule)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from recon4d.align.cleaning import contradicted_points
from recon4d.align.init_mst import similarity_to_known
from recon4d.align.inputs import PairData
from recon4d.align.known import CameraPriors
from recon4d.align.sparse.anchors import AnchorGrid, densify
from recon4d.align.sparse.canonical import CanonicalViews, canonical_views
from recon4d.align.sparse.init import chain_init
from recon4d.align.sparse.losses import MatchTerms, loss_2d, loss_3d, loss_fallback
from recon4d.align.sparse.matches import Correspondences
from recon4d.align.sparse.params import Cameras, SparseParameters
from recon4d.align.sparse.problem import (
    fallback_terms,
    match_counts,
    match_terms,
    strong_pairs,
)
from recon4d.align.sparse.solve import SCHEDULES, StageReport, run_stage
from recon4d.align.sparse.tree import KinematicTree, kinematic_tree, require_connected
from recon4d.errors import InputError, Recon4dError

LEVELS = ("coarse", "refine", "refine+depth")
DEPTH_FLOOR = 1e-3  # depth given to pixels behind their camera, x median depth


@dataclass(frozen=True)
class SparseSettings:
    """Settings of the sparse alignment (defaults: MASt3R's demo, fast schedule)."""

    tree: str = "hclust-ward"  # or "mst"
    level: str = "refine+depth"  # "coarse" (3D stage only), "refine", "refine+depth"
    schedule: str = "fast"  # or "reference" (Adam 300 + 300, identity start)
    shared_intrinsics: bool = False
    matching_conf_thr: float = 0.0  # pairs whose best match is not above use the fallback


@dataclass
class SparseSolution:
    """Cameras (c2w rot (N, 3, 3), trans (N, 3), focals (N,), pps (N, 2)), dense depths and
    canonical confidences (N, H, W), kept-point masks, and what the stages did."""

    rot: Tensor
    trans: Tensor
    focals: Tensor
    pps: Tensor
    depths: Tensor
    confs: Tensor
    masks: Tensor
    matches: int
    stages: dict[str, StageReport] = field(default_factory=dict)
    schedule_cpu: float = 0.0  # CPU seconds of the start (chain) and the two stages


MainLoss = Callable[[SparseParameters, Cameras, Tensor, MatchTerms], Tensor]


def _parameters(data: PairData, priors: CameraPriors, grid: AnchorGrid, canon: CanonicalViews,
                tree: KinematicTree, settings: SparseSettings) -> SparseParameters:
    """The unknowns, with known intrinsics and (two or more) fixed poses in place."""
    anchor_depth = grid.sample(canon.depth)
    fixed = priors.fixed_pose_mask
    metric_fix = fixed is not None and int(fixed.sum()) >= 2
    known_focal = priors.focals is not None
    params = SparseParameters(
        tree, anchor_depth.median(dim=1).values, canon.focal, anchor_depth, data.height,
        data.width, shared=settings.shared_intrinsics and not known_focal,
        known_rot=priors.poses[:, :3, :3] if metric_fix else None,
        known_centre=priors.poses[:, :3, 3] if metric_fix else None,
        fixed_pose=fixed if metric_fix else None)
    if known_focal:
        params.log_focal = priors.focals.log().clone()
        params.pp = (priors.pps / params.size_wh).clone()
    return params


def _check_finite(sol: SparseSolution) -> None:
    for name in ("rot", "trans", "focals", "depths"):
        if not torch.isfinite(getattr(sol, name)).all():
            raise Recon4dError(f"sparse alignment diverged: non-finite {name}; try "
                               "sparse_schedule='reference' or the dense alignment")


def solve_sparse(data: PairData, corrs: list[Correspondences], priors: CameraPriors,
                 settings: SparseSettings, conf_threshold: float, clean: bool = True,
                 static: Tensor | None = None,
                 tick: Callable[[], None] = lambda: None) -> SparseSolution:
    """Align N images from their pair predictions `data` and matches `corrs` (on the CPU in
    float64: the problem has a few parameters per image and per 8x8 block).

    `static` (N, H, W) bool: pixels that may pull cameras (the matches were restricted to it
    already; here it masks the fallback).
    """
    if settings.level not in LEVELS:
        raise InputError(f"unknown sparse level {settings.level!r}; choose one of {LEVELS}")
    if settings.schedule not in SCHEDULES:
        raise InputError(f"unknown sparse schedule {settings.schedule!r}; choose one of "
                         f"{SCHEDULES}")
    n = data.n_images
    require_connected(data.edges.cpu().numpy(), n)
    canon = canonical_views(data)
    grid = AnchorGrid(data.height, data.width)
    offsets = grid.offsets(canon.depth)
    counts = match_counts(corrs, n)
    tree = kinematic_tree(counts, torch.full((n,), grid.count).numpy(), settings.tree)
    strong = strong_pairs(corrs, settings.matching_conf_thr)
    terms = match_terms(strong, grid, offsets)  # may be empty: then the fallback alone
    fallback = fallback_terms(data, strong, grid, static)
    params = _parameters(data, priors, grid, canon, tree, settings)
    start = time.process_time()
    if settings.schedule == "fast":
        init = chain_init(tree, corrs, canon, data, grid, priors)
        params.set_cameras(init.rot, init.centre, init.size)
    anchors = grid.pixels()

    def total(main: MainLoss) -> Callable[[], Tensor]:
        def loss() -> Tensor:
            cams = params.cameras()
            depths = params.anchor_depths(cams)
            value = main(params, cams, depths, terms) if len(terms) else cams.factor * 0
            if fallback is not None:
                value = value + loss_fallback(params, cams, depths, fallback, anchors)
            return value
        return loss

    root = torch.zeros(n, dtype=torch.bool)
    if settings.schedule == "fast":
        root[tree.root] = True  # the gauge: the chain starts in the root camera's frame
    frozen = {"quat": root, "trans": root}
    stages = {"coarse": run_stage(params, ["quat", "trans", "log_size"], total(loss_3d),
                                  "coarse", settings.schedule, frozen, tick)}
    if settings.level != "coarse":
        names = ["quat", "trans", "log_size"]
        if priors.focals is None or not priors.fix:
            names += ["log_focal", "pp"]
        if settings.level == "refine+depth":
            names.append("depth")
        stages["refine"] = run_stage(params, names, total(loss_2d), "refine", settings.schedule,
                                     frozen, tick)
    schedule_cpu = time.process_time() - start
    with torch.no_grad():
        sol = _solution(params, canon.conf, offsets, grid, priors, conf_threshold, clean,
                        len(terms), stages)
    sol.schedule_cpu = schedule_cpu
    return sol


def _solution(params: SparseParameters, conf: Tensor, offsets: Tensor, grid: AnchorGrid,
              priors: CameraPriors, conf_threshold: float, clean: bool, matches: int,
              stages: dict[str, StageReport]) -> SparseSolution:
    """Densify, move onto known poses when the scale was free, mask and clean."""
    cams = params.cameras()
    depths = densify(params.anchor_depths(cams), offsets, grid,
                     params.focal0 / cams.focal) * cams.factor
    rot, trans = cams.rot, cams.centre * cams.factor
    if priors.n_known_poses and not params.metric:
        s, r, t = similarity_to_known(rot, trans, priors)
        rot, trans, depths = r[0] @ rot, s * trans @ r[0].T + t, depths * s
        if priors.fix:
            known = priors.pose_mask
            rot[known], trans[known] = priors.poses[known, :3, :3], priors.poses[known, :3, 3]
    focals, pps = cams.focal.clone(), cams.pp.clone()
    behind = ~(depths > 0)  # pointmaps with z <= 0 (random weights): floored and dropped
    if behind.any():
        ahead = depths[~behind]
        floor = DEPTH_FLOOR * (float(ahead.median()) if ahead.numel() else 1.0)
        depths = torch.where(behind, torch.full_like(depths, floor), depths)
    masks = (conf > conf_threshold) & ~behind
    if clean:
        masks &= ~contradicted_points(depths, focals, pps, rot, trans, conf)
    sol = SparseSolution(rot, trans, focals, pps, depths, conf, masks, matches, stages)
    _check_finite(sol)
    return sol
