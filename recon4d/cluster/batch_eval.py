"""`recon4d eval` over the finished inputs of a batch that are benchmark sequences it knows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recon4d.cluster.spec import BatchSpec
from recon4d.cluster.summary import TaskResult
from recon4d.errors import InputError, Recon4dError
from recon4d.eval.evaluate import evaluate
from recon4d.eval.readers import detect_format
from recon4d.eval.report import summarise


def is_benchmark(item: Path) -> bool:
    """Whether `item` is a ground-truth layout `recon4d eval` reads (a synthetic scene, a TUM,
    Bonn, Sintel or DAVIS sequence)."""
    try:
        detect_format(item)
    except InputError:
        return False
    return True


def evaluate_batch(spec: BatchSpec, out_dir: Path,
                   results: list[TaskResult]) -> dict[str, Any] | None:
    """One eval report (sequences named by output folder, summary, skipped) over every input
    that finished (done or skipped) and is a benchmark sequence; None when there is none.

    `infer` outputs hold predictions only and are not evaluated."""
    if spec.job == "infer":
        return None
    sequences: dict[str, Any] = {}
    skipped: list[dict[str, str]] = []
    for item, outcome in zip(spec.inputs, results, strict=True):
        if outcome.status == "failed" or not is_benchmark(item):
            continue
        name = spec.output_name(item)
        try:
            report = evaluate(out_dir / name, item)
        except Recon4dError as exc:
            skipped.append({"sequence": name, "metric": "all", "reason": str(exc)})
            continue
        for result in report["sequences"].values():  # the one sequence of this input
            sequences[name] = result
        skipped += [dict(entry, sequence=name) for entry in report["skipped"]]
    if not sequences and not skipped:
        return None
    return {"sequences": sequences, "summary": summarise(sequences), "skipped": skipped}
