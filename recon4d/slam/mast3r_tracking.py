"""Frame-to-keyframe tracking of the MASt3R-style SLAM (spec §6, §8.4): Sim(3) Gauss-Newton with
iteratively reweighted Huber residuals between the keyframe's canonical points and the frame's
matched points.

Residuals (target - prediction, whitened by sqrt(Q) / sigma with Q = sqrt(Q_ff[match] Q_kf)):
uncalibrated, the unit ray (3, sigma 0.003) and the distance (1, sigma 10) of the keyframe point
against the frame point moved by T_{k<-f}; calibrated (intrinsics K), both points first put on
their pixels' calibrated rays at their depth, the pixel reprojection (2, sigma 1 px) and the
log-depth (1, sigma 10). Jacobians are with respect to a LEFT perturbation of T_{k<-f}
(`recon4d.geometry.sim3`); `relative_jacobians` turns them into Jacobians with respect to both
world poses, so the back end reuses the same residuals for keyframe-keyframe edges.

The frame point of a matched keyframe pixel p is the decoder run's own prediction X_kf[p] of
that pixel in f's camera (the same surface point as the keyframe's, so the pose carries no
error of the match position); calibrated, it is put on the calibrated ray of the match's
sub-pixel position, the frame pixel those residuals need (precise matches only,
`pose_pixels`). A match position is off by about the pointmap's per-pixel ray noise in pixels
(0.5 px at 256 x 192 for the oracle's 0.2 % of depth), and the frame's own points X_ff sampled
there biased the Sim(3): the tracked scale came out 0.01-0.09 % small and the stream's ATE did
not fall with resolution (oracle, 24 frames, seed 0, 256 x 192, with the reference's 1e-3 step
tolerance: 0.054 % of the path with X_ff, 0.025 % with X_kf; with `STEP_TOL` as well 0.011 %;
`tests/test_mast3r_tracking.py`, docs/slam.md). Calibrated, X_kf's depth instead of X_ff's
sampled at the position took the 24-frame orbits of the benchmark from 0.025-0.031 % to
0.014-0.016 % of the path (docs/slam.md, "Calibrated tracking").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from recon4d.dynamics.consistency import (
    MAX_FLAGGED,
    above_scale,
    disowned,
    grow_mask,
    inconsistent,
    relative_disagreement,
)
from recon4d.errors import InputError
from recon4d.geometry.rotations import skew
from recon4d.geometry.sim3 import (
    nearest_sim3,
    sim3_act,
    sim3_adjoint,
    sim3_exp,
    sim3_inverse,
    sim3_scale,
)
from recon4d.slam.mast3r_keyframe import Keyframe
from recon4d.slam.mast3r_matching import (
    Matches,
    identity_pixels,
    match_keyframe,
)

SIGMA_RAY, SIGMA_DIST = 0.003, 10.0
SIGMA_PIXEL, SIGMA_LOG_DEPTH = 1.0, 10.0
HUBER_K = 1.345
MAX_ITERS = 50
REL_COST_TOL = 1e-3  # stop when the relative cost change is below this ...
# ... or the step norm is. The reference stops at 1e-3: with noisy pointmaps most whitened
# residuals lie beyond the Huber threshold, IRLS then converges linearly, and a 1e-3 step still
# leaves errors of that order, whatever the pixel count (oracle, 256 x 192, seed 0: ATE 0.025 %
# of the path -> 0.011 %, stream CPU +9 %; 1e-4 gave the same, so 1e-5 keeps a margin).
STEP_TOL = 1e-5
Q_MIN = 1.5  # matches need descriptor confidence Q above this
C_MIN = 0.0  # and average confidence above this on both sides
LOST_FRACTION = 0.05  # tracking fails below this fraction of usable matches
KEYFRAME_FRACTION = 0.333  # a new keyframe below this matched / unique fraction
SCALE_RANGE = (0.05, 20.0)  # plausible scale of a frame relative to its keyframe
SUSPECT_RADIUS = 2  # keyframe pixels this close to a known mover are suspects (trusted_pose)
CALIB_BORDER = -10.0  # projections may fall this many pixels (negative: outside) off the image
MIN_DEPTH = 1e-6


@dataclass
class Residuals:
    """M correspondences with R residuals each: `r` (M, R) = target - prediction, `jac`
    (M, R, 7) = dr / d(delta) for T <- exp(delta) T, `sqrt_info` (M, R) whitening weights
    (0 where a correspondence is unusable)."""

    r: Tensor
    jac: Tensor
    sqrt_info: Tensor


def _point_jacobian(moved: Tensor) -> Tensor:
    """(M, 3, 7) d(exp(delta) Y) / d(delta) at delta = 0 for moved points Y (M, 3)."""
    eye = torch.eye(3, dtype=moved.dtype, device=moved.device).expand(len(moved), 3, 3)
    return torch.cat((eye, -skew(moved), moved[..., None]), -1)


def ray_dist_residuals(points_ref: Tensor, points_src: Tensor, T_ref_src: Tensor,
                       weight: Tensor, sigma_ray: float = SIGMA_RAY,
                       sigma_dist: float = SIGMA_DIST) -> Residuals:
    """Unit-ray (3) and distance (1) residuals of reference points (M, 3) against source points
    (M, 3) moved by the Sim(3) T_ref_src (4, 4); `weight` (M,) = sqrt(Q) (0 = unused)."""
    moved = sim3_act(T_ref_src, points_src)
    dist = moved.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    ray = moved / dist
    d_moved = _point_jacobian(moved)
    eye = torch.eye(3, dtype=moved.dtype, device=moved.device)
    d_ray = (eye - ray[:, :, None] * ray[:, None, :]) / dist[..., None]
    jac = -torch.cat((d_ray @ d_moved, ray[:, None, :] @ d_moved), 1)
    ref_dist = points_ref.norm(dim=-1, keepdim=True)
    r = torch.cat((points_ref / ref_dist.clamp_min(1e-12) - ray, ref_dist - dist), -1)
    scale = weight.new_tensor([1 / sigma_ray] * 3 + [1 / sigma_dist])
    return Residuals(r, jac, weight[:, None] * scale)


def constrain_to_rays(points: Tensor, pixels: Tensor, intrinsics: Tensor) -> Tensor:
    """Points (M, 3) moved onto the calibrated rays K^-1 [u, v, 1] of their pixels (M, 2),
    keeping their depth z."""
    homog = torch.cat((pixels.to(points.dtype), torch.ones_like(points[:, :1])), -1)
    rays = torch.linalg.solve(intrinsics.to(points.dtype), homog.T).T
    return rays * points[:, 2:3]


def pixel_depth_residuals(points_ref: Tensor, pixels_ref: Tensor, points_src: Tensor,
                          T_ref_src: Tensor, intrinsics: Tensor, image_size: tuple[int, int],
                          weight: Tensor, sigma_pixel: float = SIGMA_PIXEL,
                          sigma_log_depth: float = SIGMA_LOG_DEPTH) -> Residuals:
    """Pixel (2) and log-depth (1) residuals of reference pixels (M, 2) and points (M, 3, on
    their calibrated rays) against source points moved by T_ref_src and projected with the
    reference camera's K (3, 3); (H, W) = `image_size`. A projection behind the camera or more
    than -CALIB_BORDER pixels off the image gets zero weight."""
    moved = sim3_act(T_ref_src, points_src)
    k = intrinsics.to(moved.dtype)
    z = moved[:, 2:3]
    safe_z = torch.where(z > MIN_DEPTH, z, torch.ones_like(z))
    proj = moved @ k.T
    uv = proj[:, :2] / safe_z
    height, width = image_size
    inside = ((z[:, 0] > MIN_DEPTH) & (points_ref[:, 2] > MIN_DEPTH)
              & (uv[:, 0] > CALIB_BORDER) & (uv[:, 0] < width - 1 - CALIB_BORDER)
              & (uv[:, 1] > CALIB_BORDER) & (uv[:, 1] < height - 1 - CALIB_BORDER))
    e3 = torch.tensor([0.0, 0.0, 1.0], dtype=moved.dtype, device=moved.device)
    d_uv = (k[:2] - uv[:, :, None] * e3) / safe_z[..., None]  # (M, 2, 3)
    d_logz = (e3 / safe_z)[:, None, :]  # (M, 1, 3)
    d_moved = _point_jacobian(moved)
    jac = -torch.cat((d_uv @ d_moved, d_logz @ d_moved), 1)
    ref_logz = torch.where(points_ref[:, 2:3] > MIN_DEPTH, points_ref[:, 2:3], 1.0).log()
    r = torch.cat((pixels_ref.to(moved.dtype) - uv, ref_logz - safe_z.log()), -1)
    scale = weight.new_tensor([1 / sigma_pixel] * 2 + [1 / sigma_log_depth])
    return Residuals(r, jac, (weight * inside)[:, None] * scale)


def relative_jacobians(pose_ref: Tensor, jac: Tensor) -> tuple[Tensor, Tensor]:
    """Jacobians (..., 7) with respect to LEFT perturbations of the world poses T_ref and T_src
    of residuals whose `jac` is taken with respect to T_ref_src = T_ref^-1 T_src."""
    jac_src = jac @ sim3_adjoint(sim3_inverse(pose_ref))
    return -jac_src, jac_src


def huber_weights(whitened: Tensor, k: float = HUBER_K) -> Tensor:
    """IRLS weights of whitened residuals: 1 inside [-k, k], k / |e| outside."""
    magnitude = whitened.abs()
    return torch.where(magnitude <= k, torch.ones_like(magnitude), k / magnitude.clamp_min(1e-30))


def cholesky_step(hessian: Tensor, gradient: Tensor) -> Tensor:
    """Solution of H x = g by Cholesky; a zero step where H is not positive definite."""
    factor, info = torch.linalg.cholesky_ex(hessian)
    if int(info.max()) != 0:
        return torch.zeros_like(gradient)
    return torch.cholesky_solve(gradient[..., None], factor)[..., 0]


def robust_sqrt_info(res: Residuals, huber_k: float = HUBER_K) -> Tensor:
    """(M, R) whitening weights times the square root of the Huber IRLS weights."""
    return res.sqrt_info * huber_weights(res.sqrt_info * res.r, huber_k).sqrt()


def robust_normal_equations(res: Residuals, huber_k: float = HUBER_K
                            ) -> tuple[Tensor, Tensor, float]:
    """(H (7, 7), g (7,), cost) of one IRLS step: H = A^T A, g = -A^T b with A, b the Huber-
    reweighted whitened Jacobian and residuals, cost = 0.5 |b|^2; the step solves H x = g."""
    robust = robust_sqrt_info(res, huber_k)
    a = (robust[..., None] * res.jac).reshape(-1, res.jac.shape[-1])
    b = (robust * res.r).reshape(-1)
    return a.T @ a, -(a.T @ b), 0.5 * float(b @ b)


def edge_normal_equations(res: Residuals, pose_ref: Tensor, huber_k: float = HUBER_K
                          ) -> tuple[Tensor, Tensor, float]:
    """(H (14, 14), g (14,), cost) of an edge's residuals (taken with respect to T_ref_src =
    T_ref^-1 T_src) for LEFT steps of both world poses, ordered [ref (7), src (7)]: the
    relative system mapped through the adjoint of T_ref^-1 (`relative_jacobians`)."""
    hessian, gradient, cost = robust_normal_equations(res, huber_k)
    adj = sim3_adjoint(sim3_inverse(pose_ref))
    block, side = adj.T @ hessian @ adj, adj.T @ gradient
    full = torch.cat((torch.cat((block, -block), 1), torch.cat((-block, block), 1)))
    return full, torch.cat((-side, side)), cost


def gauss_newton_sim3(residuals: Callable[[Tensor], Residuals], T_init: Tensor,
                      max_iters: int = MAX_ITERS, huber_k: float = HUBER_K,
                      rel_cost_tol: float = REL_COST_TOL,
                      step_tol: float = STEP_TOL, scale_sigma: float | None = None
                      ) -> tuple[Tensor, int]:
    """(T, iterations) minimising the robust cost of `residuals(T)` over one Sim(3) T (4, 4),
    updated on the left, float64. `scale_sigma` adds a Gaussian prior keeping log(scale of T)
    at `T_init`'s with that standard deviation (0: the scale stays exactly `T_init`'s).
    Stops after a step of norm < `step_tol`, or when the cost changed by less than
    `rel_cost_tol` relative to the previous iteration."""
    T = T_init.double()
    log_scale_init = torch.log(sim3_scale(T))
    old_cost = None
    for iteration in range(1, max_iters + 1):
        hessian, gradient, cost = robust_normal_equations(residuals(T), huber_k)
        if scale_sigma:  # the prior's term 0.5 offset^2 (H and g are fresh tensors)
            offset = (torch.log(sim3_scale(T)) - log_scale_init) / scale_sigma
            hessian[6, 6] += 1.0 / scale_sigma ** 2
            gradient[6] -= offset / scale_sigma
            cost += 0.5 * float(offset) ** 2
        if scale_sigma == 0:  # the log-scale row and column left out, its step zero
            step = torch.cat((cholesky_step(hessian[:6, :6], gradient[:6]),
                              gradient.new_zeros(1)))
        else:
            step = cholesky_step(hessian, gradient)
        T = sim3_exp(step) @ T
        if float(step.norm()) < step_tol or (
                old_cost is not None and abs(old_cost - cost) < rel_cost_tol * old_cost):
            return T, iteration
        old_cost = cost
    return T, max_iters


def usable_matches(matches: Matches, pred_f: dict[str, Tensor], pred_k: dict[str, Tensor],
                   average_conf_k: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per keyframe pixel (flat, H * W): the residual weights sqrt(Q), Q = sqrt(Q_ff[match]
    Q_kf); the valid matches with Q > Q_MIN; and those also confident on both sides (average
    confidence > C_MIN): the ones a pose uses (§6). Shared by tracking and back-end edges."""
    index = matches.index.reshape(-1)
    q = (pred_f["desc_conf"].reshape(-1)[index] * pred_k["desc_conf"].reshape(-1)).sqrt()
    good_q = matches.valid.reshape(-1) & (q > Q_MIN)
    usable = (good_q & (pred_f["conf"].reshape(-1)[index] > C_MIN)
              & (average_conf_k.reshape(-1) > C_MIN))
    return q.sqrt(), good_q, usable


