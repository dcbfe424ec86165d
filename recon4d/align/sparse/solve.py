"""The two optimisation stages of the sparse alignment and their schedules.

`reference`: MASt3R's demo schedule, Adam (betas 0.9, 0.9) with a cosine learning rate to 0,
lr 0.07 x 300 iterations on the 3D loss, then lr 0.01 x 300 on the 2D loss, starting from
identity cameras; quaternions renormalised after every step, a non-finite loss stops a stage.
`fast`: the same losses from the Procrustes chain (`init.chain_init`), the root's pose held (it
is the gauge), minimised by L-BFGS with a strong-Wolfe line search: far fewer evaluations. The
3D stage is run to its optimum (the poses come from it); the 2D stage is kept short, since its
objective is flat along focal and anchor depths and longer runs fit the noise of the matches and
depth ratios rather than improve the cameras, sub-pixel matches or not (docs/sparse.md,
benchmarks/bench_sparse_align.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from recon4d.align.sparse.params import SparseParameters

SCHEDULES = ("fast", "reference")
REFERENCE = {"coarse": (0.07, 300), "refine": (0.01, 300)}
FAST_ITERS = {"coarse": 30, "refine": 5}  # L-BFGS iterations per stage
LBFGS_HISTORY = 20

Loss = Callable[[], Tensor]


@dataclass
class StageReport:
    """What a stage did: loss evaluations and the losses before and after."""

    evaluations: int
    start: float
    end: float


def _adam(tensors: list[Tensor], loss_fn: Loss, params: SparseParameters, lr: float,
          niter: int, tick: Callable[[], None]) -> int:
    opt = torch.optim.Adam(tensors, lr=lr, betas=(0.9, 0.9))
    for step in range(niter):
        for group in opt.param_groups:
            group["lr"] = lr * (1 + math.cos(math.pi * step / niter)) / 2
        opt.zero_grad()
        loss = loss_fn()
        if not torch.isfinite(loss):
            return step + 1
        loss.backward()
        opt.step()
        with torch.no_grad():
            params.quat /= params.quat.norm(dim=1, keepdim=True)
        tick()
    return niter


def _lbfgs(tensors: list[Tensor], loss_fn: Loss, niter: int, tick: Callable[[], None]) -> int:
    opt = torch.optim.LBFGS(tensors, lr=1, max_iter=niter, history_size=LBFGS_HISTORY,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9,
                            tolerance_change=1e-12)
    count = 0

    def closure() -> Tensor:
        nonlocal count
        count += 1
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        tick()
        return loss
    opt.step(closure)
    return count


def run_stage(params: SparseParameters, names: list[str], loss_fn: Loss, stage: str,
              schedule: str, frozen: dict[str, Tensor] | None = None,
              tick: Callable[[], None] = lambda: None) -> StageReport:
    """Minimise `loss_fn` over the tensors `names` of `params`; `frozen` maps a name to a
    boolean row mask whose rows keep their values (their gradient is zeroed)."""
    tensors = [getattr(params, name) for name in names]
    hooks = []
    for name, t in zip(names, tensors, strict=True):
        t.requires_grad_(True)
        rows = (frozen or {}).get(name)
        if rows is not None and rows.any():
            keep = (~rows).to(t.dtype).reshape(-1, *([1] * (t.ndim - 1)))
            hooks.append(t.register_hook(lambda g, k=keep: g * k))
    with torch.no_grad():
        start = float(loss_fn())
    try:
        if schedule == "reference":
            lr, niter = REFERENCE[stage]
            count = _adam(tensors, loss_fn, params, lr, niter, tick)
        else:
            count = _lbfgs(tensors, loss_fn, FAST_ITERS[stage], tick)
    finally:
        for hook in hooks:
            hook.remove()
        for t in tensors:
            t.requires_grad_(False)
            t.grad = None
    with torch.no_grad():
        end = float(loss_fn())
    return StageReport(count, start, end)
