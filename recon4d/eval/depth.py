"""Video depth metrics after one scale (and shift) alignment per sequence.

Valid pixels: ground truth finite, > 0 and (with a cap) < `max_depth`. With d = aligned
prediction, g = ground truth: abs_rel = mean |d-g|/g, sq_rel = mean (d-g)^2/g,
rmse = sqrt(mean (d-g)^2), log_rmse = sqrt(mean (ln d' - ln g)^2) and delta_1_25^k = fraction
with max(d'/g, g/d') < 1.25^k, where d' = max(d, LOG_FLOOR).

Two protocols (`DEPTH_PROTOCOLS`):
- "monst3r" (default), the published one (MonST3R's `depth_evaluation`): the alignment is fitted
  on every valid pixel, zero and negative predictions included (they count in the medians, which
  are the lower of the two middle values for even counts, as `torch.median`); aligned
  predictions are clipped only to an upper `clip_max` the caller asks for (Sintel: 70); zero and
  negative ones enter abs_rel, sq_rel and rmse as they are and count as LOG_FLOOR in log_rmse and
  the deltas; a non-finite prediction at a valid pixel makes the fit NaN, hence the metrics (the
  reference's median, least squares and Adam give NaN there). In disparity space a non-positive
  depth has disparity 0 and back, the target is 1 / (g + DISPARITY_EPS). An extra `valid` mask
  selects the pixels scored, not the pixels fitted.
- "robust" (recon4d's earlier default): the fit uses only valid pixels with a finite positive
  prediction (and inside `valid`), medians average the two middle values, aligned predictions are
  clipped to [MIN_DEPTH, cap] (the smaller of `max_depth` and `clip_max`), and a valid pixel
  without a usable aligned prediction is set to MIN_DEPTH, a failure in every metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recon4d.errors import InputError
from recon4d.options.choices import DEPTH_ALIGN_MODES, DEPTH_PROTOCOLS, FIT_SPACES, SCALE_SHIFT_FITS

MIN_DEPTH = 1e-3  # "robust": what unusable or too small aligned predictions become
LOG_FLOOR = 1e-5  # both: predictions are floored to this in log_rmse and the deltas
DISPARITY_EPS = 1e-8  # "monst3r": target disparity 1 / (g + eps)

Median = Callable[[np.ndarray], float]


def lower_median(values: np.ndarray) -> float:
    """The lower of the two middle values for an even count (`torch.median`); NaN if any is."""
    if np.isnan(values).any():
        return float("nan")
    return float(np.partition(values, (len(values) - 1) // 2)[(len(values) - 1) // 2])


def mean_median(values: np.ndarray) -> float:
    """The usual median: the mean of the two middle values for an even count."""
    return float(np.median(values))


def fit_l2(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares (s, t) minimising sum (s x + t - y)^2."""
    xm, ym = x.mean(), y.mean()
    var = np.square(x - xm).sum()
    scale = float(((x - xm) * (y - ym)).sum() / var) if var > 0 else float(ym / xm)
    return scale, float(ym - scale * xm)


@dataclass(frozen=True)
class _LadProblem:
    """min_t sum |y - s x - t| over all points, of which only (x, y) are still undecided.

    The others are known to stay above (or below) the median residual on the current bracket
    of s: they add the constant `fixed_slope` to the slope and shift the median's ranks.
    """

    x: np.ndarray
    y: np.ndarray
    ranks: tuple[int, int]  # ranks among the undecided points whose mean is the median
    fixed_slope: float = 0.0

    def order_stats(self, scale: float) -> tuple[np.ndarray, float, float]:
        """Residuals y - s x and the two order statistics averaged into the median."""
        resid = self.y - scale * self.x
        part = np.partition(resid, self.ranks)
        return resid, float(part[self.ranks[0]]), float(part[self.ranks[1]])

    def slope(self, scale: float) -> tuple[float, float]:
        """Slope of the cost minimised over t, with respect to s, and the optimal t."""
        resid, low, high = self.order_stats(scale)
        shift = 0.5 * (low + high)
        resid -= shift
        return self.fixed_slope - float(np.dot(self.x, np.sign(resid))), shift

    def restrict(self, lo: float, hi: float) -> _LadProblem:
        """Drop the points that stay above or below the median for every s in [lo, hi].

        Needs x > 0: residuals and their order statistics then decrease as s grows.
        """
        r_lo, _, high_lo = self.order_stats(lo)
        r_hi, low_hi, _ = self.order_stats(hi)
        above, below = r_hi > high_lo, r_lo < low_hi
        keep = ~(above | below)
        shift = int(below.sum())
        return _LadProblem(self.x[keep], self.y[keep],
                           (self.ranks[0] - shift, self.ranks[1] - shift),
                           self.fixed_slope - float(self.x[above].sum() - self.x[below].sum()))


