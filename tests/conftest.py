"""Shared test fixtures: where the golden sets live, checked once before any test is collected.

The public golden sets are vendored in `tests/data` (copied and checked by
`scripts/vendor_golden.py`), so a clone alone runs its tests. `$RECON4D_GOLDEN_DIR` and
`$RECON4D_GOLDEN_SLAM3R_DIR` point the same tests at other sets in the same format; a folder
that is missing or invalid stops the run with one message naming it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from scripts.vendor_golden import MANIFEST, check_set

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
# environment variable -> the vendored set it defaults to
GOLDEN_SETS = {
    "RECON4D_GOLDEN_DIR": TEST_DATA / "golden",
    "RECON4D_GOLDEN_SLAM3R_DIR": TEST_DATA / "golden-slam3r",
}


def golden_set_dir(variable: str) -> Path:
    """The golden folder named by `variable`, or its vendored default when unset or empty."""
    return Path(os.environ.get(variable) or GOLDEN_SETS[variable])


GOLDEN_DIR = golden_set_dir("RECON4D_GOLDEN_DIR")
GOLDEN_SLAM3R_DIR = golden_set_dir("RECON4D_GOLDEN_SLAM3R_DIR")


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to start, with one message, when a golden folder cannot be used."""
    for variable in GOLDEN_SETS:
        problems = check_set(golden_set_dir(variable))
        if problems:
            source = f"${variable}" if os.environ.get(variable) else "the vendored default"
            listed = "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else "")
            raise pytest.UsageError(
                f"golden set of {source} is not usable: {listed}. Point {variable} at a folder "
                f"holding {MANIFEST} and the files it names, or unset it to use "
                f"{GOLDEN_SETS[variable]}")


def load_manifest(root: Path = GOLDEN_DIR) -> dict:
    """The manifest of a golden set (the only entry point into a golden folder)."""
    return json.loads((root / MANIFEST).read_text())


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def manifest() -> dict:
    return load_manifest()


@pytest.fixture(scope="session")
def golden_slam3r_dir() -> Path:
    return GOLDEN_SLAM3R_DIR


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module (small ops stall on a busy thread pool), restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
