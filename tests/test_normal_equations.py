"""Hand-derived Gauss-Newton systems of the alignment against torch.autograd of their objectives.

Both objectives are written here from their definitions, with the parameter steps laid out as
the modules' named slices say; the Jacobians, the Gauss-Newton matrices J^T J, the Schur
complements of the eliminated unknowns and the gradients all come from autograd, in float64.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from recon4d.align import camera_fit, pose_graph
from recon4d.align.camera_fit import LOG_FOCAL, NUM_PARAMS, normal_equations
from recon4d.align.pose_graph import (
    CAM_LOG_SCALE,
    CAM_SIM_SIZE,
    LOG_SCALE,
    POSE_SIZE,
    SIM_ROT,
    SIM_SIZE,
    SIM_TRANS,
    TermMoments,
    reduced_system,
    virtual_residuals,
)

F64 = torch.float64


def cross_matrix(v: torch.Tensor) -> torch.Tensor:
    """[v]x for (..., 3) vectors."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), -1).reshape(*v.shape, 3)


def rotation(v: torch.Tensor) -> torch.Tensor:
    """exp([v]x) by the matrix exponential (no Rodrigues formula)."""
    return torch.linalg.matrix_exp(cross_matrix(v))


def schur(h: torch.Tensor, g: torch.Tensor, keep: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """The system (h, g) with every unknown outside `keep` eliminated."""
    index = torch.arange(h.shape[0])
    k, e = index[keep], index[~torch.isin(index, index[keep])]
    solve = torch.linalg.solve(h[e][:, e], torch.cat((h[e][:, k], g[e, None]), 1))
    return h[k][:, k] - h[k][:, e] @ solve[:, :-1], g[k] - h[k][:, e] @ solve[:, -1]


def test_camera_fit_system_is_the_depth_eliminated_gauss_newton_system():
    gen = torch.Generator().manual_seed(0)
    n, height, width = 2, 4, 5
    rot = rotation(0.3 * torch.randn(n, 3, generator=gen, dtype=F64))
    trans = torch.randn(n, 3, generator=gen, dtype=F64)
    focals = torch.tensor([6.0, 4.5], dtype=F64)
    pps = torch.tensor([[2.0, 1.5], [2.2, 1.4]], dtype=F64)
    v, u = torch.meshgrid(torch.arange(height, dtype=F64), torch.arange(width, dtype=F64),
                          indexing="ij")
    weight = torch.rand(n, height * width, generator=gen, dtype=F64) + 0.5

    def rays_of(f: torch.Tensor) -> torch.Tensor:  # ((u - cx) / f, (v - cy) / f, 1)
        x = (u.reshape(-1) - pps[:, :1]) / f[:, None]
        y = (v.reshape(-1) - pps[:, 1:]) / f[:, None]
        return torch.stack((x, y, torch.ones_like(x)), -1)

    # world targets: points at depths 2..4 along the rays, moved off them by noise
    depth0 = 2 + 2 * torch.rand(n, height * width, generator=gen, dtype=F64)
    cam = depth0[..., None] * rays_of(focals) + 0.1 * torch.randn(
        n, height * width, 3, generator=gen, dtype=F64)
    targets = cam @ rot.transpose(1, 2) + trans[:, None]

    def residuals(step: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """sqrt(w) (D ray - R'^T (Y - t')) with R' = R exp([w]x), t' = t + R v, f' = f e^phi."""
        new_rot = rot @ rotation(step[:, camera_fit.ROT])
        new_trans = trans + (rot @ step[:, camera_fit.TRANS, None])[..., 0]
        q = (targets - new_trans[:, None]) @ new_rot
        rays = rays_of(focals * torch.exp(step[:, LOG_FOCAL]))
        return weight.sqrt()[..., None] * (depth[..., None] * rays - q)

    zero = torch.zeros(n, NUM_PARAMS, dtype=F64)
    q = (targets - trans[:, None]) @ rot
    rays = rays_of(focals)
    depth = (rays * q).sum(-1) / rays.square().sum(-1)  # the optimum along each ray
    hess, grad = normal_equations(q, rays, depth, weight)

    j_step, j_depth = jacobian(residuals, (zero, depth))
    res = residuals(zero, depth)
    for i in range(n):
        jac = torch.cat((j_step[i, :, :, i].reshape(-1, NUM_PARAMS),
                         j_depth[i, :, :, i].reshape(-1, height * width)), 1)
        full_h, full_g = jac.T @ jac, jac.T @ res[i].reshape(-1)
        want_h, want_g = schur(full_h, full_g, slice(0, NUM_PARAMS))
        torch.testing.assert_close(hess[i], want_h, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(grad[i], want_g, rtol=1e-9, atol=1e-9)

    # and the gradient is half the objective's: 0.5 d/dstep sum w |D ray - q|^2
    step = zero.clone().requires_grad_()
    (0.5 * residuals(step, depth).square().sum()).backward()
    torch.testing.assert_close(grad, step.grad, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("camera_scale", [False, True])
def test_pose_graph_system_is_the_similarity_eliminated_gauss_newton_system(camera_scale):
    gen = torch.Generator().manual_seed(1)
    n_images, points, pull = 3, 6, 0.3
    edges = torch.tensor([[0, 1], [1, 2], [0, 2]])
    n_edges = len(edges)
    rot = rotation(0.5 * torch.randn(n_images, 3, generator=gen, dtype=F64))
    if camera_scale:  # the maps exp(sigma_n) R_n
        rot = (0.5 + torch.rand(n_images, generator=gen, dtype=F64))[:, None, None] * rot
    trans = torch.randn(n_images, 3, generator=gen, dtype=F64)
    step_size = CAM_SIM_SIZE if camera_scale else POSE_SIZE
    sim = (1 + 0.5 * torch.rand(n_edges, generator=gen, dtype=F64),
           rotation(0.5 * torch.randn(n_edges, 3, generator=gen, dtype=F64)),
           torch.randn(n_edges, 3, generator=gen, dtype=F64))
    q = torch.randn(n_edges, 2, points, 3, generator=gen, dtype=F64)  # camera-frame points
    p = torch.randn(n_edges, 2, points, 3, generator=gen, dtype=F64)  # pair points
    w = torch.rand(n_edges, 2, points, generator=gen, dtype=F64) + 0.5
    z = torch.cat((q, p), -1)
    total = w.sum(-1)
    mean = (w[..., None] * z).sum(-2) / total[..., None]
    centred = z - mean[..., None, :]
    scatter = torch.einsum("ekm,ekmi,ekmj->ekij", w, centred, centred)
    moments = TermMoments(total, mean, scatter)

    def residuals(pose_step: torch.Tensor, sim_step: torch.Tensor) -> torch.Tensor:
        """sqrt(w) (R_n q + t_n - y) after the left steps; y = s R_e p + t_e likewise stepped;
        with camera scales the camera's step also multiplies by exp(sigma_n)."""
        turn = rotation(pose_step[:, pose_graph.ROT])
        if camera_scale:
            turn = torch.exp(pose_step[:, CAM_LOG_SCALE])[:, None, None] * turn
        new_rot = turn @ rot
        new_trans = (turn @ trans[..., None])[..., 0] + pose_step[:, pose_graph.TRANS]
        world = q @ new_rot[edges].transpose(-1, -2) + new_trans[edges][:, :, None]
        scale, srot, strans = sim
        pair = scale[:, None, None, None] * p @ srot[:, None].transpose(-1, -2)
        pair = pair + strans[:, None, None]
        moved = (torch.exp(sim_step[:, LOG_SCALE])[:, None, None, None]
                 * pair @ rotation(sim_step[:, SIM_ROT])[:, None].transpose(-1, -2)
                 + sim_step[:, None, None, SIM_TRANS])
        return w.sqrt()[..., None] * (world - moved)

    pose0 = torch.zeros(n_images, step_size, dtype=F64)
    sim0 = torch.zeros(n_edges, SIM_SIZE, dtype=F64)
    j_pose, j_sim = jacobian(residuals, (pose0, sim0))
    jac = torch.cat((j_pose.reshape(-1, n_images * step_size),
                     j_sim.reshape(-1, n_edges * SIM_SIZE)), 1)
    # half the gradient of sum |r|^2 - mu sum log s, from the objective itself
    steps = (pose0.clone().requires_grad_(), sim0.clone().requires_grad_())
    cost = (residuals(*steps).square().sum()
            - pull * torch.log(sim[0] * torch.exp(steps[1][:, LOG_SCALE])).sum())
    (0.5 * cost).backward()
    full_g = torch.cat((steps[0].grad.reshape(-1), steps[1].grad.reshape(-1)))
    want_h, want_g = schur(jac.T @ jac, full_g, slice(0, n_images * step_size))

    hess, grad = reduced_system(virtual_residuals(moments), edges, n_images, rot, trans, sim,
                                pull, camera_scale=camera_scale)
    # the solver adds a ridge of 1e-9 x trace to the similarity block: errors ~1e-9 of the size
    torch.testing.assert_close(hess.dense(), want_h, rtol=0,
                               atol=1e-7 * want_h.abs().max().item())
    torch.testing.assert_close(grad, want_g, rtol=0, atol=1e-7 * want_g.abs().max().item())
