"""Evaluate recon4d output folders against a benchmark folder: pair sequences and frames, run
every metric both sides support, and report sequences or metrics that had to be skipped."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from recon4d import __version__
from recon4d.errors import InputError, Recon4dError
from recon4d.eval.clouds import cloud_metrics, depth_to_world, voxel_downsample
from recon4d.eval.depth import depth_metrics
from recon4d.eval.masks import mask_metrics
from recon4d.eval.ply import read_ply_points
from recon4d.eval.poses import Sim3, align_poses, fit_sim3_to_poses, pose_metrics
from recon4d.eval.prediction import EVALUABLE, Prediction, is_prediction, load_prediction
from recon4d.eval.readers import (
    ALL_FRAMES,
    FrameSelection,
    GroundTruth,
    list_sequences,
    load_sequence,
)
from recon4d.eval.report import summarise
from recon4d.eval.resize import crop_box, resize_stack
from recon4d.eval.trajectory import nearest_within
from recon4d.options.choices import METRIC_GROUPS
from recon4d.options.evaluation import EvalOptions


def match_frames(pred: Prediction, gt: GroundTruth, truncate: bool,
                 max_dt: float) -> tuple[np.ndarray, np.ndarray, str]:
    """(prediction frames, ground-truth frames, how): equal counts pair by index; otherwise
    prediction timestamps within `max_dt` of ground-truth ones (unless they are just the frame
    indices 0..N-1), or the common prefix when `truncate` is set; anything else is an error."""
    n_pred, n_gt = pred.num_frames, len(gt)
    if n_pred == n_gt:
        return np.arange(n_pred), np.arange(n_gt), "index"
    stamps = None if pred.trajectory is None else pred.trajectory.timestamps
    if stamps is not None and not np.array_equal(stamps, np.arange(n_pred)):
        found = nearest_within(stamps, gt.timestamps, max_dt)
        if (found >= 0).all():
            return np.arange(n_pred), found, "timestamp"
    if truncate:
        n = min(n_pred, n_gt)
        return np.arange(n), np.arange(n), "truncated"
    raise InputError(f"{pred.folder}: {n_pred} predicted frames but ground-truth sequence "
                     f"{gt.name!r} has {n_gt} and the timestamps do not match; select the "
                     "ground-truth frames the prediction was made from (--start, --stride, "
                     "--max-frames) or pass --truncate")


def gt_pose_frames(pred: Prediction, gt: GroundTruth, pi: np.ndarray,
                   gi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matched (estimated, true) poses of the frames that have a ground-truth pose."""
    if pred.trajectory is None or gt.poses is None:
        raise InputError("needs a predicted trajectory and ground-truth poses")
    est, true = pred.trajectory.poses[pi], gt.poses[gi]
    has_gt = np.isfinite(true).all(axis=(1, 2))
    return est[has_gt], true[has_gt]


def eval_depth(pred: Prediction, gt: GroundTruth, pi: np.ndarray, gi: np.ndarray,
               opts: EvalOptions) -> dict[str, float]:
    """Depth metrics on the ground-truth grid (crop/resize per options)."""
    rows, cols = crop_box(gt.depth.shape[1:], pred.depth.shape[1:], opts.geometry)
    true = gt.depth[gi][:, rows, cols]
    est = resize_stack(pred.depth[pi], true.shape[1:], opts.resize)
    return depth_metrics(est, true, align=opts.depth_align, max_depth=opts.depth_cap(gt.max_depth),
                         fit=opts.depth_fit, space=opts.depth_space, protocol=opts.depth_protocol,
                         clip_max=opts.depth_clip(gt.clip_depth))


def eval_masks(pred: Prediction, gt: GroundTruth, pi: np.ndarray, gi: np.ndarray,
               opts: EvalOptions) -> dict[str, float]:
    """J and F on the ground-truth grid (nearest resize)."""
    rows, cols = crop_box(gt.masks.shape[1:], pred.masks.shape[1:], opts.geometry)
    true = gt.masks[gi][:, rows, cols]
    return mask_metrics(resize_stack(pred.masks[pi], true.shape[1:], "nearest"), true,
                        opts.boundary_tolerance)


def gt_cloud(gt: GroundTruth, gi: np.ndarray, max_depth: float | None,
             voxel: float) -> np.ndarray:
    """World points of every valid ground-truth depth pixel, voxel-downsampled frame by frame."""
    parts = []
    for i in gi:
        if not np.isfinite(gt.poses[i]).all():
            continue
        valid = gt.depth[i] > 0
        if max_depth is not None:
            valid &= gt.depth[i] < max_depth
        parts.append(voxel_downsample(depth_to_world(gt.depth[i], gt.intrinsics[i],
                                                     gt.poses[i], valid), voxel))
    return voxel_downsample(np.concatenate(parts) if parts else np.zeros((0, 3)), voxel)


def eval_cloud(pred: Prediction, gt: GroundTruth, pi: np.ndarray, gi: np.ndarray,
               opts: EvalOptions, cloud: np.ndarray) -> dict[str, float]:
    """Metrics of the predicted `cloud` moved by the cameras' alignment (centres and
    orientations, `fit_sim3_to_poses`; `--align scale` and `none` as for the poses)."""
    if gt.intrinsics is None:
        raise InputError("needs ground-truth intrinsics to build the ground-truth cloud")
    if opts.align == "none":
        transform = Sim3(np.eye(3), np.zeros(3), 1.0)
    elif opts.align == "scale":
        transform = align_poses(*gt_pose_frames(pred, gt, pi, gi), opts.align)[1]
    else:
        transform = fit_sim3_to_poses(*gt_pose_frames(pred, gt, pi, gi),
                                      with_scale=opts.align == "sim3")
    voxel = opts.cloud_threshold / 2 if opts.cloud_voxel is None else opts.cloud_voxel
    points = voxel_downsample(transform.apply_points(cloud), voxel)
    return {**cloud_metrics(points, gt_cloud(gt, gi, opts.depth_cap(gt.max_depth), voxel),
                            opts.cloud_threshold), "voxel": voxel}