def pose_pixels(usable: Tensor, matches: Matches, intrinsics: Tensor | None) -> Tensor:
    """(M,) the flat keyframe pixels whose matches a pose uses: the `usable` ones (flat, H *
    W), calibrated only the `Matches.precise` among them, as the pixel residuals need the
    frame position (`recon4d.slam.mast3r_matching`)."""
    if intrinsics is not None:
        usable = usable & matches.precise.reshape(-1)
    return usable.nonzero()[:, 0]


def static_pixels(movers: Tensor) -> int:
    """Number of pixels that can match (not movers, at least 1): the denominator of the match
    fractions, so that masked movers do not call for keyframes ever more often."""
    return max(1, int((~movers).sum()))


def frame_residuals(points_k: Tensor, points_kf: Tensor, pixels_k: Tensor, uv_f: Tensor,
                    weight: Tensor, intrinsics: Tensor | None = None
                    ) -> Callable[[Tensor], Residuals]:
    """The residual function T_kf -> `Residuals` of M matches from one decoder run (f as view
    1): keyframe points (M, 3) at flat keyframe pixels `pixels_k` (M,) against the run's
    prediction X_kf (`points_kf`, H x W x 3, in f's camera) of the same pixels, matched at frame
    positions `uv_f` (M, 2), weights sqrt(Q) (M,). Uncalibrated, ray + distance; with
    `intrinsics` (3, 3), pixel + log-depth, the keyframe points put on their pixels' calibrated
    rays and X_kf on the rays of the frame positions (module doc). Computed in float64."""
    ref, weight = points_k.double(), weight.double()
    src = points_kf.reshape(-1, 3)[pixels_k].double()
    if intrinsics is None:
        return lambda T: ray_dist_residuals(ref, src, T, weight)
    height, width = image_size = tuple(points_kf.shape[:2])
    grid = identity_pixels(height, width, ref.device).reshape(-1, 2).double()
    k = intrinsics.to(ref.device, torch.float64)
    ref = constrain_to_rays(ref, grid[pixels_k], k)
    src = constrain_to_rays(src, uv_f.double(), k)
    return lambda T: pixel_depth_residuals(ref, grid[pixels_k], src, T, k, image_size, weight)


