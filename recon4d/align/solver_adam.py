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

from recon4d.align.objective import Objective, chunk_loss
from recon4d.align.state import AlignState
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

    def __init__(self, state: AlignState, scale_gauge: bool) -> None:
        f32 = torch.float32
        self.pw_quat = matrix_to_quat(state.pw_rot).to(f32).requires_grad_()
        self.pw_tau = signed_log1p(state.pw_trans / state.pw_scale[:, None]).to(f32)
        self.pw_tau.requires_grad_()
        self.pw_log_scale = torch.log(state.pw_scale).to(f32).requires_grad_()
        self.im_quat = matrix_to_quat(state.rot).to(f32).requires_grad_()
        self.im_tau = signed_log1p(state.trans).to(f32).requires_grad_()
        self.log_depth = torch.log(state.depths).to(f32).requires_grad_()
        self.focal = (FOCAL_BRAKE * torch.log(state.focals)).to(f32).requires_grad_()
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
        return (quat_to_matrix(self.im_quat), signed_expm1(self.im_tau),
                torch.exp(self.focal / FOCAL_BRAKE))

    def world(self) -> Tensor:
        """(N, H*W, 3) world points."""
        rot, trans, focals = self.cameras()
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


def solve_adam(obj: Objective, state: AlignState, fixed_pose: Tensor, fix_focal: bool,
               scale_gauge: bool, niter: int = NITER, lr: float = LR, lr_min: float = LR_MIN,
               schedule: str = "cosine", callback: Callable[[int, float], None] | None = None
               ) -> tuple[AlignState, list[float]]:
    """Run the reference Adam schedule from `state`; returns the final state and loss history."""
    learning_rate(0, max(niter, 1), lr, lr_min, schedule)  # validates the schedule name
    params = _Params(state, scale_gauge)
    frozen = [(params.im_quat, fixed_pose), (params.im_tau, fixed_pose)]
    if fix_focal:
        frozen.append((params.focal, torch.ones_like(fixed_pose)))
    opt = torch.optim.Adam(params.tensors(), lr=lr, betas=(0.9, 0.9))
    history = []
    for step in range(niter):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, niter, lr, lr_min, schedule)
        opt.zero_grad()
        world = params.world()
        leaf = world.detach().requires_grad_()
        total = 0.0
        for c in obj.chunks():
            loss = chunk_loss(leaf, c, *params.pairwise(c.sl)) / obj.norm
            loss.backward()
            total += loss.item()
        world.backward(leaf.grad)
        for tensor, mask in frozen:
            tensor.grad[mask] = 0
        opt.step()
        history.append(total)
        if callback is not None:
            callback(step, total)
    return params.to_state(), history
