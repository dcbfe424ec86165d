"""Shared test fixtures: where the golden data lives."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GOLDEN_DIR = Path(os.environ.get("RECON4D_GOLDEN_DIR", REPO.parent / "shared" / "golden"))


def load_manifest() -> dict:
    """The golden manifest (the only entry point into a golden folder)."""
    return json.loads((GOLDEN_DIR / "manifest.json").read_text())


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def manifest() -> dict:
    return load_manifest()
