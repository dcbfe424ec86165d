"""Dense matching of a keyframe to a frame from one decoder run (spec §6, §8.4.1-2): iterative
projective matching on ray images, then descriptor refinement, vectorised over all pixels.

For every keyframe pixel p, X_kf[p] is the keyframe's point in frame f's camera; the match is
the frame pixel whose ray (normalised X_ff) points the same way. Levenberg-Marquardt on the
2-D position finds it (always `LM_STEPS` steps; bilinear samples of the ray image and of its
gradients; pixels clamped to [1, W - 2] x [1, H - 2]); a match is valid when its final squared
ray error is below 1e-6 and |X_ff - X_kf| < 0.1 at the truncated pixel. Descriptor refinement
then moves each valid match to the best descriptor dot product among 7 x 7 samples with
step d, d = 5 ... 1, recentred at each level (invalid ones keep the truncated position, which
only seeds the next frame's search). Pixel positions are (u, v) = (column, row); flat pixel
indices are v * W + u.

Beside the integer pixel, a match keeps a sub-pixel position: the ray match's continuous
position where the descriptor refinement lands within `AGREEMENT_PX` of it (the two agree up
to the refinement's last steps; `Matches.precise`), else the refined pixel. Calibrated tracking
puts its frame points on the calibrated rays there: the integer pixel alone is a quantisation
error of up to a pixel on every match, which dominated the tracking error (per-frame ATE on
the oracle, 24 frames at 96 x 64, seed 0: 0.164 % -> 0.082 % of the path). Where the two
searches disagree one of them is wrong by more than `AGREEMENT_PX`; on the oracle that is the
descriptor search (8-12 % of the valid matches of a 64 x 48 walk, 7-9 px RMS from the true
position, against 0.14-0.15 px for the precise ones), so calibrated residuals use precise
matches only.
Uncalibrated tracking does not use the frame position at all (its frame points are the pair's
prediction of the keyframe pixels, `recon4d.slam.mast3r_tracking`), as even the sub-pixel
position carries the pointmaps' noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

LM_STEPS = 10
LAMBDA_INIT = 1e-8
MAX_SQ_RAY_ERROR = 1e-6
MAX_DIST = 0.1
REFINE_RADIUS = 3
REFINE_DILATIONS = (5, 4, 3, 2, 1)
AGREEMENT_PX = 2.0  # a refined pixel this close to the ray match keeps the sub-pixel position
# d/du of an image: [-3 0 3; -10 0 10; -3 0 3] / 32 (its transpose is d/dv)
_GRADIENT = torch.tensor([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]]) / 32


@dataclass
class Matches:
    """Per keyframe pixel (H, W): the flat index of its frame pixel, whether it is valid, and
    its sub-pixel frame position (module doc)."""

    index: Tensor  # (H, W) int64, v * W + u in frame f
    valid: Tensor  # (H, W) bool
    position: Tensor  # (H, W, 2) float32 (u, v) in frame f
    located: Tensor  # (H, W) bool: the ray search converged, whatever the exclusions
    occluded: Tensor  # (H, W) bool: converged onto a frame point nearer by more than max_dist
    precise: Tensor  # (H, W) bool: the two searches agree, `position` is sub-pixel

    def pixels(self, width: int) -> Tensor:
        """(H, W, 2) int64 frame pixels (u, v) of the matches."""
        return torch.stack((self.index % width, self.index // width), -1)


def identity_pixels(height: int, width: int, device: torch.device | None = None) -> Tensor:
    """(H, W, 2) float32 pixel positions (u, v) of every pixel: the start without history."""
    v, u = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                          torch.arange(width, device=device, dtype=torch.float32), indexing="ij")
    return torch.stack((u, v), -1)


def ray_image(points: Tensor) -> Tensor:
    """(9, H, W) unit rays of a pointmap (H, W, 3) followed by their d/du (3) and d/dv (3),
    with reflect padding."""
    rays = F.normalize(points.float(), dim=-1).permute(2, 0, 1)
    kernel = _GRADIENT.to(rays.device)
    weights = torch.stack((kernel, kernel.T))[:, None].repeat(3, 1, 1, 1)  # (6, 1, 3, 3)
    padded = F.pad(rays[None], (1, 1, 1, 1), mode="reflect")
    grads = F.conv2d(padded, weights, groups=3)[0]  # per ray channel: d/du, d/dv
    return torch.cat((rays, grads[0::2], grads[1::2]))


def _sample(image: Tensor, uv: Tensor) -> Tensor:
    """Bilinear samples (N, C) of a (C, H, W) image at N pixel positions (N, 2) = (u, v)."""
    height, width = image.shape[-2:]
    grid = torch.stack((2 * uv[:, 0] / (width - 1) - 1, 2 * uv[:, 1] / (height - 1) - 1), -1)
    out = F.grid_sample(image[None], grid[None, None], mode="bilinear", align_corners=True)
    return out[0, :, 0].T


def projective_match(points_f: Tensor, points_kf: Tensor, init: Tensor | None = None,
                     steps: int = LM_STEPS) -> tuple[Tensor, Tensor]:
    """Continuous frame positions (H_k, W_k, 2) = (u, v) whose ray matches each keyframe point
    `points_kf` (H_k, W_k, 3, in f's camera) on the frame's pointmap `points_f` (H, W, 3), and
    the final squared ray errors (H_k, W_k). `init` (H_k, W_k, 2) starts the search (default:
    the same pixel)."""
    height, width = points_f.shape[:2]
    image = ray_image(points_f)
    target = F.normalize(points_kf.float(), dim=-1).reshape(-1, 3)
    if init is None:
        init = identity_pixels(*points_kf.shape[:2], device=points_f.device)
    low = torch.tensor([1.0, 1.0], device=image.device)
    high = torch.tensor([width - 2.0, height - 2.0], device=image.device)
    uv = torch.minimum(torch.maximum(init.reshape(-1, 2).float(), low), high)
    sample = _sample(image, uv)
    cost = (sample[:, :3] - target).square().sum(-1)
    lam = torch.full_like(cost, LAMBDA_INIT)
    for _ in range(steps):
        residual = sample[:, :3] - target
        jac = torch.stack((sample[:, 3:6], sample[:, 6:9]), -1)  # (N, 3, 2)
        hess = jac.transpose(1, 2) @ jac + lam[:, None, None] * torch.eye(2, device=uv.device)
        grad = (jac.transpose(1, 2) @ residual[..., None])[..., 0]
        det = hess[:, 0, 0] * hess[:, 1, 1] - hess[:, 0, 1] * hess[:, 1, 0]
        step_u = -(hess[:, 1, 1] * grad[:, 0] - hess[:, 0, 1] * grad[:, 1]) / det
        step_v = -(hess[:, 0, 0] * grad[:, 1] - hess[:, 1, 0] * grad[:, 0]) / det
        step = torch.nan_to_num(torch.stack((step_u, step_v), -1), nan=0.0, posinf=0.0,
                                neginf=0.0)
        trial = torch.minimum(torch.maximum(uv + step, low), high)
        trial_sample = _sample(image, trial)
        trial_cost = (trial_sample[:, :3] - target).square().sum(-1)
        better = trial_cost < cost
        uv = torch.where(better[:, None], trial, uv)
        sample = torch.where(better[:, None], trial_sample, sample)
        cost = torch.where(better, trial_cost, cost)
        lam = torch.where(better, lam * 0.1, lam * 10)
    shape = points_kf.shape[:2]
    return uv.reshape(*shape, 2), cost.reshape(shape)


def refine_by_descriptors(pixels: Tensor, desc_f: Tensor, desc_k: Tensor,
                          radius: int = REFINE_RADIUS,
                          dilations: tuple[int, ...] = REFINE_DILATIONS) -> Tensor:
    """Integer frame pixels (..., 2) moved to the best descriptor dot product with their
    keyframe pixels' descriptors `desc_k` (..., D) among (2 radius + 1)^2 samples of `desc_f`
    (H, W, D) spaced d apart, for each d of `dilations`, recentred at each level (samples
    outside the image are skipped)."""
    height, width = desc_f.shape[:2]
    flat_f = desc_f.reshape(-1, desc_f.shape[-1])
    query = desc_k.reshape(-1, desc_k.shape[-1])
    uv = pixels.reshape(-1, 2).long()
    offsets = torch.arange(-radius, radius + 1, device=uv.device)
    for dilation in dilations:
        best_score = torch.full(uv.shape[:1], -torch.inf, device=uv.device)
        best_uv = uv
        for du in (offsets * dilation).tolist():
            for dv in (offsets * dilation).tolist():
                cand = uv + torch.tensor([du, dv], device=uv.device)
                inside = ((cand[:, 0] >= 0) & (cand[:, 0] < width) & (cand[:, 1] >= 0)
                          & (cand[:, 1] < height))
                index = (cand[:, 1] * width + cand[:, 0]).clamp(0, height * width - 1)
                score = (flat_f[index] * query).sum(-1).masked_fill(~inside, -torch.inf)
                better = score > best_score
                best_score = torch.where(better, score, best_score)
                best_uv = torch.where(better[:, None], cand, best_uv)
        uv = best_uv
    return uv.reshape(pixels.shape)


def match_keyframe(points_f: Tensor, points_kf: Tensor, desc_f: Tensor, desc_kf: Tensor,
                   init: Tensor | None = None, exclude_f: Tensor | None = None,
                   exclude_k: Tensor | None = None, max_dist: float = MAX_DIST) -> Matches:
    """Matches of every keyframe pixel in frame f from one decoder run (f as view 1).

    `points_f` X_ff (H, W, 3) and `points_kf` X_kf (H, W, 3) are both in f's camera,
    `desc_f`, `desc_kf` (H, W, D) their descriptors; `init` (H, W, 2) pixel positions (u, v)
    start the search (e.g. the previous frame's `Matches.pixels`; default the same pixel).
    `exclude_f` / `exclude_k` (H, W) bool mark pixels that may not match (movers): a keyframe
    pixel excluded, or matched onto an excluded frame pixel, is invalid (but still `located`
    where the ray search converged: where a keyframe's movers are in the frame). A keyframe
    pixel whose ray lands on a frame point nearer to the camera by more than `max_dist` is
    `occluded`: something in the frame stands in front of it.
    """
    width = points_f.shape[1]
    uv, sq_error = projective_match(points_f, points_kf, init)
    pixels = uv.long()  # truncated, not rounded (positions are >= 1)
    index = pixels[..., 1] * width + pixels[..., 0]
    landed = points_f.reshape(-1, 3)[index]
    close = (landed - points_kf).norm(dim=-1) < max_dist
    converged = sq_error < MAX_SQ_RAY_ERROR
    located = converged & close
    occluded = converged & (landed.norm(dim=-1) < points_kf.norm(dim=-1) - max_dist)
    valid = located
    if exclude_k is not None:
        valid = valid & ~exclude_k
    chosen = valid.nonzero(as_tuple=True)  # only matches that can be used are refined
    pixels[chosen] = refine_by_descriptors(pixels[chosen], desc_f, desc_kf[chosen])
    index = pixels[..., 1] * width + pixels[..., 0]
    if exclude_f is not None:
        valid = valid & ~exclude_f.reshape(-1)[index]
    agree = (pixels - uv).abs().amax(-1) < AGREEMENT_PX
    return Matches(index, valid, torch.where(agree[..., None], uv, pixels.float()), located,
                   occluded, agree)