def pixel_disagreement(points_k: Tensor, points_kf: Tensor, pixels_k: Tensor,
                       T_kf: Tensor) -> Tensor:
    """(M,) relative disagreement (`recon4d.dynamics.consistency`) at the flat keyframe pixels
    `pixels_k` (M,) between the keyframe's canonical points `points_k` (H, W, 3) and the decoder
    run's prediction of them in the frame's camera `points_kf` (H, W, 3) moved by T_kf (4, 4)
    into the keyframe's camera. The run predicts a mover where it is at the frame's time, the
    canonical points where it was at the keyframe's."""
    ref = points_k.reshape(-1, 3)[pixels_k].double()
    moved = sim3_act(T_kf.double(), points_kf.reshape(-1, 3)[pixels_k].double())
    return relative_disagreement(ref, moved)


def inconsistent_matches(points_k: Tensor, points_kf: Tensor, pixels_k: Tensor,
                         T_kf: Tensor) -> Tensor:
    """(M,) bool: the pixels whose `pixel_disagreement` is `inconsistent`. Calibrated too,
    the check compares the run's prediction X_kf, not the frame points at the match positions
    that the calibrated residuals use: those, sampled across depth edges, flagged static
    pixels beside every edge (oracle, 20-mover walks of 30 frames, seeds 0-3: mask IoU
    0.37-0.44 -> 0.60-0.70, the check on the frozen scene 1.1-1.8x -> 0.95-1.0x the ATE
    without it)."""
    return inconsistent(pixel_disagreement(points_k, points_kf, pixels_k, T_kf))


