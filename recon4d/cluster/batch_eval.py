"""Batch inputs that are benchmark sequences `recon4d eval` knows: the frames the job reads, and
the eval metrics over the ones that finished.

An input is a benchmark sequence when it is one sequence of a layout `recon4d eval` reads (a
synthetic scene, a TUM or Bonn sequence folder; its frames are then its `rgb/` images), or the
frames folder of a sequence inside such a layout (a DAVIS `JPEGImages/480p/<seq>`, a Sintel
`training/final/<seq>` folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recon4d.cluster.spec import BatchSpec
from recon4d.cluster.summary import TaskResult
from recon4d.errors import InputError, Recon4dError
from recon4d.eval.evaluate import evaluate
from recon4d.eval.readers import detect_format, list_sequences
from recon4d.eval.readers.tum import read_file_list
from recon4d.eval.report import summarise
from recon4d.io.layout import RGB_DIR

LAYOUT_DEPTH = 3  # DAVIS JPEGImages/480p/<seq> lies three levels below its root


@dataclass(frozen=True)
class Benchmark:
    """The ground truth of one input: the folder `recon4d eval` reads, the sequence in it (None
    when the folder is the sequence), and the frames the job takes as INPUT."""

    gt: Path
    sequence: str | None
    frames: Path


def find_benchmark(item: Path) -> Benchmark | None:
    """The benchmark sequence `item` is (see the module doc), or None for a plain input.
    InputError for a benchmark folder holding several sequences, which is not one input."""
    found = _sequences(item)
    if found is not None:
        fmt, sequences = found
        if sequences.get(item.name) != item:
            raise InputError(f"{item}: a {fmt} folder holding {len(sequences)} sequence(s), "
                             "not one input; give each sequence's frames folder as an input (e.g. "
                             "JPEGImages/480p/* of DAVIS, training/final/* of Sintel)")
        return Benchmark(item, None, _frames_folder(fmt, item))
    for root in item.parents[:LAYOUT_DEPTH]:
        found = _sequences(root)
        if found is not None and item.name in found[1]:
            return Benchmark(root, item.name, item)
    return None


def _sequences(folder: Path) -> tuple[str, dict[str, Path]] | None:
    """(format, {name: path}) when `folder` is a ground-truth layout, else None."""
    try:
        detect_format(folder)
        return list_sequences(folder)
    except InputError:
        return None


def _frames_folder(fmt: str, sequence: Path) -> Path:
    """The images of a one-sequence layout: a synthetic scene's rgb/, or the folder of the
    frames a TUM/Bonn rgb.txt lists."""
    if fmt == "synthetic":
        return sequence / RGB_DIR
    _, names = read_file_list(sequence / "rgb.txt")
    return sequence / Path(names[0]).parent


def evaluate_batch(spec: BatchSpec, out_dir: Path, results: list[TaskResult],
                   benches: list[Benchmark | None]) -> dict[str, Any] | None:
    """One eval report (sequences named by output folder, summary, skipped) over every input
    that finished (done or skipped) and is a benchmark sequence (`benches`: `find_benchmark` of
    each input); None when there is none.

    `infer` outputs hold predictions only and predictions files have no ground truth: neither
    is evaluated."""
    if spec.job == "infer" or spec.source == "predictions":
        return None
    sequences: dict[str, Any] = {}
    skipped: list[dict[str, str]] = []
    for item, outcome, bench in zip(spec.inputs, results, benches, strict=True):
        if bench is None or outcome.status == "failed":
            continue
        name = spec.output_name(item)
        try:
            report = evaluate(out_dir / name, bench.gt, sequence=bench.sequence)
        except Recon4dError as exc:
            skipped.append({"sequence": name, "metric": "all", "reason": str(exc)})
            continue
        for result in report["sequences"].values():  # the one sequence of this input
            sequences[name] = result
        skipped += [dict(entry, sequence=name) for entry in report["skipped"]]
    if not sequences and not skipped:
        return None
    return {"sequences": sequences, "summary": summarise(sequences), "skipped": skipped}
