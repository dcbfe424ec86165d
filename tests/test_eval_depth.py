"""Depth metrics: hand-computed values and alignment modes on data with a known scale/shift."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from recon4d.errors import InputError
from recon4d.eval.depth import MIN_DEPTH, depth_metrics, fit_l1, fit_reference
from recon4d.eval.resize import crop_box, resize_stack


def scene_depth(seed: int, shape=(3, 12, 16)) -> np.ndarray:
    """Positive depths between 1 and 9."""
    return np.random.default_rng(seed).uniform(1.0, 9.0, shape)


def test_metrics_hand_computed():
    gt = np.array([[[1.0, 2.0, 2.0, 4.0]]])
    pred = np.array([[[1.0, 2.0, 4.0, 3.0]]])
    m = depth_metrics(pred, gt, align="none")
    # errors: 0, 0, +2, -1
    assert m["abs_rel"] == pytest.approx((0 + 0 + 2 / 2 + 1 / 4) / 4)
    assert m["sq_rel"] == pytest.approx((4 / 2 + 1 / 4) / 4)
    assert m["rmse"] == pytest.approx(np.sqrt(5 / 4))
    assert m["log_rmse"] == pytest.approx(np.sqrt((np.log(2) ** 2 + np.log(4 / 3) ** 2) / 4))
    # ratios 1, 1, 2, 4/3: below 1.25 -> 2 of 4; below 1.5625 -> 3; below 1.953125 -> 3
    assert (m["delta_1_25"], m["delta_1_25_2"], m["delta_1_25_3"]) == (0.5, 0.75, 0.75)
    assert (m["valid_pixels"], m["failures"], m["scale"], m["shift"]) == (4, 0, 1.0, 0.0)


def test_median_scaling_recovers_the_scale():
    gt = scene_depth(0)
    m = depth_metrics(gt / 3.0, gt, align="median")
    assert m["scale"] == pytest.approx(3.0)
    assert m["abs_rel"] < 1e-12 and m["delta_1_25"] == 1.0
    # one scale for the whole sequence: frames scaled differently keep their error
    pred = gt / 3.0
    pred[0] *= 2
    assert depth_metrics(pred, gt, align="median")["abs_rel"] > 0.1


def test_least_squares_scale_hand_computed():
    gt = np.array([[[1.0, 2.0, 3.0]]])
    pred = np.array([[[1.0, 1.0, 1.0]]])
    # s = sum(p g) / sum(p^2) = 6 / 3 = 2
    assert depth_metrics(pred, gt, align="scale")["scale"] == pytest.approx(2.0)
    assert depth_metrics(pred, gt, align="median")["scale"] == pytest.approx(2.0)


@pytest.mark.parametrize("fit", ["l1", "l2"])
def test_scale_shift_recovers_known_affine(fit):
    gt = scene_depth(1)
    pred = (gt - 0.7) / 2.5  # gt = 2.5 * pred + 0.7
    m = depth_metrics(pred, gt, align="scale_shift", fit=fit)
    assert m["scale"] == pytest.approx(2.5, rel=1e-10)
    assert m["shift"] == pytest.approx(0.7, abs=1e-10)
    assert m["abs_rel"] < 1e-10


def test_l1_fit_ignores_outliers_that_bias_least_squares():
    gt = scene_depth(2)
    pred = (gt - 0.4) / 1.5
    rng = np.random.default_rng(3)
    bad = rng.random(gt.shape) < 0.3
    gt[bad] = rng.uniform(1.0, 30.0, bad.sum())  # 30 % gross errors in the measured depth
    l1 = depth_metrics(pred, gt, align="scale_shift", fit="l1")
    l2 = depth_metrics(pred, gt, align="scale_shift", fit="l2")
    assert (l1["scale"], l1["shift"]) == pytest.approx((1.5, 0.4), abs=1e-9)
    assert abs(l2["scale"] - 1.5) > 0.1


@pytest.mark.parametrize("seed,ties", [(4, False), (5, True), (6, True)])
def test_l1_fit_reaches_the_linear_programming_optimum(seed, ties):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 5, 150)
    y = 2.0 * x + 1.0 + rng.standard_cauchy(150)
    if ties:  # repeated values, as in quantised depth maps
        x, y = np.round(x, 1), np.round(y, 1)
    s, t = fit_l1(x, y)
    # min sum u  s.t.  -u <= y - s x - t <= u, variables (s, t, u)
    n = len(x)
    a_ub = np.block([[-x[:, None], -np.ones((n, 1)), -np.eye(n)],
                     [x[:, None], np.ones((n, 1)), -np.eye(n)]])
    lp = linprog(np.r_[0, 0, np.ones(n)], A_ub=a_ub, b_ub=np.r_[-y, y],
                 bounds=[(None, None)] * 2 + [(0, None)] * n, method="highs")
    assert np.abs(y - s * x - t).sum() == pytest.approx(lp.fun, rel=1e-9)
    if not ties:  # with ties the optimum need not be unique
        assert (s, t) == pytest.approx(tuple(lp.x[:2]), rel=1e-6, abs=1e-6)


def test_reference_fit_barely_moves_from_median_scaling():
    gt = scene_depth(5)
    pred = (gt - 2.0) / 0.5 + 10.0  # true scale 0.5, shift -3: far from the median start
    x, y = pred.ravel(), gt.ravel()
    s0 = np.median(y) / np.median(x)
    s, t = fit_reference(x, y)
    # Adam moves each parameter by about lr per step: 1000 * 1e-4 = 0.1 in all
    assert abs(s - s0) <= 0.2 and abs(t) <= 0.2
    assert abs(s - s0) > 1e-3  # it did run
    exact = depth_metrics(pred, gt, align="scale_shift", fit="l1")
    assert (exact["scale"], exact["shift"]) == pytest.approx((0.5, -3.0), abs=1e-9)


def test_reference_fit_is_torch_adam():
    rng = np.random.default_rng(8)
    x = rng.uniform(1, 5, 300)
    y = 0.5 * x + 7 + rng.normal(0, 0.1, 300)
    scale = torch.tensor(float(np.median(y) / np.median(x)), dtype=torch.float64,
                         requires_grad=True)
    shift = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([scale, shift], lr=1e-3)
    for _ in range(200):
        optimizer.zero_grad()
        (scale * torch.from_numpy(x) + shift - torch.from_numpy(y)).abs().mean().backward()
        optimizer.step()
    assert fit_reference(x, y, lr=1e-3, steps=200) == pytest.approx(
        (scale.item(), shift.item()), abs=1e-12)


@pytest.mark.parametrize("protocol,rel", [("robust", 1e-9), ("monst3r", 1e-6)])
def test_disparity_space_fit(protocol, rel):
    gt = scene_depth(6)
    disp = 0.2 / gt + 0.05  # predicted disparity = 0.2 * true disparity + 0.05
    pred = 1.0 / disp
    m = depth_metrics(pred, gt, align="scale_shift", fit="l2", space="disparity",
                      protocol=protocol)
    # the published target is 1 / (g + 1e-8): exact only to about 1e-8
    assert (m["scale"], m["shift"]) == pytest.approx((5.0, -0.25), rel=rel)
    assert m["abs_rel"] < rel
    # in depth space an affine map cannot undo it
    assert depth_metrics(pred, gt, align="scale_shift", fit="l2")["abs_rel"] > 1e-3


def test_max_depth_cap_and_failures():
    gt = np.array([[[1.0, 2.0, 80.0, 0.0, 4.0]]])
    pred = np.array([[[1.0, 2.0, 80.0, 5.0, 0.0]]])
    m = depth_metrics(pred, gt, align="none", max_depth=70.0, protocol="robust")
    # valid: 1, 2, 4 (80 above the cap, 0 no ground truth); zero prediction at 4 -> failure
    assert (m["valid_pixels"], m["failures"]) == (3, 1)
    assert m["abs_rel"] == pytest.approx((4 - MIN_DEPTH) / 4 / 3)
    assert m["delta_1_25_3"] == pytest.approx(2 / 3)
    # predictions above the cap are clipped to it
    m2 = depth_metrics(np.array([[[100.0]]]), np.array([[[50.0]]]), align="none",
                       max_depth=70.0, protocol="robust")
    assert m2["abs_rel"] == pytest.approx(20 / 50)


def test_bad_inputs():
    with pytest.raises(InputError, match="same shape"):
        depth_metrics(np.ones((2, 3, 4)), np.ones((1, 3, 4)))
    with pytest.raises(InputError, match="no valid ground-truth"):
        depth_metrics(np.ones((1, 2, 2)), np.zeros((1, 2, 2)))
    with pytest.raises(InputError, match="unknown depth alignment"):
        depth_metrics(np.ones((1, 2, 2)), np.ones((1, 2, 2)), align="affine")
    with pytest.raises(InputError, match="unknown depth protocol"):
        depth_metrics(np.ones((1, 2, 2)), np.ones((1, 2, 2)), protocol="nyu")


def keys(d: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel."""
    d = abs(d)
    if d <= 1:
        return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
    return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a if d < 2 else 0.0