def fusion_pixels(points_k: Tensor, points_kf: Tensor, pixels_k: Tensor, T_kf: Tensor
                  ) -> Tensor:
    """(M,) bool: which keyframe pixels `pixels_k` (M,) agree with the run's prediction moved
    by T_kf no worse than their median (arguments as `inconsistent_matches`). Fusing a mover
    whose motion since the keyframe is still below the check's threshold would drag the
    keyframe's point along with it, frame after frame, so that the check never flags it (oracle
    walk, 30 frames, 20 movers, seed 1, 3 sigmas: ATE 0.405 -> 0.125 % of the path); a static
    pixel's disagreement is noise, above the median one frame and below it the next."""
    disagreement = pixel_disagreement(points_k, points_kf, pixels_k, T_kf)
    return disagreement <= disagreement.median()


def consistency_outliers(points_ref: Tensor, points_src: Tensor, weight: Tensor,
                         T_init: Tensor) -> Tensor:
    """(M,) bool: the matched points (M, 3) that disagree (`recon4d.dynamics.consistency`)
    once the Sim(3) T_ref_src is solved from them alone (ray and distance residuals, weights
    sqrt(Q) (M,)), starting at `T_init` (4, 4): a keyframe pair's edge, whose current poses
    may be off by drift that a check at those poses would take for movers."""
    ref, src = points_ref.double(), points_src.double()
    T, _ = gauss_newton_sim3(lambda T: ray_dist_residuals(ref, src, T, weight.double()), T_init)
    if not plausible_sim3(T):
        return torch.zeros(len(ref), dtype=torch.bool, device=ref.device)
    return inconsistent(relative_disagreement(ref, sim3_act(T, src)))


