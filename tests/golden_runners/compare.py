"""The golden comparison rule (numpy allclose convention, exact for integer types), and one
case run against its expected file."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file


def check_case(case: dict, root: Path, runners: dict[str, str]) -> None:
    """Run `case` of the set in `root` with its runner ("module:function" of
    tests.golden_runners, by kind) and compare every expected tensor at the manifest's
    tolerances; a kind without a runner fails."""
    kind = case["kind"]
    if kind not in runners:
        pytest.fail(f"golden case {case['name']!r} has unknown kind {kind!r}")
    module, func = runners[kind].split(":")
    runner = getattr(importlib.import_module(f"tests.golden_runners.{module}"), func)
    actual = runner(case, root)
    expected_file = case["files"].get("expected")
    if expected_file is None:
        assert actual is None, f"{kind} runner returned tensors but the case has no expected file"
        return
    expected = load_file(str(root / expected_file))
    assert actual is not None, f"{kind} runner returned nothing to compare"
    missing = sorted(set(expected) - set(actual))
    assert not missing, f"{case['name']}: runner did not produce {missing}"
    per_tensor = case.get("tensor_tolerances", {})
    for name, exp in expected.items():
        tol = per_tensor.get(name, case)
        assert_matches(f"{case['name']}:{name}", actual[name], exp, tol["atol"], tol["rtol"])


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
