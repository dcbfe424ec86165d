"""Resident memory of this process (Linux), shared by the benchmark scripts."""

from __future__ import annotations

import resource


def rss_bytes() -> int:
    """Current resident set size (/proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
