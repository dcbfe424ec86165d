"""The golden comparison rule (numpy allclose convention, exact for integer types)."""

from __future__ import annotations

import numpy as np


def assert_matches(name: str, actual, expected: np.ndarray, atol: float, rtol: float) -> None:
    """Assert `actual` equals `expected` under the manifest's rule, naming the tensor on failure."""
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    if expected.dtype.kind in "biu" or (atol == 0 and rtol == 0):
        assert actual.dtype.kind == expected.dtype.kind or expected.dtype.kind == "f", (
            f"{name}: dtype {actual.dtype} != {expected.dtype}")
        mismatch = int((actual != expected).sum()) if expected.dtype.kind != "f" else int(
            (~((actual == expected) | (np.isnan(actual) & np.isnan(expected)))).sum())
        assert mismatch == 0, f"{name}: {mismatch} of {expected.size} elements differ (exact)"
        return
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    both_nan = np.isnan(a) & np.isnan(e)
    same_inf = np.isinf(e) & (a == e)
    ok = both_nan | same_inf | (np.abs(a - e) <= atol + rtol * np.abs(e))
    if not ok.all():
        diff = np.where(ok, 0.0, np.abs(a - e))
        worst = np.unravel_index(np.nanargmax(diff), diff.shape)
        raise AssertionError(
            f"{name}: {int((~ok).sum())} of {ok.size} elements outside atol={atol} rtol={rtol}; "
            f"worst at {worst}: actual {a[worst]!r} expected {e[worst]!r}")
