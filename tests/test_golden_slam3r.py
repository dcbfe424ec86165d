"""Every case of the SLAM3R golden manifest in $RECON4D_GOLDEN_SLAM3R_DIR, at its tolerances.

Nothing here is specific to the shipped cases: architectures, view counts, ids, sizes and file
names come from the manifest. A case whose kind has no runner fails.
"""

from __future__ import annotations

import pytest

from tests.conftest import GOLDEN_SLAM3R_DIR, load_manifest
from tests.golden_runners.compare import check_case

# kind -> "module:function" in tests.golden_runners
RUNNERS = {
    "slam3r_preprocess": "slam3r_files:run_slam3r_preprocess",
    "slam3r_checkpoint": "slam3r_files:run_slam3r_checkpoint",
    "slam3r_keys": "slam3r_files:run_slam3r_keys",
    "slam3r_i2p": "slam3r_models:run_slam3r_i2p",
    "slam3r_l2w": "slam3r_models:run_slam3r_l2w",
    "slam3r_corr": "slam3r_models:run_slam3r_corr",
}

CASES = load_manifest(GOLDEN_SLAM3R_DIR)["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_slam3r_case(case: dict) -> None:
    check_case(case, GOLDEN_SLAM3R_DIR, RUNNERS)
