"""Every case of the golden manifest in $RECON4D_GOLDEN_DIR, at the manifest's tolerances.

Nothing here is specific to the shipped cases: shapes, sizes and file names come from the
manifest. A case whose kind has no runner fails.
"""

from __future__ import annotations

import importlib

import pytest
from safetensors.numpy import load_file

from tests.conftest import GOLDEN_DIR, load_manifest
from tests.golden_runners.compare import assert_matches

# kind -> "module:function" in tests.golden_runners
RUNNERS = {
    "preprocess": "preprocess:run_preprocess",
    "model_forward": "models:run_model_forward",
    "checkpoint": "checkpoints:run_checkpoint",
    "keys": "checkpoints:run_keys",
    "focal": "focal:run_focal",
    "reciprocal_nn": "matching:run_reciprocal_nn",
    "easi3r_attention": "easi3r:run_easi3r_attention",
    "easi3r_masked_forward": "easi3r:run_easi3r_masked_forward",
    "easi3r_aggregation": "aggregation:run_easi3r_aggregation",
}

CASES = load_manifest()["cases"]


def _runner(kind: str):
    module, func = RUNNERS[kind].split(":")
    return getattr(importlib.import_module(f"tests.golden_runners.{module}"), func)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_case(case: dict) -> None:
    kind = case["kind"]
    if kind not in RUNNERS:
        pytest.fail(f"golden case {case['name']!r} has unknown kind {kind!r}")
    actual = _runner(kind)(case, GOLDEN_DIR)
    expected_file = case["files"].get("expected")
    if expected_file is None:
        assert actual is None, f"{kind} runner returned tensors but the case has no expected file"
        return
    expected = load_file(str(GOLDEN_DIR / expected_file))
    assert actual is not None, f"{kind} runner returned nothing to compare"
    missing = sorted(set(expected) - set(actual))
    assert not missing, f"{case['name']}: runner did not produce {missing}"
    per_tensor = case.get("tensor_tolerances", {})
    for name, exp in expected.items():
        tol = per_tensor.get(name, case)
        assert_matches(f"{case['name']}:{name}", actual[name], exp, tol["atol"], tol["rtol"])
