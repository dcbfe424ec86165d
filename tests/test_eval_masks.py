"""J and F (DAVIS) on small hand-drawn masks with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from recon4d.errors import InputError
from recon4d.eval import mask_metrics
from recon4d.eval.masks import (
    boundary_f,
    boundary_map,
    boundary_radius,
    region_similarity,
    summarise,
)


def square(size=10, top=2, left=2, side=4) -> np.ndarray:
    """(1, size, size) mask with a filled square."""
    m = np.zeros((1, size, size), bool)
    m[0, top:top + side, left:left + side] = True
    return m


def test_boundary_pixels_of_a_square():
    b = boundary_map(square())[0]
    expected = np.zeros((10, 10), bool)
    expected[2:6, 5] = expected[5, 2:6] = True  # object side: right column, bottom row
    expected[1:6, 1] = expected[1, 2:6] = True  # background side: left column, top row
    np.testing.assert_array_equal(b, expected)
    assert b.sum() == 16


def test_radius_is_proportional_to_the_diagonal():
    assert boundary_radius(10, 10) == 1       # 0.008 * 14.1 = 0.11 -> 1
    assert boundary_radius(100, 100) == 2     # 1.13 -> 2
    assert boundary_radius(200, 200) == 3     # 2.26 -> 3
    assert boundary_radius(480, 854) == 8     # 7.84 -> 8
    assert boundary_radius(480, 854, tolerance=4) == 4


def test_extra_blob_hand_computed():
    gt = square()
    pred = gt.copy()
    pred[0, 8, 8] = True  # a far single pixel: 4 more boundary pixels, none near the square
    assert region_similarity(pred, gt)[0] == pytest.approx(16 / 17)
    # precision 16/20, recall 1 -> F = 2 * 0.8 / 1.8
    assert boundary_f(pred, gt)[0] == pytest.approx(8 / 9)


def test_one_pixel_shift_is_within_tolerance():
    gt, pred = square(), square(left=3)
    assert region_similarity(pred, gt)[0] == pytest.approx(12 / 20)
    assert boundary_f(pred, gt)[0] == pytest.approx(1.0)


@pytest.mark.parametrize("size,shift,perfect", [(200, 3, True), (200, 4, False),
                                                (100, 2, True), (100, 3, False)])
def test_tolerance_scales_with_image_size(size, shift, perfect):
    gt = square(size, top=50, left=50, side=40)
    pred = square(size, top=50, left=50 + shift, side=40)
    f = boundary_f(pred, gt)[0]
    assert (f == pytest.approx(1.0)) == perfect
    if not perfect:
        assert 0.3 < f < 1.0


def test_empty_masks():
    empty, full = np.zeros((1, 10, 10), bool), square()
    assert region_similarity(empty, empty)[0] == 1.0 and boundary_f(empty, empty)[0] == 1.0
    assert region_similarity(empty, full)[0] == 0.0 and boundary_f(empty, full)[0] == 0.0
    assert boundary_f(full, empty)[0] == 0.0


def test_statistics_hand_computed():
    # 8 frames: DAVIS quarters are frames 0-2 and 5-7 (edges round(k * 7 / 4) = 0,2,4,5,7)
    mean, recall, decay = summarise(np.array([1, 1, 1, 1, 0.5, 0.5, 0, 0]))
    assert (mean, recall) == (0.625, 0.5)  # 0.5 is not above 0.5
    assert decay == pytest.approx(1 - 0.5 / 3)
    # 10 frames: edges 0, 2, 5, 7, 9 -> first quarter 0-2, last 7-9
    values = np.arange(10, dtype=float)
    assert summarise(values)[2] == pytest.approx(1.0 - 8.0)


def test_mask_metrics_on_a_sequence():
    gt = np.concatenate([square()] * 4)
    pred = gt.copy()
    pred[2] = False       # frame 2: missed entirely (J = 0, F = 0)
    pred[3, 8, 8] = True  # frame 3: extra blob (J = 16/17, F = 8/9)
    m = mask_metrics(pred, gt)
    # 4 frames: quarters are frames 0-1 and 2-3 (edges 0, 1, 2, 2, 3)
    assert m["J_mean"] == pytest.approx((2 + 16 / 17) / 4)
    assert m["J_recall"] == 0.75
    assert m["J_decay"] == pytest.approx(1 - (16 / 17) / 2)
    assert m["F_mean"] == pytest.approx((2 + 8 / 9) / 4)
    assert m["F_decay"] == pytest.approx(1 - (8 / 9) / 2)
    assert m["JF_mean"] == pytest.approx((m["J_mean"] + m["F_mean"]) / 2)
    assert m["num_frames"] == 4


def test_frame_count_mismatch_is_an_error():
    with pytest.raises(InputError, match="frame counts must match"):
        mask_metrics(np.zeros((3, 8, 8), bool), np.zeros((4, 8, 8), bool))


def test_boundary_f_matches_explicit_distances():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:60, :80]
    frames = []
    for _ in range(6):  # random discs
        cy, cx, r = rng.uniform(10, 50), rng.uniform(10, 70), rng.uniform(4, 15)
        frames.append((yy - cy) ** 2 + (xx - cx) ** 2 < r * r)
    gt = np.stack(frames)
    pred = np.roll(gt, shift=(1, 3), axis=(1, 2)) ^ (rng.random(gt.shape) < 0.01)
    radius = boundary_radius(60, 80)
    expected = []
    for p, g in zip(boundary_map(pred), boundary_map(gt), strict=True):
        pp, gg = np.argwhere(p), np.argwhere(g)
        dist = cdist(pp, gg)
        precision = (dist.min(axis=1) <= radius).mean()
        recall = (dist.min(axis=0) <= radius).mean()
        expected.append(2 * precision * recall / (precision + recall))
    np.testing.assert_allclose(boundary_f(pred, gt), expected, rtol=1e-12)
