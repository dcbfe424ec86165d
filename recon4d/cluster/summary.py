"""The outcome of every batch input: one table printed at the end and `batch_summary.csv`."""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from dataclasses import dataclass

from recon4d.io.atomic import atomic_write_text

SUMMARY_FILE = "batch_summary.csv"
COLUMNS = ("input", "status", "attempts", "seconds", "error")
STATUSES = ("done", "skipped", "failed")  # skipped: its output folder was already complete


@dataclass(frozen=True)
class TaskResult:
    """One input's outcome: how many times it was run (0 when skipped), the last attempt's run
    time (None when not run or its worker died) and, when it failed, the last attempt's error."""

    input: str
    status: str
    attempts: int = 0
    seconds: float | None = None
    error: str = ""

    def row(self) -> tuple[str, str, str, str, str]:
        """The summary row (COLUMNS)."""
        seconds = "" if self.seconds is None else f"{self.seconds:.1f}"
        return (self.input, self.status, str(self.attempts), seconds, self.error)


def format_summary(results: list[TaskResult]) -> str:
    """A plain-text table (COLUMNS) and a count line per status."""
    cells = [COLUMNS, *(r.row() for r in results)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)),
                        row[-1]]).rstrip() for row in cells]
    counts = Counter(r.status for r in results)
    lines.append(", ".join(f"{counts[s]} {s}" for s in STATUSES))
    return "\n".join(lines)


def write_summary_csv(path: str | os.PathLike, results: list[TaskResult]) -> None:
    """Write the rows as CSV (header COLUMNS), atomically."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(r.row() for r in results)
    atomic_write_text(path, text.getvalue())