def trusted_pose(solve: Callable[[Tensor, Tensor], tuple[Tensor, int]], keyframe: Keyframe,
                 points_kf: Tensor, keep: Tensor, disagreement: Tensor, T_init: Tensor,
                 scale_range: tuple[float, float] = SCALE_RANGE
                 ) -> tuple[tuple[Tensor, Tensor] | None, int]:
    """For a track whose check disowned its pose (`disowned`: movers that the keyframe's mask
    missed pulled it; `disagreement` (M,) of the flat keyframe pixels `keep` (M,) under it):
    the Sim(3) keyframe <- frame that `solve(pixels, start)` finds from `T_init` on the `keep`
    pixels that are not suspects, i.e. flagged before or within `SUSPECT_RADIUS` pixels of a
    known mover (where a sparse mask's misses lie), with the `keep` pixels that disagree under
    it at the trusted pixels' scale: ((T, flagged (M,) bool) or None, Gauss-Newton
    iterations). None without both kinds of pixels, for an implausible pose, when the trusted
    pixels agree no better with it than with the disowned pose (their median disagreement:
    then nothing shows the suspects pulled that one), or when more than `MAX_FLAGGED` of them
    disagree with it."""
    suspect = (keyframe.flags > 0) | grow_mask(keyframe.movers, SUSPECT_RADIUS)
    trusted = ~suspect.reshape(-1)[keep]
    if not 0 < int(trusted.sum()) < len(keep):
        return None, 0
    T, iterations = solve(keep[trusted], T_init)
    if not plausible_sim3(T, scale_range):
        return None, iterations
    again = pixel_disagreement(keyframe.points, points_kf, keep, T)
    if float(again[trusted].median()) >= float(disagreement[trusted].median()):
        return None, iterations
    bad = above_scale(again, trusted)
    if float(bad[trusted].float().mean()) > MAX_FLAGGED:
        return None, iterations
    return (T, bad), iterations