def test_resize_and_crop_geometry():
    grid = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    near = resize_stack(grid, (4, 6), "nearest")
    np.testing.assert_array_equal(near[0], np.repeat(np.repeat(grid[0], 2, 0), 2, 1))
    # bicubic x2 of a ramp, by hand: output 4 samples source 1.75, i.e. pixels 0..3 at
    # distances 1.75, 0.75, 0.25, 1.25 with Keys weights (a = -0.75)
    ramp = np.tile(np.arange(8, dtype=np.float32) ** 2, (8, 1))[None]
    up = resize_stack(ramp, (16, 16), "bicubic")
    w = [keys(1.75), keys(0.75), keys(0.25), keys(1.25)]
    assert sum(w) == pytest.approx(1.0)
    assert up[0, 8, 4] == pytest.approx(np.dot(w, [0, 1, 4, 9]), abs=1e-5)
    # a 512x208 prediction of a 1024x436 frame covers the centred 1024x416 rows
    assert crop_box((436, 1024), (208, 512), "crop") == (slice(10, 426), slice(0, 1024))
    assert crop_box((480, 854), (288, 512), "crop") == (slice(0, 480), slice(0, 853))
    assert crop_box((100, 300), (100, 100), "crop") == (slice(0, 100), slice(100, 200))


