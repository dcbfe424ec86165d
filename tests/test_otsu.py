"""Histogram of the adaptive threshold, and the threshold against the originals' procedure.

Truths: hand-computed half-bin counts and sums; the adaptive multi-Otsu as the originals run it
(scikit-image's `threshold_multiotsu` and `numpy.digitize`, from the masks benchmark).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from recon4d.dynamics import otsu
from recon4d.dynamics.attention import upsample_maps
from recon4d.dynamics.otsu import adaptive_threshold, half_bin_sums

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_masks.py"


def test_half_bin_sums_hand_computed_across_chunks(monkeypatch) -> None:
    monkeypatch.setattr(otsu, "CHUNK_VALUES", 2)
    values = torch.tensor([[0.0, 0.25, 0.5], [0.74, 1.0, 0.1]])
    counts, sums = half_bin_sums(values, 0.0, 1.0, bins=2)  # half-bins of width 0.25
    assert counts.tolist() == [2, 1, 2, 1]  # the top edge belongs to the last half-bin
    torch.testing.assert_close(sums, torch.tensor([0.1, 0.25, 1.24, 1.0], dtype=torch.float64))


def test_adaptive_threshold_is_the_originals_threshold(monkeypatch) -> None:
    pytest.importorskip("skimage")
    monkeypatch.syspath_prepend(str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("bench_masks", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    gen = torch.Generator().manual_seed(0)
    # clear histogram valleys (scikit-image's float32 search can miss near-tied optima)
    for levels in ([0.1, 0.9], [0.1, 0.4, 0.9], [0.0, 0.3, 0.6, 1.0], [0.2, 0.25, 0.9]):
        pick = torch.randint(len(levels), (6, 5, 8), generator=gen)
        tokens = torch.tensor(levels)[pick] + 0.02 * torch.rand(6, 5, 8, generator=gen)
        stack = upsample_maps(tokens, (40, 64))
        expected = bench.originals_threshold(stack.numpy())
        assert adaptive_threshold(stack).threshold == pytest.approx(expected, rel=1e-6)
