"""Relative pose and matched 3D points from pointmaps: exact synthetic truth and scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from recon4d.errors import Recon4dError
from recon4d.matching.two_view import fit_similarity, robust_similarity, two_view_geometry


def random_similarity(seed: int):
    rot = torch.from_numpy(Rotation.random(random_state=seed).as_matrix())
    return 1.7, rot, torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)


def test_fit_similarity_recovers_a_known_transform_and_agrees_with_scipy():
    scale, rot, trans = random_similarity(0)
    src = torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    dst = scale * src @ rot.T + trans
    fit = fit_similarity(src, dst)
    assert fit.scale == pytest.approx(scale, rel=1e-10)
    torch.testing.assert_close(fit.rotation, rot, atol=1e-10, rtol=0)
    torch.testing.assert_close(fit.translation, trans, atol=1e-10, rtol=0)
    # noisy data: the rotation equals scipy's Kabsch solution on the centred points
    noisy = dst + 0.05 * torch.randn(50, 3, generator=torch.Generator().manual_seed(1),
                                     dtype=torch.float64)
    fit = fit_similarity(src, noisy)
    ref, _ = Rotation.align_vectors((noisy - noisy.mean(0)).numpy(), (src - src.mean(0)).numpy())
    np.testing.assert_allclose(fit.rotation.numpy(), ref.as_matrix(), atol=1e-9)


def test_fit_similarity_is_a_proper_rotation_for_a_reflected_cloud():
    src = torch.randn(30, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    dst = src * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)  # a mirror image
    fit = fit_similarity(src, dst)
    assert torch.linalg.det(fit.rotation).item() == pytest.approx(1.0)


def test_robust_similarity_ignores_outliers():
    scale, rot, trans = random_similarity(3)
    gen = torch.Generator().manual_seed(3)
    src = torch.randn(200, 3, generator=gen, dtype=torch.float64)
    dst = scale * src @ rot.T + trans
    dst[:30] += 5 * torch.randn(30, 3, generator=gen, dtype=torch.float64)  # 15% wrong matches
    fit, inliers = robust_similarity(src, dst)
    assert not inliers[:30].any() and inliers[30:].all()
    torch.testing.assert_close(fit.rotation, rot, atol=1e-9, rtol=0)
    assert fit.scale == pytest.approx(scale, rel=1e-9)
    with pytest.raises(Recon4dError, match="at least 3 matches"):
        robust_similarity(src[:2], dst[:2])


@pytest.mark.parametrize("size", [1e-3, 1.0, 1e3])
def test_robust_similarity_keeps_every_exact_match_at_any_scale(size):
    """Exact matches have rounding-noise residuals: a floor relative to the cloud's spread keeps
    all of them (3 x the median alone drops some), and the gross outliers still go."""
    for seed in range(8):
        gen = torch.Generator().manual_seed(seed)
        rot = torch.from_numpy(Rotation.random(random_state=seed).as_matrix())
        src = size * torch.randn(100, 3, generator=gen, dtype=torch.float64)
        dst = 0.8 * src @ rot.T + size * torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
        dst[:20] += 3 * size * torch.randn(20, 3, generator=gen, dtype=torch.float64)
        fit, inliers = robust_similarity(src, dst)
        assert not inliers[:20].any(), (size, seed)
        assert inliers[20:].all(), (size, seed, int((~inliers[20:]).sum()))
        assert fit.scale == pytest.approx(0.8, rel=1e-9)


def test_two_view_geometry_from_pointmaps():
    """Camera 2 sits at a known pose in camera 1; its own-frame pointmap is half the size."""
    h, w = 12, 16
    gen = torch.Generator().manual_seed(4)
    pts1 = torch.randn(h, w, 3, generator=gen, dtype=torch.float64)
    pts1[..., 2] += 5.0
    _, rot, trans = random_similarity(5)
    # matched pixels: image-1 pixel (x, y) shows the same point as image-2 pixel (w-1-x, y)
    xy1 = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(h), indexing="xy"), -1)
    xy1 = xy1.reshape(-1, 2)
    xy2 = torch.stack([w - 1 - xy1[:, 0], xy1[:, 1]], 1)
    pts2 = torch.zeros(h, w, 3, dtype=torch.float64)
    # X1 = R X2 * 2 + t  (camera-2 prediction at half scale) -> X2 = R^T (X1 - t) / 2
    pts2[xy2[:, 1], xy2[:, 0]] = (pts1[xy1[:, 1], xy1[:, 0]] - trans) @ rot / 2
    res = two_view_geometry(pts1, pts2, xy1, xy2)
    torch.testing.assert_close(res.pose[:3, :3], rot, atol=1e-9, rtol=0)
    torch.testing.assert_close(res.pose[:3, 3], trans, atol=1e-9, rtol=0)
    assert res.scale == pytest.approx(2.0)
    torch.testing.assert_close(res.pts3d, pts1[xy1[:, 1], xy1[:, 0]].float())
    assert res.residual.max() < 1e-5 and res.inliers.all()
