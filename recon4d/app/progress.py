"""Progress of a job read from its console output: the last tqdm bar of each stage."""

from __future__ import annotations

import re
from dataclasses import dataclass

# `desc: 45%|####      | 9/20 [00:01<00:02, 5.1it/s]` (desc optional)
_BAR = re.compile(r"^(?:(?P<desc>.*?): *)?(?P<pct>\d+)%\|.*?\|\s*(?P<n>\d+)/(?P<total>\d+)")


@dataclass(frozen=True)
class Progress:
    """One stage's progress: its name, steps done and steps in all."""

    stage: str
    done: int
    total: int

    @property
    def fraction(self) -> float:
        """Done / total in [0, 1] (0 for a bar without steps)."""
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0


def parse_bar(segment: str) -> Progress | None:
    """The progress in one console segment (the text between carriage returns or new lines) if
    it is a tqdm bar, else None."""
    found = _BAR.match(segment.strip())
    if found is None:
        return None
    return Progress(found["desc"] or "working", int(found["n"]), int(found["total"]))


def split_segments(buffer: str) -> tuple[list[str], str]:
    """Complete segments of `buffer` (ended by a carriage return or a new line) and the rest."""
    parts = re.split(r"[\r\n]", buffer)
    return [p for p in parts[:-1] if p.strip()], parts[-1]