def test_l1_fit_of_a_constant_prediction_puts_the_median_in_the_scale():
    x = np.full(7, 2.0)
    y = np.array([1.0, 3.0, 3.0, 4.0, 9.0, 9.0, 9.0])
    s, t = fit_l1(x, y)
    assert (s, t) == (2.0, 0.0)  # s * 2 = median 4: the least sum of absolute deviations


def test_extra_valid_mask_excludes_pixels():
    gt = np.full((1, 4, 5), 2.0)
    pred = gt * 3
    pred[0, 0, :2] = 100.0  # wrong, but outside the extra mask
    valid = np.ones(gt.shape, bool)
    valid[0, 0, :2] = False
    out = depth_metrics(pred, gt, align="median", valid=valid)
    assert out["valid_pixels"] == 18 and out["abs_rel"] == pytest.approx(0.0, abs=1e-12)
    assert depth_metrics(pred, gt, align="median")["abs_rel"] > 1.0


# The two protocols on one row with a zero prediction and a gross outlier:
# ground truth 2, 4, 6, 8, 10 (all below the cap 70), prediction 0, 2, 3, 6, 100.
OUTLIER_GT = np.array([[[2.0, 4.0, 6.0, 8.0, 10.0]]])
OUTLIER_PRED = np.array([[[0.0, 2.0, 3.0, 6.0, 100.0]]])


def test_published_protocol_is_the_default_and_keeps_zeros_and_outliers():
    m = depth_metrics(OUTLIER_PRED, OUTLIER_GT, align="median", max_depth=70.0)
    # medians over all five valid pixels, the zero included: 6 / 3 -> scale 2
    # aligned 0, 4, 6, 12, 200 (no clip): errors -2, 0, 0, +4, +190
    assert (m["scale"], m["shift"], m["valid_pixels"], m["failures"]) == (2.0, 0.0, 5, 1)
    assert m["abs_rel"] == pytest.approx((2 / 2 + 4 / 8 + 190 / 10) / 5)  # 4.1
    assert m["sq_rel"] == pytest.approx((4 / 2 + 16 / 8 + 190 ** 2 / 10) / 5)  # 722.8
    assert m["rmse"] == pytest.approx(np.sqrt((4 + 16 + 190 ** 2) / 5))
    # the zero counts as 1e-5 in the logs and ratios
    logs = [np.log(1e-5 / 2), 0, 0, np.log(12 / 8), np.log(200 / 10)]
    assert m["log_rmse"] == pytest.approx(np.sqrt(np.mean(np.square(logs))))
    # ratios 2e5, 1, 1, 1.5, 20
    assert (m["delta_1_25"], m["delta_1_25_2"], m["delta_1_25_3"]) == pytest.approx(
        (2 / 5, 3 / 5, 3 / 5))


def test_published_protocol_clips_only_when_asked():
    # as above, with the Sintel clip at 70: 200 -> 70, error +60 instead of +190
    m = depth_metrics(OUTLIER_PRED, OUTLIER_GT, align="median", max_depth=70.0, clip_max=70.0)
    assert m["abs_rel"] == pytest.approx((2 / 2 + 4 / 8 + 60 / 10) / 5)  # 1.5
    assert m["rmse"] == pytest.approx(np.sqrt((4 + 16 + 60 ** 2) / 5))


