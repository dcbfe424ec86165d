"""Reference solver: the originals' parameterisation and full-batch Adam schedule.

Unknowns are stored as the reference stores them (quaternion + signed-log translation, log
pairwise scale with the geometric-mean gauge, log depth, 20 log focal) and optimised with Adam
(betas 0.9, 0.9) for `niter` steps under a cosine or linear learning-rate schedule. The gradient
is accumulated over edge chunks so memory stays O(N H W + chunk), not O(E H W).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from recon4d.align.flow_term import EPS as FLOW_EPS
from recon4d.align.flow_term import FlowTerm
from recon4d.align.objective import Objective, chunk_loss
from recon4d.align.smooth_term import smooth_loss
from recon4d.align.state import AlignState
from recon4d.align.video import VideoSetup
from recon4d.geometry.cameras import intrinsics_matrix, unproject_depth
from recon4d.geometry.quaternions import matrix_to_quat, quat_to_matrix
from recon4d.geometry.transforms import apply_similarity

NITER = 300
LR = 0.01
LR_MIN = 1e-6
FOCAL_BRAKE = 20.0  # focal stored as FOCAL_BRAKE * log f (an Adam step-size preconditioner)
SCHEDULES = ("cosine", "linear")


def learning_rate(step: int, niter: int, lr: float, lr_min: float, schedule: str) -> float:
    """Learning rate at `step` of `niter` (t = step / niter)."""
    t = step / niter
    if schedule == "cosine":
        return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * t)) / 2
    if schedule == "linear":
        return lr + (lr_min - lr) * t
    raise ValueError(f"schedule must be one of {SCHEDULES}, not {schedule!r}")


def signed_log1p(x: Tensor) -> Tensor:
    """sign(x) * log(1 + |x|): how the reference parameterisation stores translations."""
    return torch.sign(x) * torch.log1p(x.abs())


def signed_expm1(x: Tensor) -> Tensor:
    """Inverse of `signed_log1p`."""
    return torch.sign(x) * torch.expm1(x.abs())


class _Params:
    """The reference parameterisation, initialised from an AlignState."""

    def __init__(self, state: AlignState, scale_gauge: bool, shared_focal: bool = False) -> None:
        f32 = torch.float32
        self.pw_quat = matrix_to_quat(state.pw_rot).to(f32).requires_grad_()
        self.pw_tau = signed_log1p(state.pw_trans / state.pw_scale[:, None]).to(f32)
        self.pw_tau.requires_grad_()
        self.pw_log_scale = torch.log(state.pw_scale).to(f32).requires_grad_()
        self.im_quat = matrix_to_quat(state.rot).to(f32).requires_grad_()
        self.im_tau = signed_log1p(state.trans).to(f32).requires_grad_()
        self.log_depth = torch.log(state.depths).to(f32).requires_grad_()
        focals = state.focals[:1] if shared_focal else state.focals  # shared: one parameter
        self.focal = (FOCAL_BRAKE * torch.log(focals)).to(f32).requires_grad_()
        self.pps = state.pps.to(f32)
        self.log_base = float(self.pw_log_scale.detach().mean()) if scale_gauge else None

    def tensors(self) -> list[Tensor]:
        return [self.pw_quat, self.pw_tau, self.pw_log_scale, self.im_quat, self.im_tau,
                self.log_depth, self.focal]

    def pairwise(self, sl: slice = slice(None)) -> tuple[Tensor, Tensor, Tensor]:
        """(scale, R, t) of the edges `sl`; the gauge factor involves every edge's scale."""
        log_scale = self.pw_log_scale
        if self.log_base is not None:
            log_scale = log_scale + (self.log_base - log_scale.mean())
        scale = torch.exp(log_scale[sl])
        return scale, quat_to_matrix(self.pw_quat[sl]), scale[:, None] * signed_expm1(
            self.pw_tau[sl])

    def cameras(self) -> tuple[Tensor, Tensor, Tensor]:
        n = self.im_quat.shape[0]
        return (quat_to_matrix(self.im_quat), signed_expm1(self.im_tau),
                torch.exp(self.focal / FOCAL_BRAKE).expand(n))

    def world(self, rot: Tensor, trans: Tensor, focals: Tensor) -> Tensor:
        """(N, H*W, 3) world points of the cameras (rot, trans, focals)."""
        n, h, w = self.log_depth.shape
        pts = unproject_depth(torch.exp(self.log_depth), intrinsics_matrix(focals, self.pps))
        return apply_similarity(rot, trans, pts).reshape(n, h * w, 3)

    def to_state(self) -> AlignState:
        with torch.no_grad():
            rot, trans, focals = self.cameras()
            scale, prot, ptrans = self.pairwise()
            return AlignState(rot.double(), trans.double(), focals.double(), self.pps.double(),
                              torch.exp(self.log_depth).clone(), scale.double(), prot.double(),
                              ptrans.double())


