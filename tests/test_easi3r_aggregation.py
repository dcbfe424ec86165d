"""Every `easi3r_aggregation` case of the golden manifest, at the manifest's per-tensor tolerances.

The same runner is what `tests/test_golden.py` registers for the kind; this file tests it on its
own so the aggregation is covered whichever golden set $RECON4D_GOLDEN_DIR names.
"""

from __future__ import annotations

import pytest
from safetensors.numpy import load_file

from tests.conftest import GOLDEN_DIR, load_manifest
from tests.golden_runners.aggregation import run_easi3r_aggregation
from tests.golden_runners.compare import assert_matches

CASES = [c for c in load_manifest()["cases"] if c["kind"] == "easi3r_aggregation"]


@pytest.mark.skipif(not CASES, reason="the golden set has no easi3r_aggregation case")
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_easi3r_aggregation_case(case: dict) -> None:
    actual = run_easi3r_aggregation(case, GOLDEN_DIR)
    expected = load_file(str(GOLDEN_DIR / case["files"]["expected"]))
    assert set(expected) <= set(actual), sorted(set(expected) - set(actual))
    for name, exp in expected.items():
        tol = case.get("tensor_tolerances", {}).get(name, case)
        assert_matches(f"{case['name']}:{name}", actual[name], exp, tol["atol"], tol["rtol"])
