"""Summaries over sequences, the printed metric tables and the JSON file of an evaluation."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from recon4d.io.atomic import atomic_write_text

# Columns shown in the printed table of each metric group (the JSON holds every value).
TABLE_COLUMNS = {
    "poses": ("ate", "rpe_trans", "rpe_rot", "num_poses"),
    "depth": ("abs_rel", "sq_rel", "rmse", "log_rmse", "delta_1_25", "delta_1_25_2",
              "delta_1_25_3"),
    "masks": ("J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay", "JF_mean"),
    "cloud": ("accuracy", "completion", "chamfer", "precision", "recall", "fscore"),
}
# Counts are summed over sequences; depth metrics are weighted by valid pixels (the
# reference protocol), the others are plain means.
COUNT_KEYS = {"num_poses", "num_pairs", "valid_pixels", "failures", "num_frames",
              "pred_points", "gt_points"}
WEIGHT_KEY = {"depth": "valid_pixels"}
SUMMARY_SKIP = {"scale", "shift", "threshold", "voxel"}  # per-sequence fit values


def summarise(sequences: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per metric group: counts summed, metrics averaged over the sequences that have it."""
    summary: dict[str, dict[str, float]] = {}
    for group in TABLE_COLUMNS:
        results = [r[group] for r in sequences.values() if group in r]
        if not results:
            continue
        weights = [r.get(WEIGHT_KEY.get(group, ""), 1) for r in results]
        out: dict[str, float] = {"sequences": len(results)}
        for key in results[0]:
            if key in SUMMARY_SKIP:
                continue
            values = [r[key] for r in results]
            out[key] = (sum(values) if key in COUNT_KEYS else
                        sum(w * v for w, v in zip(weights, values, strict=True)) / sum(weights))
        summary[group] = out
    return summary


def format_value(value: float) -> str:
    """Four decimals for metrics, plain integers for counts."""
    if isinstance(value, int):
        return str(value)
    return "nan" if math.isnan(value) else f"{value:.4f}"


def format_table(report: dict[str, Any]) -> str:
    """Plain-text tables (one per metric group: a row per sequence, then the mean)."""
    blocks = []
    for group, columns in TABLE_COLUMNS.items():
        rows = [(name, r[group]) for name, r in report["sequences"].items() if group in r]
        if not rows:
            continue
        if len(rows) > 1:
            rows.append(("mean", report["summary"][group]))
        cells = [["sequence", *columns]]
        cells += [[name, *(format_value(m[c]) for c in columns)] for name, m in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(columns) + 1)]
        lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w)
                           for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
                 for row in cells]
        blocks.append("\n".join([f"[{group}]", *lines]))
    for item in report["skipped"]:
        blocks.append(f"skipped {item['sequence']} ({item['metric']}): {item['reason']}")
    return "\n\n".join(blocks) if blocks else "no metric could be computed"


def write_report_json(path: str | os.PathLike, report: dict[str, Any]) -> None:
    """Write the report as indented JSON, atomically (NaN written as null)."""
    atomic_write_text(path, json.dumps(_nan_to_none(report), indent=2) + "\n")


def _nan_to_none(value: Any) -> Any:
    """Replace NaN floats by None so the file is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value