@dataclass
class TrackResult:
    """One frame tracked against the current keyframe.

    `pose_c2w` (4, 4) float64 Sim(3) world <- frame (the start pose as given when `lost`) and
    `T_kf` keyframe <- frame, exactly Sim(3) (`nearest_sim3`), on the predictions' device;
    `valid_fraction` usable matches for the pose, `match_fraction` valid matches with
    Q > Q_MIN, `unique_fraction` distinct frame pixels among the valid matches (all three of
    the keyframe's non-mover pixels); `needs_keyframe` (§6: min of the two fractions below
    `keyframe_overlap`), `lost` (valid fraction below `min_valid`, or a solved Sim(3) that is
    not finite or whose scale left `scale_range`); `matches` start the next frame's search
    (`Matches.pixels`; start afresh after a new keyframe); `iterations` of Gauss-Newton (0 when
    too few matches were usable); `inconsistent` the flat keyframe pixels (F,) the consistency
    check took out of the pose (empty without it).
    """

    pose_c2w: Tensor
    T_kf: Tensor
    valid_fraction: float
    match_fraction: float
    unique_fraction: float
    needs_keyframe: bool
    lost: bool
    matches: Matches
    iterations: int
    inconsistent: Tensor


def plausible_sim3(T: Tensor, scale_range: tuple[float, float] = SCALE_RANGE) -> bool:
    """Whether a solved Sim(3) keyframe <- frame is finite with a scale inside `scale_range`
    (a track on too few true matches, e.g. a frame that does not overlap, can collapse the
    scale)."""
    if not bool(torch.isfinite(T).all()):
        return False
    return scale_range[0] < float(sim3_scale(T)) < scale_range[1]


