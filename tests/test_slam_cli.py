"""`recon4d slam` end to end, with SLAM3R and with MASt3R-SLAM (`--method mast3r`): with the
oracle (trajectory against the ground truth; the folder is read by `recon4d eval` and the
viewer), on frames with the tiny golden checkpoints (structure only), and its errors: before
any slow work where they can be known then, else with what was reconstructed still written."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
    if importlib.util.find_spec("av") is not None:  # the map growing beside each input frame
        video = decode_video(out / "map_video.mp4")
        assert len(video) == 20 and video[0].shape == (48, 128, 3)
        error = np.array([[np.abs(f[:, :64].astype(float) - rgb).mean() for rgb in scene.rgb]
                          for f in video])
        assert (error.argmin(axis=1) == np.arange(20)).all()  # each beside its own input frame
        assert error.diagonal().max() < 20  # H.264 loss on a textured 64 x 48 frame (~13)
        drawn = [int((f[:, 64:].max(axis=2) > 40).sum()) for f in video]
        assert min(drawn) > 0 and drawn[-1] > drawn[0]  # the map grows
    report = tmp_path / "metrics.json"
    assert main(["eval", str(out), str(folder), "--out", str(report)]) == 0
    assert json.loads(report.read_text())


def decode_video(path: Path) -> list[np.ndarray]:
    """The RGB frames of an MP4 (PyAV)."""
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


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


# --- --method mast3r -----------------------------------------------------------------------

MAST3R = Path(__file__).parent / "data" / "golden" / "checkpoints" / "tiny_mast3r_a.pth"


@pytest.fixture(scope="module")
def dynamic_synth(tmp_path_factory):
    scene = generate_scene(frames=10, width=64, height=48, movers=2, seed=4, fps=5.0)
    return write_scene(scene, tmp_path_factory.mktemp("synth") / "scene"), scene


def test_mast3r_oracle_run_writes_a_folder_eval_and_view_read(dynamic_synth, tmp_path, capsys):
    folder, scene = dynamic_synth
    out = tmp_path / "run"
    assert main(["slam", "--method", "mast3r", "--oracle", str(folder), "--out", str(out),
                 "--movers", "oracle"]) == 0
    gt = scene.poses_c2w
    path = float(np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum())
    metrics = pose_metrics(out / "trajectory_tum.txt", folder / "trajectory_tum.txt")
    assert metrics["num_poses"] == 10 and metrics["ate"] < 0.02 * path
    doc = json.loads((out / "scene.json").read_text())
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert doc["command"] == "slam" and sorted(doc["files"]) == on_disk
    assert {"pointcloud.ply", "scene.glb", "intrinsics.json", "slam_frames.csv",
            "keyframes_tum.txt", "dynamic_mask/000009.png"} <= set(on_disk)
    keyframes = doc["slam"]["keyframes"]
    assert keyframes[0] == 0 and doc["slam"]["error"] is None
    assert {f"keyframes/{k:06d}.png" for k in keyframes} <= set(on_disk)
    rows = [r for r in (out / "keyframes_tum.txt").read_text().splitlines() if r[0] != "#"]
    assert len(rows) == len(keyframes)
    mask = np.asarray(Image.open(out / "dynamic_mask" / "000003.png")) > 0
    assert np.array_equal(mask, scene.dynamic_mask[3])
    rows = (out / "slam_frames.csv").read_text().splitlines()
    assert rows[0] == "frame,name,keyframe,is_keyframe,lost,focal" and len(rows) == 11
    if importlib.util.find_spec("av") is not None:
        assert "map_video.mp4" in on_disk
    pred = load_prediction(out)
    assert len(pred.trajectory) == 10 and pred.cloud_path is not None
    view = read_output_folder(out, max_points=100)
    assert len(view) == 10 and view.intrinsics.shape == (10, 3, 3)
    assert f"recon4d slam: 10 frames ({len(keyframes)} keyframes, 0 lost)" in \
        capsys.readouterr().out
    report = tmp_path / "metrics.json"
    assert main(["eval", str(out), str(folder), "--out", str(report)]) == 0


def test_mast3r_geometry_movers_write_estimated_masks(dynamic_synth, tmp_path):
    """`--movers geometry`: no mask source, the consistency check's masks are written for
    every frame but the first (decoded alone) and cover the true movers."""
    folder, scene = dynamic_synth
    out = tmp_path / "run"
    assert main(["slam", "--method", "mast3r", "--oracle", str(folder), "--out", str(out),
                 "--movers", "geometry"]) == 0
    written = sorted(p.name for p in (out / "dynamic_mask").glob("*.png"))
    assert written == [f"{i:06d}.png" for i in range(1, 10)]
    masks = np.stack([np.asarray(Image.open(out / "dynamic_mask" / name)) > 0
                      for name in written])
    truth = scene.dynamic_mask[1:]
    assert (masks & truth).sum() > 0.5 * truth.sum()  # recall: measured 0.85
    gt = scene.poses_c2w
    path = float(np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum())
    metrics = pose_metrics(out / "trajectory_tum.txt", folder / "trajectory_tum.txt")
    assert metrics["ate"] < 0.02 * path


def write_frames(folder: Path, sizes: list[tuple[int, int]]) -> None:
    """PNG frames of the given (width, height), shifted crops of one random picture."""
    folder.mkdir()
    picture = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    for i, (width, height) in enumerate(sizes):
        Image.fromarray(picture[:height, 2 * i:2 * i + width]).save(folder / f"{i:03d}.png")


def test_mast3r_tiny_checkpoint_keeps_what_was_done_before_a_frame_of_another_size(tmp_path,
                                                                                   capsys):
    frames = tmp_path / "frames"
    write_frames(frames, [(64, 48)] * 3 + [(48, 64)])
    out = tmp_path / "run"
    code = main(["slam", str(frames), "--method", "mast3r", "--weights", str(MAST3R),
                 "--size", "64", "--out", str(out), "--no-map-video"])
    assert code == 2
    assert "003.png: frame 3 is 48x64 but the stream started at 64x48" in capsys.readouterr().err
    doc = json.loads((out / "scene.json").read_text())
    assert doc["slam"]["frames_done"] == 3 and "48x64" in doc["slam"]["error"]
    traj = load_prediction(out).trajectory
    assert len(traj) == 3 and np.isfinite(traj.poses).all()


def test_mast3r_stream_that_never_tracks_is_an_error_with_its_folder(tmp_path, capsys):
    # the tiny checkpoint on a video, structure only: random weights give no confident match,
    # so every frame after the first is lost, yet each one is decoded, run through the network
    # and written before the error
    video = tmp_path / "clip.mp4"
    write_video(video, 8)
    out = tmp_path / "run"
    code = main(["slam", str(video), "--method", "mast3r", "--weights", str(MAST3R),
                 "--size", "64", "--out", str(out)])
    assert code == 2 and "clip.mp4: no frame after the first" in capsys.readouterr().err
    doc = json.loads((out / "scene.json").read_text())
    assert doc["slam"]["frames_done"] == 8 and doc["slam"]["lost_frames"] == list(range(1, 8))
    rows = (out / "slam_frames.csv").read_text().splitlines()
    assert [r.split(",")[4] for r in rows[1:]] == ["0"] + ["1"] * 7  # the lost column
    traj = load_prediction(out).trajectory
    assert np.allclose(traj.timestamps, np.arange(8) / 10)  # the video's timestamps
    assert len(decode_video(out / "map_video.mp4")) == 8
    for name in ("keyframes_tum.txt", "pointcloud.ply", "scene.glb"):
        assert (out / name).stat().st_size > 0, name


def test_mast3r_calibration_for_other_frames_fails_before_any_frame(dynamic_synth, tmp_path,
                                                                    capsys):
    folder, _ = dynamic_synth
    calib = tmp_path / "calib.json"
    calib.write_text(json.dumps({"fx": 500, "fy": 500, "cx": 320, "cy": 240}))
    out = tmp_path / "run"
    code = main(["slam", "--method", "mast3r", "--oracle", str(folder), "--out", str(out),
                 "--calib", str(calib)])
    err = capsys.readouterr().err
    assert code == 2 and "calib.json: principal point (320, 240) does not fit the 64x48" in err
    assert not out.exists()


def test_mast3r_oracle_masks_need_the_oracle(tmp_path, capsys):
    code = main(["slam", str(tmp_path), "--method", "mast3r", "--movers", "oracle", "--out",
                 str(tmp_path / "run")])
    assert code == 2 and "--movers oracle" in capsys.readouterr().err
