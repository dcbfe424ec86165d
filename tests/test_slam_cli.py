"""`recon4d slam --method slam3r` end to end: with the oracle (trajectory against the ground
truth; the folder is read by `recon4d eval` and the viewer), on a video with the tiny golden
checkpoints (structure only), and its errors before any slow work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recon4d.cli import main
from recon4d.eval import pose_metrics
from recon4d.eval.prediction import load_prediction
from recon4d.io.output_folder import read_output_folder
from recon4d.synthetic import generate_scene, write_scene

CHECKPOINTS = Path(__file__).parent / "data" / "golden-slam3r" / "checkpoints"
I2P, L2W = CHECKPOINTS / "tiny_slam3r_i2p.pth", CHECKPOINTS / "tiny_slam3r_l2w.pth"
FAST = ["--keyframe-stride", "2", "--win-r", "2", "--initial-winsize", "3",
        "--num-scene-frame", "3", "--buffer-size", "6"]


# the oracle's small convolutions run far faster on one thread than on a busy pool
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    scene = generate_scene(frames=20, width=64, height=48, movers=0, seed=4)
    return write_scene(scene, tmp_path_factory.mktemp("synth") / "scene"), scene


def test_oracle_run_writes_a_folder_eval_and_view_read(synth, tmp_path, capsys):
    folder, scene = synth
    out = tmp_path / "run"
    assert main(["slam", "--oracle", str(folder), "--out", str(out), *FAST]) == 0
    gt = scene.poses_c2w
    path = float(np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum())
    metrics = pose_metrics(out / "trajectory_tum.txt", folder / "trajectory_tum.txt")
    assert metrics["num_poses"] == 20 and metrics["ate"] < 0.01 * path
    doc = json.loads((out / "scene.json").read_text())
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert doc["command"] == "slam" and sorted(doc["files"]) == on_disk
    assert {"pointcloud.ply", "scene.glb", "intrinsics.json", "slam_frames.csv"} <= set(on_disk)
    assert doc["slam"]["keyframe_stride"] == 2 and doc["slam"]["failed_frames"] == []
    rows = (out / "slam_frames.csv").read_text().splitlines()
    assert rows[0] == "frame,name,conf,local_conf,focal,failed" and len(rows) == 21
    pred = load_prediction(out)
    assert len(pred.trajectory) == 20 and pred.cloud_path is not None
    view = read_output_folder(out, max_points=1000)
    assert len(view) == 20 and view.intrinsics.shape == (20, 3, 3) and len(view.static) == 1000
    assert "recon4d slam: 20 frames (keyframe stride 2)" in capsys.readouterr().out
    report = tmp_path / "metrics.json"
    assert main(["eval", str(out), str(folder), "--out", str(report)]) == 0
    assert json.loads(report.read_text())


def write_video(path: Path, frames: int) -> None:
    av = pytest.importorskip("av")
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(frames):
            image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_runs_with_the_tiny_checkpoints(tmp_path):
    video = tmp_path / "clip.mp4"
    write_video(video, 8)
    out = tmp_path / "run"
    assert main(["slam", str(video), "--out", str(out), "--i2p", str(I2P), "--l2w", str(L2W),
                 "--size", "32", "--keyframe-stride", "1", "--win-r", "1",
                 "--points-per-frame", "20"]) == 0
    traj = load_prediction(out).trajectory
    assert len(traj) == 8 and np.isfinite(traj.poses).all()
    assert np.allclose(traj.timestamps, np.arange(8) / 10)  # the video's timestamps


def test_an_l2w_checkpoint_given_as_i2p_fails_before_reading_frames(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["slam", str(tmp_path / "missing.mp4"), "--out", str(out), "--i2p", str(L2W),
                 "--l2w", str(L2W)])
    err = capsys.readouterr().err
    assert code == 2 and "tiny_slam3r_l2w.pth" in err and "I2P" in err
    assert not out.exists()


def test_a_stream_shorter_than_the_initial_window_fails(synth, tmp_path, capsys):
    folder, _ = synth
    code = main(["slam", "--oracle", str(folder), "--out", str(tmp_path / "run"),
                 "--keyframe-stride", "4", "--num-frames", "7"])
    assert code == 2 and "shorter than the initial window" in capsys.readouterr().err