def track_frame(keyframe: Keyframe, pred_f: dict[str, Tensor], pred_k: dict[str, Tensor],
                pose_init_c2w: Tensor, *, init_pixels: Tensor | None = None,
                intrinsics: Tensor | None = None, exclude_f: Tensor | None = None,
                fuse_keyframe: bool = True, min_valid: float = LOST_FRACTION,
                keyframe_overlap: float = KEYFRAME_FRACTION,
                scale_range: tuple[float, float] = SCALE_RANGE,
                check_consistency: bool = False) -> TrackResult:
    """Track a frame against `keyframe` from one decoder run (`SlamPairSource.decode`, the
    frame as view 1): match, then Sim(3) Gauss-Newton starting at `pose_init_c2w` (the
    previous frame's pose, §8.4.3). The keyframe and start poses are first projected onto
    Sim(3), so poses composed with rounding errors do not bias the solve.

    `init_pixels` (H, W, 2) starts the matching (the previous frame's matches), `intrinsics`
    (3, 3) switches to the calibrated residuals, `exclude_f` (H, W) bool marks the frame's
    movers (the keyframe's own `movers` are excluded too). `min_valid`, `keyframe_overlap` and
    `scale_range` are the lost, keyframe and plausible-scale limits (`TrackResult`).
    `check_consistency` then takes the matches whose points still disagree under the solved
    pose out (`recon4d.dynamics.consistency`: movers the masks missed) and solves again from
    that pose. A pose the check disowns (most matches disagree) gives way to one solved from
    the trusted pixels alone when those fit it better (`trusted_pose`). Unless lost,
    `fuse_keyframe` fuses the frame's prediction of the keyframe, moved into the keyframe's
    camera, into it (with the check, at the closer half of the pixels the pose used only:
    `fusion_pixels`).
    """
    points_f, points_kf = pred_f["pts3d"], pred_k["pts3d"]
    if points_f.shape != keyframe.points.shape or points_kf.shape != keyframe.points.shape:
        raise InputError(f"frame predictions {tuple(points_f.shape)} and "
                         f"{tuple(points_kf.shape)} do not match keyframe {keyframe.index}'s "
                         f"pointmap {tuple(keyframe.points.shape)}")
    matches = match_keyframe(points_f, points_kf, pred_f["desc"], pred_k["desc"],
                             init=init_pixels, exclude_f=exclude_f, exclude_k=keyframe.movers)
    index, matched = matches.index.reshape(-1), matches.valid.reshape(-1)
    weight, good_q, usable = usable_matches(matches, pred_f, pred_k, keyframe.average_conf())
    pixels = static_pixels(keyframe.movers)
    valid_fraction = float(usable.sum()) / pixels
    match_fraction = float(good_q.sum()) / pixels
    unique_fraction = float(index[matched].unique().numel()) / pixels
    needs_keyframe = min(match_fraction, unique_fraction) < keyframe_overlap
    device = points_f.device
    pose_k = nearest_sim3(keyframe.pose_c2w.to(device, torch.float64))
    pose_init = pose_init_c2w.to(device, torch.float64)
    T_init = nearest_sim3(sim3_inverse(pose_k) @ nearest_sim3(pose_init))

    keep = pose_pixels(usable, matches, intrinsics)
    flagged = keep[:0]

    def lost(iterations: int) -> TrackResult:
        return TrackResult(pose_init, T_init, valid_fraction, match_fraction, unique_fraction,
                           needs_keyframe, True, matches, iterations, flagged)

    if valid_fraction < min_valid:
        return lost(0)

    def solve(keep: Tensor, start: Tensor) -> tuple[Tensor, int]:
        return gauss_newton_sim3(frame_residuals(
            keyframe.points.reshape(-1, 3)[keep], points_kf, keep,
            matches.position.reshape(-1, 2)[keep], weight[keep], intrinsics), start)

    T_kf, iterations = solve(keep, T_init)
    if not plausible_sim3(T_kf, scale_range):
        return lost(iterations)
    if check_consistency:
        disagreement = pixel_disagreement(keyframe.points, points_kf, keep, T_kf)
        bad = above_scale(disagreement)
        if disowned(bad):  # `inconsistent` flags none here; the trusted pixels may do better
            bad = torch.zeros_like(bad)
            retry, more = trusted_pose(solve, keyframe, points_kf, keep, disagreement, T_init,
                                       scale_range)
            iterations += more
            if retry is not None:
                T_kf, bad = retry
        if bool(bad.any()):
            flagged, keep = keep[bad], keep[~bad]
            T_kf, more = solve(keep, T_kf)
            iterations += more
            if not plausible_sim3(T_kf, scale_range):
                return lost(iterations)
    T_kf = nearest_sim3(T_kf)
    if fuse_keyframe:
        moved = sim3_act(T_kf.to(points_kf.dtype), points_kf)
        conf = pred_k["conf"].reshape(-1)
        if check_consistency:  # only the closer half of the used pixels (`fusion_pixels`)
            fused = keep[fusion_pixels(keyframe.points, points_kf, keep, T_kf)]
            conf = torch.zeros_like(conf).index_copy(0, fused, conf[fused])
        keyframe.fuse(moved, conf.reshape(pred_k["conf"].shape))
    return TrackResult(pose_k @ T_kf, T_kf, valid_fraction, match_fraction, unique_fraction,
                       needs_keyframe, False, matches, iterations, flagged)