def test_robust_protocol_fits_positive_predictions_and_clips_to_the_cap():
    m = depth_metrics(OUTLIER_PRED, OUTLIER_GT, align="median", max_depth=70.0,
                      protocol="robust")
    # fit on the four positive predictions: medians (6 + 8) / 2 = 7 and (3 + 6) / 2 = 4.5
    scale = 7 / 4.5
    assert m["scale"] == pytest.approx(scale)
    # aligned 2 -> 28/9, 3 -> 42/9, 6 -> 84/9, 100 -> 1400/9 clipped to 70; the zero -> 1e-3
    aligned = np.array([MIN_DEPTH, 28 / 9, 42 / 9, 84 / 9, 70.0])
    gt = OUTLIER_GT.ravel()
    assert m["abs_rel"] == pytest.approx(np.mean(np.abs(aligned - gt) / gt))
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((aligned - gt) ** 2)))
    assert m["log_rmse"] == pytest.approx(np.sqrt(np.mean(np.log(aligned / gt) ** 2)))
    assert m["failures"] == 1


def test_published_median_is_the_lower_middle_value_zeros_included():
    gt = np.array([[[2.0, 4.0, 6.0, 8.0]]])
    pred = np.array([[[0.0, 1.0, 3.0, 3.0]]])
    # published: lower medians of 2,4,6,8 and 0,1,3,3 -> 4 / 1
    assert depth_metrics(pred, gt)["scale"] == 4.0
    # robust: the zero left out, means of the middle values of 4,6,8 and 1,3,3 -> 6 / 3
    assert depth_metrics(pred, gt, protocol="robust")["scale"] == 2.0


def test_negative_prediction_enters_the_published_metrics_as_it_is():
    gt = np.array([[[1.0, 2.0]]])
    pred = np.array([[[-1.0, 2.0]]])
    m = depth_metrics(pred, gt, align="none")
    # error -2 at the first pixel: abs_rel (2/1 + 0) / 2, rmse sqrt(4 / 2); log of 1e-5
    assert m["abs_rel"] == pytest.approx(1.0) and m["rmse"] == pytest.approx(np.sqrt(2))
    assert m["log_rmse"] == pytest.approx(np.sqrt(np.log(1e-5) ** 2 / 2))
    assert (m["delta_1_25"], m["failures"]) == (0.5, 1)
    robust = depth_metrics(pred, gt, align="none", protocol="robust")
    assert robust["abs_rel"] == pytest.approx((1 - MIN_DEPTH) / 2)  # -1 became 1e-3


def test_published_disparity_fit_maps_a_zero_depth_to_zero_disparity():
    gt = np.array([[[1.0, 2.0, 4.0]]])
    pred = np.array([[[0.0, 1.0, 2.0]]])
    m = depth_metrics(pred, gt, space="disparity")
    # disparities 0, 1, 0.5 against 1, 0.5, 0.25: medians 0.5 / 0.5 -> scale 1 (up to the
    # 1e-8 added to the ground truth); aligned depths 0, 1, 2: abs_rel (1 + 0.5 + 0.5) / 3
    assert m["scale"] == pytest.approx(1.0, rel=1e-6)
    assert m["abs_rel"] == pytest.approx(2 / 3, rel=1e-6)
    robust = depth_metrics(pred, gt, space="disparity", protocol="robust")
    # positive pixels only: medians 0.375 / 0.75 -> scale 0.5, aligned 2, 4; the zero -> 1e-3
    assert robust["scale"] == pytest.approx(0.5)
    assert robust["abs_rel"] == pytest.approx((1 - MIN_DEPTH) / 3)


def test_published_fit_uses_pixels_outside_the_extra_mask():
    gt = np.array([[[2.0, 4.0, 6.0]]])
    pred = np.array([[[1.0, 2.0, 0.5]]])
    valid = np.array([[[True, True, False]]])
    m = depth_metrics(pred, gt, valid=valid)
    # fitted on all three: medians 4 / 1 -> scale 4; scored on two: 4 vs 2, 8 vs 4
    assert (m["scale"], m["valid_pixels"]) == (4.0, 2)
    assert m["abs_rel"] == pytest.approx(1.0)
    robust = depth_metrics(pred, gt, valid=valid, protocol="robust")
    assert robust["scale"] == pytest.approx(2.0) and robust["abs_rel"] == pytest.approx(0.0)


def test_non_finite_prediction_poisons_only_the_published_metrics():
    gt = np.array([[[1.0, 2.0, 3.0]]])
    pred = np.array([[[np.nan, 2.0, 3.0]]])
    m = depth_metrics(pred, gt)
    assert np.isnan(m["scale"]) and np.isnan(m["abs_rel"]) and m["failures"] == 3
    robust = depth_metrics(pred, gt, protocol="robust")
    assert robust["scale"] == pytest.approx(1.0) and robust["failures"] == 1