def _flow_gradients(flow: FlowTerm, weight: float, gate: float,
                    cameras: tuple[Tensor, Tensor, Tensor], pps: Tensor, depth: Tensor
                    ) -> tuple[float, Tensor]:
    """Weighted L_flow (0 when gated) and a surrogate whose gradient is its gradient; the edge
    chunks are differentiated one at a time (memory of one chunk)."""
    leaves = [t.detach().requires_grad_() for t in (*cameras, depth)]
    total, count = flow.totals(*leaves[:3], pps, leaves[3])
    value = total / (count + FLOW_EPS)
    if value > gate:  # MonST3R's gate: the term is off while its loss is large
        return 0.0, depth.new_zeros(())
    for part, _ in flow.chunk_sums(*leaves[:3], pps, leaves[3]):
        (weight * part / (count + FLOW_EPS)).backward()
    grads = [t.grad if t.grad is not None else torch.zeros_like(t) for t in leaves]
    surrogate = sum((g * t).sum() for g, t in zip(grads, (*cameras, depth), strict=True))
    return weight * value, surrogate


def solve_adam(obj: Objective, state: AlignState, fixed_pose: Tensor, fix_focal: bool,
               scale_gauge: bool, niter: int = NITER, lr: float = LR, lr_min: float = LR_MIN,
               schedule: str = "cosine", callback: Callable[[int, float], None] | None = None,
               video: VideoSetup | None = None) -> tuple[AlignState, list[float]]:
    """Run the reference Adam schedule from `state`; returns the final state and loss history.

    `video`: MonST3R's terms added to the loss (smoothness every step; flow from step
    ceil(flow_start * niter), gated), one focal parameter when shared.
    """
    learning_rate(0, max(niter, 1), lr, lr_min, schedule)  # validates the schedule name
    terms = None if video is None else video.terms
    params = _Params(state, scale_gauge, shared_focal=terms is not None and terms.shared_focal)
    frozen = [(params.im_quat, fixed_pose), (params.im_tau, fixed_pose)]
    if fix_focal:
        frozen.append((params.focal, torch.ones_like(params.focal, dtype=torch.bool)))
    flow_from = None if video is None else video.flow_start_iteration(niter)
    flow = None if flow_from is None else FlowTerm(
        obj.data.edges, video.flows, video.stride, video.masks, terms.pixel_threshold,
        obj.data.height, obj.data.width)
    opt = torch.optim.Adam(params.tensors(), lr=lr, betas=(0.9, 0.9))
    history = []
    for step in range(niter):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, niter, lr, lr_min, schedule)
        opt.zero_grad()
        cameras = params.cameras()
        world = params.world(*cameras)
        leaf = world.detach().requires_grad_()
        total = 0.0
        for c in obj.chunks():
            loss = chunk_loss(leaf, c, *params.pairwise(c.sl)) / obj.norm
            loss.backward()
            total += loss.item()
        surrogate = (world * leaf.grad).sum()
        if terms is not None and terms.smooth_weight > 0 and len(cameras[0]) > 1:
            smooth = terms.smooth_weight * smooth_loss(*cameras[:2], terms.translation_weight)
            surrogate = surrogate + smooth
            total += smooth.item()
        if flow is not None and step >= flow_from:
            value, part = _flow_gradients(flow, terms.flow_weight, terms.flow_gate, cameras,
                                          params.pps, flow.grid_depths(torch.exp(params.log_depth)))
            surrogate = surrogate + part
            total += value
        surrogate.backward()
        for tensor, mask in frozen:
            tensor.grad[mask] = 0
        opt.step()
        history.append(total)
        if callback is not None:
            callback(step, total)
    return params.to_state(), history
