"""`recon4d eval` end to end on fixture folders: tables, JSON, skipped metrics, user errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from recon4d import cli
from recon4d.eval.clouds import depth_to_world
from tests.fixtures_eval import (
    random_poses,
    write_prediction,
    write_sintel_sequence,
    write_synthetic_scene,
)
from tests.test_eval_readers import tum_fixture


@pytest.fixture
def run_cli(capsys):
    """Run the real dispatcher (it builds only the eval command's flags)."""

    def run(*argv) -> tuple[int, str, str]:
        code = cli.main(["eval", *map(str, argv)])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def similarity(points_or_poses: np.ndarray, scale: float, rot: np.ndarray, shift: np.ndarray,
               poses: bool) -> np.ndarray:
    """Apply x -> scale * rot x + shift to points, or to camera-to-world poses."""
    if not poses:
        return scale * points_or_poses @ rot.T + shift
    out = points_or_poses.copy()
    out[:, :3, :3] = rot @ points_or_poses[:, :3, :3]
    out[:, :3, 3] = scale * points_or_poses[:, :3, 3] @ rot.T + shift
    return out


def synthetic_case(tmp_path: Path) -> tuple[Path, Path]:
    """A synthetic scene and a prediction of it in another similarity frame.

    Ground-truth depth and masks are constant on 2x2 blocks, so the half-resolution
    prediction upsampled with nearest is exact; frame 0's predicted mask is empty.
    """
    rng = np.random.default_rng(0)
    n, h, w = 4, 12, 16
    depth = np.kron(rng.uniform(2, 4, (n, h // 2, w // 2)), np.ones((2, 2))).astype(np.float32)
    masks = np.zeros((n, h, w), bool)
    masks[:, 2:8, 4:10] = True
    poses = random_poses(n, seed=1)
    k = np.tile(np.array([[12.0, 0, 7.5], [0, 12.0, 5.5], [0, 0, 1]]), (n, 1, 1))
    gt_dir = write_synthetic_scene(tmp_path / "scene", depth, masks, poses, k, np.arange(n) / 10)
    # the prediction lives in another frame: x_pred = (R^T (x - t)) / s with s = 2
    rot = Rotation.from_euler("xyz", [20, -30, 45], degrees=True).as_matrix()
    shift = np.array([1.0, -2.0, 0.5])
    to_pred = (0.5, rot.T, -0.5 * rot.T @ shift)
    cloud = np.concatenate([depth_to_world(depth[i], k[i], poses[i], depth[i] > 0)
                            for i in range(n)])
    pred_masks = masks[:, ::2, ::2].copy()
    pred_masks[0] = False
    pred_dir = write_prediction(tmp_path / "pred", poses=similarity(poses, *to_pred, poses=True),
                                depth=depth[:, ::2, ::2] / 2, masks=pred_masks,
                                cloud=similarity(cloud, *to_pred, poses=False))
    return pred_dir, gt_dir


def test_synthetic_end_to_end(tmp_path, run_cli):
    pred_dir, gt_dir = synthetic_case(tmp_path)
    out = tmp_path / "reports" / "metrics.json"
    code, stdout, _ = run_cli(pred_dir, gt_dir, "--out", out, "--resize", "nearest",
                              "--cloud-threshold", "0.01")
    assert code == 0
    report = json.loads(out.read_text())
    seq = report["sequences"]["scene"]
    assert report["gt_format"] == "synthetic" and seq["frame_matching"] == "index"
    assert seq["poses"]["ate"] < 1e-9 and seq["poses"]["rpe_rot"] < 1e-5
    assert seq["poses"]["scale"] == pytest.approx(2.0)
    assert seq["depth"]["abs_rel"] < 1e-6 and seq["depth"]["scale"] == pytest.approx(2.0)
    assert seq["depth"]["valid_pixels"] == 4 * 12 * 16
    # frame 0 predicted empty: J = F = 0 there, 1 elsewhere
    assert seq["masks"]["J_mean"] == pytest.approx(0.75)
    assert seq["masks"]["F_mean"] == pytest.approx(0.75)
    assert seq["cloud"]["accuracy"] < 1e-6 and seq["cloud"]["fscore"] == 1.0
    assert report["skipped"] == []
    for word in ("[poses]", "[depth]", "[masks]", "[cloud]", "scene", "abs_rel", "J_mean"):
        assert word in stdout
    assert not list(out.parent.glob(".*.tmp"))  # atomic write leaves no temporary file


def test_default_output_and_metric_subset(tmp_path, run_cli):
    pred_dir, gt_dir = synthetic_case(tmp_path)
    code, stdout, _ = run_cli(pred_dir, gt_dir, "--metrics", "masks", "--gt-format", "synthetic")
    assert code == 0
    report = json.loads((pred_dir / "metrics.json").read_text())
    assert set(report["sequences"]["scene"]) == {"frame_matching", "num_frames", "masks"}
    assert "[poses]" not in stdout


def test_depth_protocol_flag_reaches_the_evaluation(tmp_path, run_cli):
    """`--depth-protocol` (default monst3r, the published protocol) is used and recorded."""
    pred_dir, gt_dir = synthetic_case(tmp_path)
    for extra, protocol in (((), "monst3r"), (("--depth-protocol", "robust"), "robust")):
        code, _, _ = run_cli(pred_dir, gt_dir, "--metrics", "depth", "--gt-format", "synthetic",
                             *extra)
        assert code == 0
        report = json.loads((pred_dir / "metrics.json").read_text())
        assert report["options"]["depth_protocol"] == protocol
    with pytest.raises(SystemExit):
        run_cli(pred_dir, gt_dir, "--depth-protocol", "published")


def test_tum_frame_selection_and_skips(tmp_path, run_cli):
    gt_dir = tmp_path / "rgbd_dataset_freiburg1_xyz"
    truth = tum_fixture(gt_dir)
    # a prediction made from frames 0, 2, 4 (stride 2), matched by index after selection
    pred = write_prediction(tmp_path / "p1", poses=truth["poses"][[0, 2, 4]],
                            depth=truth["depth"][[0, 2, 4]])
    code, _, _ = run_cli(pred, gt_dir, "--stride", "2", "--align", "se3")
    report = json.loads((pred / "metrics.json").read_text())
    assert code == 0 and report["frames"]["stride"] == 2
    assert report["sequences"][gt_dir.name]["poses"]["ate"] < 1e-9
    # frame 4 has no ground-truth depth: only frames 0 and 2 count
    assert report["sequences"][gt_dir.name]["depth"]["valid_pixels"] == 2 * 6 * 8
    # a prediction of frames 1, 3, 5 with real timestamps: matched by timestamp; frame 5 has
    # no ground-truth pose, so two poses remain and the pose metrics are reported as skipped
    pred2 = write_prediction(tmp_path / "p2", stamps=truth["rgb"][[1, 3, 5]] + 0.001,
                             poses=truth["poses"][[1, 3, 5]])
    code, stdout, _ = run_cli(pred2, gt_dir)
    report = json.loads((pred2 / "metrics.json").read_text())
    assert code == 0 and report["sequences"][gt_dir.name]["frame_matching"] == "timestamp"
    assert report["skipped"] == [{"sequence": gt_dir.name, "metric": "poses",
                                  "reason": "alignment needs at least 3 poses, got 2"}]
    assert "skipped rgbd_dataset_freiburg1_xyz (poses)" in stdout


def test_frame_count_mismatch(tmp_path, run_cli):
    pred_dir, gt_dir = synthetic_case(tmp_path)
    for name in ("000003.npy",):
        (pred_dir / "depth" / name).unlink()
    (pred_dir / "dynamic_mask" / "000003.png").unlink()
    (pred_dir / "pointcloud.ply").unlink()
    lines = (pred_dir / "trajectory_tum.txt").read_text().splitlines()
    (pred_dir / "trajectory_tum.txt").write_text("\n".join(lines[:-1]) + "\n")
    code, _, err = run_cli(pred_dir, gt_dir, "--metrics", "depth", "--resize", "nearest")
    assert code == 2 and "3 predicted frames but ground-truth sequence 'scene' has 4" in err
    assert "--truncate" in err and not (pred_dir / "metrics.json").exists()
    code, _, _ = run_cli(pred_dir, gt_dir, "--metrics", "depth", "--resize", "nearest",
                         "--truncate")
    report = json.loads((pred_dir / "metrics.json").read_text())
    assert code == 0 and report["sequences"]["scene"]["frame_matching"] == "truncated"
    assert report["sequences"]["scene"]["depth"]["valid_pixels"] == 3 * 12 * 16


def test_malformed_prediction_files(tmp_path, run_cli):
    pred_dir, gt_dir = synthetic_case(tmp_path)
    (pred_dir / "pointcloud.ply").write_bytes(b"ply\nformat ascii 1.0\nend_header\n")
    code, _, err = run_cli(pred_dir, gt_dir)
    assert code == 2 and "pointcloud.ply: PLY file has no vertex element" in err
    (pred_dir / "depth" / "000002.npy").write_text("not numpy")
    code, _, err = run_cli(pred_dir, gt_dir)
    assert code == 2 and "000002.npy: not a readable .npy file" in err
    assert "Traceback" not in err and not (pred_dir / "metrics.json").exists()
    (pred_dir / "depth" / "000002.npy").unlink()
    code, _, err = run_cli(pred_dir, gt_dir)
    assert code == 2 and "frame counts disagree" in err
    code, _, err = run_cli(pred_dir, tmp_path / "nowhere")
    assert code == 2 and "nowhere: ground-truth folder not found" in err


def test_folder_of_predictions_against_sintel(tmp_path, run_cli):
    rng = np.random.default_rng(5)
    depth = rng.uniform(1, 80, (3, 4, 6)).astype(np.float32)
    k = np.tile(np.eye(3), (3, 1, 1))
    write_sintel_sequence(tmp_path / "sintel", "alley_2", depth, k, random_poses(3, seed=6))
    write_sintel_sequence(tmp_path / "sintel", "market_5", depth, k, random_poses(3, seed=7))
    write_prediction(tmp_path / "preds" / "alley_2", depth=depth * 3)
    write_prediction(tmp_path / "preds" / "ambush_9", depth=depth)
    code, stdout, _ = run_cli(tmp_path / "preds", tmp_path / "sintel", "--out",
                              tmp_path / "m.json", "--resize", "nearest")
    report = json.loads((tmp_path / "m.json").read_text())
    assert code == 0 and list(report["sequences"]) == ["alley_2"]
    depth_m = report["sequences"]["alley_2"]["depth"]
    # Sintel's default cap: ground truth at or above 70 is not valid
    assert depth_m["valid_pixels"] == int((depth < 70).sum())
    assert depth_m["abs_rel"] < 1e-6 and depth_m["scale"] == pytest.approx(1 / 3)
    assert report["skipped"] == [{"sequence": "ambush_9", "metric": "all",
                                  "reason": "no ground-truth sequence of this name"}]
    code, _, _ = run_cli(tmp_path / "preds", tmp_path / "sintel", "--out", tmp_path / "n.json",
                         "--resize", "nearest", "--max-depth", "none")
    report = json.loads((tmp_path / "n.json").read_text())
    assert report["sequences"]["alley_2"]["depth"]["valid_pixels"] == depth.size
    (tmp_path / "preds" / "alley_2").rename(tmp_path / "preds" / "bamboo_1")  # no name matches
    code, _, stderr = run_cli(tmp_path / "preds", tmp_path / "sintel", "--out",
                              tmp_path / "none.json")
    assert code == 2 and "no prediction folder is named like a ground-truth sequence" in stderr
    assert not (tmp_path / "none.json").exists()


def test_frame_index_timestamps_are_not_matched_as_times(tmp_path, run_cli):
    # ground-truth stamps 0..3 are frame indices; a prediction of frames 0 and 2 written with
    # stamps 0, 1 must not be paired with frames 0 and 1
    n = 4
    depth = np.random.default_rng(0).uniform(1, 2, (n, 4, 4)).astype(np.float32)
    gt_dir = write_synthetic_scene(tmp_path / "scene", depth, np.zeros((n, 4, 4), bool),
                                   random_poses(n, seed=0), np.tile(np.eye(3), (n, 1, 1)),
                                   np.arange(n, dtype=float))
    pred = write_prediction(tmp_path / "pred", poses=random_poses(2, seed=1),
                            depth=depth[[0, 2]])
    code, _, err = run_cli(pred, gt_dir, "--metrics", "depth")
    assert code == 2 and "2 predicted frames" in err
    code, _, _ = run_cli(pred, gt_dir, "--metrics", "depth", "--stride", "2", "--depth-align",
                         "none", "--resize", "nearest")
    report = json.loads((pred / "metrics.json").read_text())
    assert code == 0 and report["sequences"]["scene"]["depth"]["abs_rel"] == 0.0


def test_crop_geometry_maps_a_centre_crop_prediction(tmp_path, run_cli):
    # the model saw rows 2..5 of an 8x12 frame (a centre crop), at half resolution
    n = 3
    depth = np.kron(np.random.default_rng(2).uniform(1, 5, (n, 4, 6)),
                    np.ones((2, 2))).astype(np.float32)
    gt_dir = write_synthetic_scene(tmp_path / "scene", depth, np.zeros((n, 8, 12), bool),
                                   random_poses(n, seed=0), np.tile(np.eye(3), (n, 1, 1)),
                                   np.arange(n, dtype=float))
    pred = write_prediction(tmp_path / "pred", depth=depth[:, 2:6:2, ::2])
    results = {}
    for geometry in ("crop", "resize"):
        code, _, _ = run_cli(pred, gt_dir, "--geometry", geometry, "--resize", "nearest",
                             "--depth-align", "none")
        assert code == 0
        results[geometry] = json.loads((pred / "metrics.json").read_text())
    crop = results["crop"]["sequences"]["scene"]["depth"]
    assert crop["abs_rel"] == 0.0 and crop["valid_pixels"] == n * 4 * 12
    assert results["resize"]["sequences"]["scene"]["depth"]["abs_rel"] > 0.05


@pytest.mark.parametrize("make_out", [
    lambda tmp: tmp,  # a folder
    lambda tmp: tmp / "file.txt" / "metrics.json",  # below a file
])
def test_unwritable_out_is_refused_before_evaluating(tmp_path, run_cli, make_out):
    """The prediction and ground-truth folders do not exist: --out is checked first."""
    (tmp_path / "file.txt").write_text("")
    out = make_out(tmp_path)
    code, _, err = run_cli(tmp_path / "absent_pred", tmp_path / "absent_gt", "--out", out)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"recon4d eval: error: {out}: ") and "absent" not in err
