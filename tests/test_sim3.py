"""recon4d.geometry.sim3 against scipy rotations, numerical integrals, matrix exponentials and
round trips (batched, float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import expm, polar
from scipy.spatial.transform import Rotation

from recon4d.geometry.sim3 import (
    nearest_sim3,
    sim3_act,
    sim3_adjoint,
    sim3_exp,
    sim3_from_rigid,
    sim3_inverse,
    sim3_log,
    sim3_scale,
    sim3_to_rigid,
)


def random_tangents(count: int, seed: int, max_angle: float = 3.0) -> torch.Tensor:
    """(count, 7) tangent vectors [tau, omega, sigma], rotation angles below `max_angle`."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=(count, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    omega = axis * rng.uniform(0, max_angle, size=(count, 1))
    return torch.from_numpy(np.concatenate(
        (rng.normal(size=(count, 3)), omega, rng.normal(scale=0.5, size=(count, 1))), 1))


def hat(xi: np.ndarray) -> np.ndarray:
    """The 4x4 algebra matrix [[sigma I + [omega]x, tau], [0, 0]] of one tangent vector."""
    tau, (wx, wy, wz), sigma = xi[:3], xi[3:6], xi[6]
    out = np.zeros((4, 4))
    out[:3, :3] = sigma * np.eye(3) + np.array([[0, -wz, wy], [wz, 0, -wx], [-wy, wx, 0]])
    out[:3, 3] = tau
    return out


def test_exp_matches_scipy_rotation_and_integrated_translation():
    xi = random_tangents(6, seed=1)
    T = sim3_exp(xi).numpy()
    for x, t in zip(xi.numpy(), T, strict=True):
        rot = Rotation.from_rotvec(x[3:6]).as_matrix()
        np.testing.assert_allclose(t[:3, :3], np.exp(x[6]) * rot, atol=1e-12)
        # t = integral_0^1 exp(u sigma) R(u omega) du tau, by the trapezoid rule
        u = np.linspace(0, 1, 4001)
        mats = np.exp(u * x[6])[:, None, None] * Rotation.from_rotvec(u[:, None] * x[3:6]
                                                                      ).as_matrix()
        w_matrix = np.trapezoid(mats, u, axis=0)
        np.testing.assert_allclose(t[:3, 3], w_matrix @ x[:3], atol=1e-6)
        np.testing.assert_allclose(t[3], [0, 0, 0, 1])


@pytest.mark.parametrize("max_angle", [1e-9, 0.5, 3.1])
def test_log_inverts_exp_batched(max_angle):
    xi = random_tangents(12, seed=2, max_angle=max_angle).reshape(3, 4, 7)
    T = sim3_exp(xi)
    assert T.shape == (3, 4, 4, 4)
    torch.testing.assert_close(sim3_log(T), xi, atol=1e-9, rtol=0)


def test_log_of_identity_and_pure_scale():
    eye = torch.eye(4, dtype=torch.float64)
    torch.testing.assert_close(sim3_log(eye), torch.zeros(7, dtype=torch.float64))
    scaled = eye.clone()
    scaled[:3, :3] *= 2.0
    scaled[:3, 3] = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    xi = sim3_log(scaled)
    assert xi[6].item() == pytest.approx(np.log(2.0))
    # pure scaling: t = (e^sigma - 1) / sigma * tau
    torch.testing.assert_close(xi[:3], scaled[:3, 3] * np.log(2.0) / (2.0 - 1.0))


def test_inverse_act_and_scale():
    T = sim3_exp(random_tangents(5, seed=3))
    inv = sim3_inverse(T)
    torch.testing.assert_close(inv, torch.from_numpy(np.linalg.inv(T.numpy())), atol=1e-10,
                               rtol=0)
    points = torch.randn(5, 7, 3, dtype=torch.float64)
    moved = sim3_act(T, points)
    expected = torch.einsum("bij,bpj->bpi", T[:, :3, :3], points) + T[:, None, :3, 3]
    torch.testing.assert_close(moved, expected)
    torch.testing.assert_close(sim3_act(inv, moved), points)
    torch.testing.assert_close(sim3_scale(T), torch.exp(random_tangents(5, seed=3)[:, 6]))


def test_adjoint_conjugates_the_algebra():
    T = sim3_exp(random_tangents(4, seed=4))
    xi = random_tangents(4, seed=5, max_angle=1.0)
    adj = sim3_adjoint(T)
    moved = (adj @ xi[..., None])[..., 0]
    for t, x, y in zip(T.numpy(), xi.numpy(), moved.numpy(), strict=True):
        np.testing.assert_allclose(expm(hat(y)), t @ expm(hat(x)) @ np.linalg.inv(t),
                                   atol=1e-9)


def test_rigid_split_and_back():
    T = sim3_exp(random_tangents(3, seed=6))
    rigid, scale = sim3_to_rigid(T)
    rot = rigid[:, :3, :3]
    torch.testing.assert_close(rot @ rot.transpose(-1, -2),
                               torch.eye(3, dtype=torch.float64).expand(3, 3, 3))
    torch.testing.assert_close(rigid[:, :3, 3], T[:, :3, 3])
    torch.testing.assert_close(sim3_from_rigid(rigid, scale), T)


def test_nearest_sim3_keeps_exact_ones_and_projects_perturbed_ones():
    T = sim3_exp(random_tangents(6, seed=7)).reshape(2, 3, 4, 4)
    torch.testing.assert_close(nearest_sim3(T), T, atol=1e-12, rtol=0)
    rng = np.random.default_rng(8)
    off = T.clone()
    off[..., :3, :3] += torch.from_numpy(rng.normal(scale=0.01, size=(2, 3, 3, 3)))
    near = nearest_sim3(off)
    scale = sim3_scale(near)
    rot = near[..., :3, :3] / scale[..., None, None]
    torch.testing.assert_close(rot @ rot.transpose(-1, -2),
                               torch.eye(3, dtype=torch.float64).expand(2, 3, 3, 3))
    assert (torch.linalg.det(rot) > 0).all()
    torch.testing.assert_close(near[..., :3, 3], off[..., :3, 3], atol=0, rtol=0)
    for a, n in zip(off.reshape(-1, 4, 4).numpy(), near.reshape(-1, 4, 4).numpy(), strict=True):
        unitary, positive = polar(a[:3, :3])  # the closest s R: R the polar factor, s = tr(P)/3
        np.testing.assert_allclose(n[:3, :3], np.trace(positive) / 3 * unitary, atol=1e-12)
    # the projection is at least as close to the matrix as the exact Sim(3) it was made from
    assert ((near - off).norm(dim=(-1, -2)) <= (T - off).norm(dim=(-1, -2))).all()


def test_nearest_sim3_of_a_reflection_is_a_rotation():
    mirror = torch.diag(torch.tensor([2.0, 2.0, -2.0, 1.0], dtype=torch.float64))
    near = nearest_sim3(mirror)
    assert float(torch.linalg.det(near[:3, :3])) > 0
    assert float(sim3_scale(near)) == pytest.approx(2.0)
