"""Resident memory of this process (Linux) and runs in a fresh process, shared by the benchmark
scripts."""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def rss_bytes() -> int:
    """Current resident set size (/proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def in_fresh_process(script: str, worker: str, repeats: int) -> dict:
    """Run `script --worker WORKER --repeats N` in a fresh interpreter (isolated peak RSS) and
    return the JSON object its last output line holds."""
    out = subprocess.run([sys.executable, script, "--worker", worker, "--repeats", str(repeats)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
