"""Resident memory of this process (Linux) and runs in a fresh process, shared by the benchmark
scripts."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def rss_bytes() -> int:
    """Current resident set size (/proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _high_water_bytes() -> int:
    """Peak RSS since the last `_reset_high_water` (VmHWM of /proc/self/status)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_high_water() -> None:
    """Lower this process's peak RSS to its current RSS (Linux >= 4.0), so that the peak of a
    block is not hidden by an earlier one (imports, loading the input)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


@contextmanager
def measured() -> Iterator[dict[str, float]]:
    """Measure the block: fills `wall_s`, `cpu_s` (process CPU seconds) and `peak_growth`
    (peak RSS during the block above the RSS at its start, bytes) when it ends."""
    stats: dict[str, float] = {}
    _reset_high_water()
    base = rss_bytes()
    wall, cpu = time.perf_counter(), time.process_time()
    yield stats
    stats["cpu_s"] = time.process_time() - cpu
    stats["wall_s"] = time.perf_counter() - wall
    stats["peak_growth"] = float(_high_water_bytes() - base)


def run_child(script: str, case: list[str], threads: int) -> dict[str, np.ndarray]:
    """Run `script --child CASE... OUT --threads N` in a fresh interpreter (peak memory not
    mixed between cases) and return the arrays the child saved to OUT with `np.savez`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.npz"
        subprocess.run([sys.executable, script, "--child", *case, str(out), "--threads",
                        str(threads)], check=True)
        with np.load(out) as res:
            return {key: res[key] for key in res.files}


def in_fresh_process(script: str, worker: str, repeats: int) -> dict:
    """Run `script --worker WORKER --repeats N` in a fresh interpreter (isolated peak RSS) and
    return the JSON object its last output line holds."""
    out = subprocess.run([sys.executable, script, "--worker", worker, "--repeats", str(repeats)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
