"""Point-cloud metrics on tiny point sets computed by hand; PLY reading; unprojection."""

from __future__ import annotations

import numpy as np
import pytest

from recon4d.errors import InputError
from recon4d.eval import cloud_metrics
from recon4d.eval.clouds import depth_to_world, voxel_downsample
from recon4d.eval.ply import read_ply_points
from tests.fixtures_eval import write_ply


def test_cloud_metrics_hand_computed():
    pred = np.array([[0.0, 0, 0], [1, 0, 0]])
    gt = np.array([[0.0, 0, 0], [0, 0, 2], [0, 0, 0.3]])
    m = cloud_metrics(pred, gt, threshold=0.5)
    # pred -> gt nearest: 0, 1 ; gt -> pred nearest: 0, 2, 0.3
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["accuracy_median"] == pytest.approx(0.5)
    assert m["completion"] == pytest.approx(2.3 / 3)
    assert m["completion_median"] == pytest.approx(0.3)
    assert m["chamfer"] == pytest.approx((0.5 + 2.3 / 3) / 2)
    # within 0.5: pred 1 of 2, gt 2 of 3
    assert (m["precision"], m["recall"]) == pytest.approx((0.5, 2 / 3))
    assert m["fscore"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert (m["pred_points"], m["gt_points"]) == (2, 3)


def test_cloud_metrics_errors():
    with pytest.raises(InputError, match="points on both sides"):
        cloud_metrics(np.zeros((0, 3)), np.zeros((2, 3)), 0.1)
    with pytest.raises(InputError, match="threshold"):
        cloud_metrics(np.zeros((1, 3)), np.zeros((2, 3)), 0.0)


def test_voxel_downsample_takes_centroids():
    pts = np.array([[0.1, 0.1, 0.1], [0.3, 0.1, 0.1], [1.5, 0.2, 0.2], [-0.1, 0, 0]])
    out = voxel_downsample(pts, 1.0)
    expected = np.array([[-0.1, 0, 0], [0.2, 0.1, 0.1], [1.5, 0.2, 0.2]])
    np.testing.assert_allclose(out[np.lexsort(out.T[::-1])], expected)


def test_depth_to_world_hand_computed():
    k = np.array([[2.0, 0, 1], [0, 2.0, 1], [0, 0, 1]])
    c2w = np.eye(4)
    c2w[:3, 3] = [10, 0, 0]
    depth = np.array([[4.0, 0.0], [0.0, 2.0]])
    pts = depth_to_world(depth, k, c2w, depth > 0)
    # pixel (u=0, v=0), z=4: x = (0-1)*4/2 = -2 ; pixel (1, 1), z=2: x = y = 0
    np.testing.assert_allclose(pts, [[8.0, -2.0, 4.0], [10.0, 0.0, 2.0]])


@pytest.mark.parametrize("binary", [True, False])
def test_ply_reader(tmp_path, binary):
    pts = np.array([[0.5, -1.25, 3.0], [2.0, 4.0, -8.5]])
    write_ply(tmp_path / "c.ply", pts, binary=binary)
    np.testing.assert_array_equal(read_ply_points(tmp_path / "c.ply"), pts)


def test_ply_reader_errors(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"not a ply")
    with pytest.raises(InputError, match="bad.ply: not a PLY"):
        read_ply_points(bad)
    write_ply(tmp_path / "cut.ply", np.ones((10, 3)))
    cut = tmp_path / "cut.ply"
    cut.write_bytes(cut.read_bytes()[:-20])
    with pytest.raises(InputError, match="cut.ply: PLY body is truncated"):
        read_ply_points(cut)
    with pytest.raises(InputError, match="none.ply: file not found"):
        read_ply_points(tmp_path / "none.ply")