def fit_l1(x: np.ndarray, y: np.ndarray, rel_tol: float = 1e-13) -> tuple[float, float]:
    """Exact least-absolute-deviation (s, t) minimising sum |s x + t - y|.

    For a fixed s the best t is the median of y - s x, and the remaining cost is convex and
    piecewise linear in s, so its slope is a non-decreasing step function. Its sign change is
    bracketed, then located by regula falsi with the Illinois safeguard down to `rel_tol`
    relative width (the optimum to machine precision). With x > 0 (depths, disparities) the
    points that cannot change side of the median within the bracket are set aside, so later
    steps only touch a shrinking fraction of the pixels.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(x)
    if np.ptp(x) == 0:  # constant prediction: only s x + t matters; as fit_l2, put it in s
        target = float(np.median(y))
        return (target / x[0], 0.0) if x[0] != 0 else (0.0, target)
    prob = _LadProblem(x, y, ((n - 1) // 2, n // 2))
    shrink = bool(np.all(x > 0))
    center = fit_l2(x, y)[0]  # usually close: start with a narrow bracket around it
    step = 0.01 * max(abs(center), 1e-12)
    lo, hi = center - step, center + step
    g_lo, g_hi = prob.slope(lo)[0], prob.slope(hi)[0]
    while g_lo > 0 or g_hi < 0:  # widen until the slope changes sign inside [lo, hi]
        step *= 2
        if g_lo > 0:
            lo, g_lo = lo - step, prob.slope(lo - step)[0]
        else:
            hi, g_hi = hi + step, prob.slope(hi + step)[0]
    side = 0
    while g_lo != 0 and g_hi != 0 and hi - lo > rel_tol * max(abs(lo), abs(hi)):
        if shrink:
            prob = prob.restrict(lo, hi)
        mid = hi - g_hi * (hi - lo) / (g_hi - g_lo)
        if not lo < mid < hi:
            mid = 0.5 * (lo + hi)
            if not lo < mid < hi:
                break
        g_mid = prob.slope(mid)[0]
        if g_mid >= 0:
            hi, g_hi = mid, g_mid
            g_lo = g_lo / 2 if side > 0 else g_lo  # Illinois: avoid a stuck endpoint
            side = 1
        else:
            lo, g_lo = mid, g_mid
            g_hi = g_hi / 2 if side < 0 else g_hi
            side = -1
    scale = lo if g_lo == 0 else hi if g_hi == 0 else 0.5 * (lo + hi)
    return scale, prob.slope(scale)[1]


def fit_reference(x: np.ndarray, y: np.ndarray, lr: float = 1e-4, steps: int = 1000,
                  median: Median = mean_median) -> tuple[float, float]:
    """The reference's approximate L1 fit: Adam on mean |s x + t - y| from (median ratio, 0).

    Adam with torch's defaults (betas 0.9, 0.999, eps 1e-8). With lr 1e-4 and 1000 steps each
    parameter moves by about 0.1 at most, so the result stays close to median scaling; kept
    only to compare with published numbers. (The reference sums instead of averaging, which
    changes Adam's steps only through eps.)
    """
    params = np.array([median(y) / median(x), 0.0])
    moment1, moment2 = np.zeros(2), np.zeros(2)
    beta1, beta2 = 0.9, 0.999
    for k in range(1, steps + 1):
        sign = np.sign(params[0] * x + params[1] - y)
        grad = np.array([np.mean(sign * x), np.mean(sign)])
        moment1 = beta1 * moment1 + (1 - beta1) * grad
        moment2 = beta2 * moment2 + (1 - beta2) * grad * grad
        step = (moment1 / (1 - beta1 ** k)) / (np.sqrt(moment2 / (1 - beta2 ** k)) + 1e-8)
        params = params - lr * step
    return float(params[0]), float(params[1])


def fit_alignment(x: np.ndarray, y: np.ndarray, align: str, fit: str = "l1",
                  median: Median = mean_median) -> tuple[float, float]:
    """(scale, shift) mapping predictions `x` onto targets `y` (1-D arrays of fit pixels).

    `median` serves median scaling and the reference fit's start.
    """
    if align == "none":
        return 1.0, 0.0
    if align == "median":
        return median(y) / median(x), 0.0
    if align == "scale":
        return float((x * y).sum() / (x * x).sum()), 0.0
    if align != "scale_shift":
        raise InputError(f"unknown depth alignment {align!r}; choose one of {DEPTH_ALIGN_MODES}")
    if fit == "l1":
        return fit_l1(x, y)
    if fit == "l2":
        return fit_l2(x, y)
    if fit == "reference":
        return fit_reference(x, y, median=median)
    raise InputError(f"unknown scale_shift fit {fit!r}; choose one of {SCALE_SHIFT_FITS}")


def depth_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """The seven standard metrics between 1-D predictions and positive ground truths.

    Logs and ratios use the predictions floored to LOG_FLOOR (the reference's guard of log 0).
    """
    diff = pred - gt
    floored = np.maximum(pred, LOG_FLOOR)  # NaN stays NaN
    ratio = np.maximum(floored / gt, gt / floored)
    return {
        "abs_rel": float(np.mean(np.abs(diff) / gt)),
        "sq_rel": float(np.mean(diff * diff / gt)),
        "rmse": float(np.sqrt(np.mean(diff * diff))),
        "log_rmse": float(np.sqrt(np.mean(np.square(np.log(floored) - np.log(gt))))),
        "delta_1_25": float(np.mean(ratio < 1.25)),
        "delta_1_25_2": float(np.mean(ratio < 1.25 ** 2)),
        "delta_1_25_3": float(np.mean(ratio < 1.25 ** 3)),
    }


def _to_disparity(depth: np.ndarray) -> np.ndarray:
    """1 / depth where depth > 0, else 0 (the reference's conversion, both ways)."""
    out = np.zeros_like(depth)
    positive = depth > 0
    out[positive] = 1.0 / depth[positive]
    return out


def _published(p: np.ndarray, g: np.ndarray, scored: np.ndarray, align: str, fit: str,
               space: str, clip_max: float | None) -> dict[str, float]:
    """The "monst3r" protocol on the valid pixels' predictions `p` and ground truths `g`."""
    x, y = (p, g) if space == "depth" else (_to_disparity(p), 1.0 / (g + DISPARITY_EPS))
    if align != "none" and not np.isfinite(x).all():
        scale = shift = float("nan")
    else:
        scale, shift = fit_alignment(x, y, align, fit, median=lower_median)
    with np.errstate(invalid="ignore", over="ignore"):
        aligned = scale * x + shift
    if space == "disparity":
        aligned = _to_disparity(aligned)
    if clip_max is not None:
        aligned = np.minimum(aligned, clip_max)  # NaN stays NaN, as torch.clamp
    aligned, g = aligned[scored], g[scored]
    with np.errstate(invalid="ignore", over="ignore"):
        errors = depth_errors(aligned, g)
    failures = int((~(np.isfinite(aligned) & (aligned > 0))).sum())
    return {**errors, "scale": float(scale), "shift": float(shift),
            "valid_pixels": int(g.size), "failures": failures}


def _robust(p: np.ndarray, g: np.ndarray, align: str, fit: str, space: str,
            cap: float | None) -> dict[str, float]:
    """The "robust" protocol on the valid (and extra-mask) pixels' `p` and `g`."""
    usable = np.isfinite(p) & (p > 0)
    to_space = (lambda v: v) if space == "depth" else np.reciprocal
    scale, shift = fit_alignment(to_space(p[usable]), to_space(g[usable]), align, fit)
    with np.errstate(divide="ignore", invalid="ignore"):
        aligned = to_space(scale * to_space(p) + shift)
    ok = usable & np.isfinite(aligned) & (aligned > 0)
    aligned = np.clip(np.where(ok, aligned, MIN_DEPTH), MIN_DEPTH,
                      np.inf if cap is None else cap)
    return {**depth_errors(aligned, g), "scale": float(scale), "shift": float(shift),
            "valid_pixels": int(g.size), "failures": int((~ok).sum())}


def depth_metrics(pred: np.ndarray, gt: np.ndarray, align: str = "median",
                  max_depth: float | None = None, fit: str = "l1", space: str = "depth",
                  valid: np.ndarray | None = None, protocol: str = "monst3r",
                  clip_max: float | None = None) -> dict[str, float]:
    """Depth metrics of a (N, H, W) prediction against (N, H, W) ground truth (module docstring).

    `align`: none | median | scale (least squares) | scale_shift; `fit` (scale_shift only):
    l1 (exact least absolute deviation), l2 (least squares) or reference (the reference's
    Adam run); `space`: fit in depth or disparity; `valid`: optional extra (N, H, W) mask;
    `protocol`: monst3r (published) or robust; `clip_max`: upper clip of aligned predictions
    (the published Sintel protocol asks for 70). Also returns `scale`, `shift`, `valid_pixels`
    and `failures` (scored pixels whose aligned prediction is not a finite positive depth).
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise InputError(f"depth prediction {pred.shape} and ground truth {gt.shape} must both "
                         "be (N, H, W) of the same shape")
    for name, value, allowed in (("fit space", space, FIT_SPACES),
                                 ("depth protocol", protocol, DEPTH_PROTOCOLS)):
        if value not in allowed:
            raise InputError(f"unknown {name} {value!r}; choose one of {allowed}")
    if clip_max is not None and not clip_max > 0:
        raise InputError(f"the depth clip must be positive, got {clip_max}")
    mask = np.isfinite(gt) & (gt > 0)
    if max_depth is not None:
        mask &= gt < max_depth
    extra = np.ones(gt.shape, bool) if valid is None else np.asarray(valid, bool)
    if not (mask & extra).any():
        raise InputError("no valid ground-truth depth pixel (all zero, or above max_depth)")
    if not (mask & extra & np.isfinite(pred) & (pred > 0)).any():
        raise InputError("the depth prediction has no positive value at a valid pixel")
    if protocol == "monst3r":
        return _published(pred[mask].astype(np.float64), gt[mask].astype(np.float64),
                          extra[mask], align, fit, space, clip_max)
    mask &= extra
    caps = [c for c in (max_depth, clip_max) if c is not None]
    return _robust(pred[mask].astype(np.float64), gt[mask].astype(np.float64), align, fit,
                   space, min(caps) if caps else None)
