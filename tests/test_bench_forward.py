"""The forward benchmark's FLOP count: attention must count on CPU (hand-computed values)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_forward.py"


def _bench_module(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH.parent))  # as when run as a script: siblings import
    spec = importlib.util.spec_from_file_location("bench_forward", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flop_counter_counts_cpu_attention_and_linears(monkeypatch):
    bench = _bench_module(monkeypatch)
    b, h, n, m, d = 2, 3, 40, 24, 16
    q, k, v = torch.randn(b, h, n, d), torch.randn(b, h, m, d), torch.randn(b, h, m, d)
    x, w = torch.randn(n, 32), torch.randn(8, 32)
    with torch.inference_mode(), bench.flop_counter() as counter:
        F.scaled_dot_product_attention(q, k, v)
        F.linear(x, w)
    # q k^T and attn v: 2 FLOPs per multiply-add each; the linear: 2 * n * 32 * 8
    assert counter.get_total_flops() == 4 * b * h * n * m * d + 2 * n * 32 * 8