def available_groups(pred: Prediction, gt: GroundTruth, opts: EvalOptions) -> list[str]:
    """The requested metric groups that both sides have data for."""
    has = {"poses": pred.trajectory is not None and gt.poses is not None,
           "depth": pred.depth is not None and gt.depth is not None,
           "masks": pred.masks is not None and gt.masks is not None,
           "cloud": pred.cloud_path is not None and gt.depth is not None
           and gt.poses is not None}
    return [g for g in opts.metrics if has[g]]


def evaluate_sequence(pred: Prediction, gt: GroundTruth,
                      opts: EvalOptions) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """({"frame_matching", "num_frames", group: metrics...}, skipped entries) of one pair."""
    if pred.num_frames is None:  # a point cloud only: all ground-truth frames
        pi = gi = np.arange(len(gt))
        how = "all ground-truth frames"
    else:
        pi, gi, how = match_frames(pred, gt, opts.truncate, opts.max_dt)
    result: dict[str, Any] = {"frame_matching": how, "num_frames": len(gi)}
    groups = available_groups(pred, gt, opts)
    # Unreadable files are errors; only what the metrics find in the data is a skip.
    cloud = read_ply_points(pred.cloud_path) if "cloud" in groups else None
    skipped = []
    for group in groups:
        try:
            if group == "poses":
                result[group] = pose_metrics(*gt_pose_frames(pred, gt, pi, gi), align=opts.align,
                                             delta=opts.delta, all_pairs=opts.all_pairs)
            elif group == "cloud":
                result[group] = eval_cloud(pred, gt, pi, gi, opts, cloud)
            else:
                evaluator = eval_depth if group == "depth" else eval_masks
                result[group] = evaluator(pred, gt, pi, gi, opts)
        except Recon4dError as exc:
            skipped.append({"sequence": gt.name, "metric": group, "reason": str(exc)})
    return result, skipped


def prediction_folders(pred_dir: Path) -> dict[str, Path]:
    """{name: folder}: `pred_dir` itself when it is an output folder, else its output folders."""
    if not pred_dir.is_dir():
        raise InputError(f"{pred_dir}: prediction folder not found")
    if is_prediction(pred_dir):
        return {pred_dir.name: pred_dir}
    found = {p.name: p for p in sorted(pred_dir.iterdir()) if p.is_dir() and is_prediction(p)}
    if not found:
        raise InputError(f"{pred_dir}: no recon4d output ({', '.join(EVALUABLE)}) in it or "
                         "its sub-folders")
    return found


def pair_sequences(preds: dict[str, Path], gts: dict[str, Path], gt_dir: Path,
                   sequence: str | None) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """([(name, prediction folder, ground-truth path)], prediction names without ground truth)."""
    if sequence is not None:
        if sequence not in gts:
            raise InputError(f"{gt_dir}: no sequence {sequence!r} (has {preview(gts)})")
        gts = {sequence: gts[sequence]}
    if len(preds) == 1:
        name, folder = next(iter(preds.items()))
        if len(gts) == 1:
            gt_name, gt_path = next(iter(gts.items()))
            return [(gt_name, folder, gt_path)], []
        if name not in gts:
            raise InputError(f"{gt_dir} holds {len(gts)} sequences and none is named {name!r}; "
                             f"name one with --sequence (has {preview(gts)})")
        return [(name, folder, gts[name])], []
    pairs = [(name, folder, gts[name]) for name, folder in preds.items() if name in gts]
    if not pairs:
        raise InputError(f"no prediction folder is named like a ground-truth sequence: "
                         f"predictions {preview(preds)}; {gt_dir} has {preview(gts)}")
    return pairs, [name for name in preds if name not in gts]


def preview(names: dict[str, Path], limit: int = 8) -> str:
    """The first few names, for messages."""
    shown = ", ".join(list(names)[:limit])
    return shown + (", ..." if len(names) > limit else "")


def evaluate(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, gt_format: str = "auto",
             selection: FrameSelection = ALL_FRAMES, options: EvalOptions | None = None,
             sequence: str | None = None) -> dict[str, Any]:
    """Evaluate one output folder (or a folder of them, one per sequence) against ground truth.

    Returns the report: per-sequence metrics, a summary over sequences, and the skipped
    sequences/metrics with reasons (see docs/evaluation.md, "JSON report", for the layout).
    """
    opts = options or EvalOptions()
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    preds = prediction_folders(pred_dir)
    fmt, gts = list_sequences(gt_dir, gt_format)
    pairs, unmatched = pair_sequences(preds, gts, gt_dir, sequence)
    skipped = [{"sequence": n, "metric": "all", "reason": "no ground-truth sequence of this name"}
               for n in unmatched]
    sequences = {}
    for name, folder, gt_path in pairs:
        result, seq_skipped = evaluate_sequence(load_prediction(folder),
                                                load_sequence(fmt, gt_path, selection), opts)
        sequences[name] = result
        skipped += seq_skipped
    if not any(set(r) & set(METRIC_GROUPS) for r in sequences.values()) and not skipped:
        raise InputError(f"nothing to evaluate: {pred_dir} and {gt_dir} share no metric "
                         f"({', '.join(opts.metrics)}) on any sequence")
    return {"recon4d_version": __version__, "pred_dir": str(pred_dir), "gt_dir": str(gt_dir),
            "gt_format": fmt, "frames": asdict(selection), "options": asdict(opts),
            "sequences": sequences, "summary": summarise(sequences), "skipped": skipped}
