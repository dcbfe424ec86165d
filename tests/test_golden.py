"""Every case of the golden manifest in $RECON4D_GOLDEN_DIR, at the manifest's tolerances.

Nothing here is specific to the shipped cases: shapes, sizes and file names come from the
manifest. A case whose kind has no runner fails.
"""

from __future__ import annotations

import pytest

from tests.conftest import GOLDEN_DIR, load_manifest
from tests.golden_runners.compare import check_case

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


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_case(case: dict) -> None:
    check_case(case, GOLDEN_DIR, RUNNERS)
