"""The live view of a running SLAM session: the viewer's map pieces and their similarity
transforms, and oracle sessions of both methods feeding it (served over HTTP while they run,
throttled, only changed pieces sent, its final map equal to the written cloud)."""

from __future__ import annotations

import csv
import re
import urllib.request

import numpy as np
import pytest

from recon4d.cli import main
from recon4d.io.output_folder import read_cloud
from recon4d.io.tum import read_tum
from recon4d.options.slam import (
    LiveViewOptions,
    Mast3rSlamOptions,
    Slam3rOptions,
    SlamOptions,
)
from recon4d.pipeline.slam import slam
from recon4d.synthetic import generate_scene, write_scene
from recon4d.viz.live_viewer import LiveMapViewer, similarity_parts
from recon4d.viz.point_cloud import PointCloud
from tests.test_viewer import scene_state

viser = pytest.importorskip("viser")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

FRAMES = 12
SLAM3R_FAST = Slam3rOptions(keyframe_stride=2, win_r=2, initial_winsize=3, num_scene_frame=3,
                            buffer_size=6)


class RecordingViewer(LiveMapViewer):
    """A live viewer that records what each update sent and fetches its own page during the
    first one (while the session runs)."""

    def __init__(self) -> None:
        super().__init__(port=0)
        self.sent: list[tuple[int, set[int], set[int]]] = []  # (frames, clouds, transforms)
        self.page_status: int | None = None

    def update(self, poses_c2w, clouds=None, transforms=None) -> None:
        if self.page_status is None:
            with urllib.request.urlopen(self.url, timeout=10) as page:
                self.page_status = page.status
        self.sent.append((len(poses_c2w), set(clouds or {}), set(transforms or {})))
        super().update(poses_c2w, clouds, transforms)


@pytest.fixture(scope="module")
def dynamic_scene(tmp_path_factory):
    scene = generate_scene(frames=FRAMES, width=64, height=48, movers=2, seed=4, fps=5.0)
    return write_scene(scene, tmp_path_factory.mktemp("synth") / "scene")


def run_mast3r(folder, out, rate: float) -> RecordingViewer:
    """An oracle MASt3R-SLAM session (true mover masks) into `out`, fed to a new viewer."""
    options = SlamOptions(method="mast3r", map_video=False,
                          mast3r=Mast3rSlamOptions(movers="oracle", keyframe_overlap=0.6),
                          live=LiveViewOptions(view_rate=rate))
    viewer = RecordingViewer()
    try:
        slam(out, oracle=str(folder), options=options, progress=False, viewer=viewer)
    finally:
        viewer.stop()
    return viewer


def assert_map_is_the_written_one(viewer: LiveMapViewer, out) -> None:
    """The viewer holds one pose per frame (those of the trajectory file) and its map pieces,
    placed in the world, are the written cloud."""
    trajectory = read_tum(out / "trajectory_tum.txt")
    assert viewer.poses.shape == (len(trajectory.poses), 4, 4)
    np.testing.assert_allclose(viewer.poses, trajectory.poses, atol=1e-5)
    written, shown = read_cloud(out / "pointcloud.ply"), viewer.map_cloud()
    assert len(shown) == len(written) > 0
    np.testing.assert_allclose(shown.points, written.points, atol=1e-5)
    np.testing.assert_array_equal(shown.colors, written.colors)


def test_similarity_parts_and_world_points():
    # scale 2, a quarter turn about z, then up by 1: x -> 2 y + z
    transform = np.array([[0.0, -2, 0, 0], [2, 0, 0, 0], [0, 0, 2, 1], [0, 0, 0, 1]])
    scale, wxyz, position = similarity_parts(transform)
    assert scale == pytest.approx(2.0)
    np.testing.assert_allclose(np.abs(wxyz), [np.sqrt(0.5), 0, 0, np.sqrt(0.5)], atol=1e-12)
    np.testing.assert_allclose(position, [0, 0, 1])
    with LiveMapViewer(port=0) as viewer:
        points = np.array([[1.0, 0, 0], [0, 0, 1]], np.float32)
        colors = np.array([[255, 0, 0], [0, 255, 0]], np.uint8)
        viewer.update(np.tile(np.eye(4), (3, 1, 1)), {4: PointCloud(points, colors)},
                      {4: transform})
        np.testing.assert_allclose(viewer.map_cloud().points, [[0, 2, 1], [0, 0, 3]],
                                   atol=1e-6)
        node = viewer.server.scene.get_handle_by_name("/map/000004")
        assert node is not None and len(node.points) == 2
        assert np.allclose(node.scale, 2.0) and np.allclose(node.position, [0, 0, 1])
        assert len(viewer.trail.points) == 2 and viewer.camera.visible  # 3 frames, 2 segments
        nodes = scene_state(viewer.server.get_port())  # what a browser opening now receives
        assert nodes["/map/000004"]["count"] == 2
        assert nodes["/trajectory"]["count"] == 2 * 2  # two segments, two ends each
        assert nodes["/current"]["type"] == "CameraFrustumMessage"
    viewer.update(np.eye(4)[None], {5: PointCloud(points, colors)})  # stopped: ignored
    assert set(viewer.clouds) == {4} and viewer.updates == 1


def test_mast3r_session_sends_only_what_changed(dynamic_scene, tmp_path):
    out = tmp_path / "run"
    viewer = run_mast3r(dynamic_scene, out, rate=1e6)  # every frame
    assert viewer.page_status == 200
    assert_map_is_the_written_one(viewer, out)
    with open(out / "slam_frames.csv") as table:
        rows = list(csv.DictReader(table))
    # one update per frame and a last one; a tracked frame refills its keyframe only
    assert [frames for frames, _, _ in viewer.sent] == [*range(1, FRAMES + 1), FRAMES]
    keyframes = [int(r["frame"]) for r in rows if r["is_keyframe"] == "1"]
    assert set(viewer.clouds) == set(range(len(keyframes)))
    assert 1 < len(keyframes) < FRAMES
    previous = 0  # the keyframe the previous frame was fused into
    for row, (_, clouds, transforms) in zip(rows[1:], viewer.sent[1:], strict=False):
        keyframe = int(row["keyframe"])
        if row["is_keyframe"] == "0":
            assert clouds == {keyframe} and transforms == set()
        else:  # the new keyframe, the last one it was fused into, and what the back end moved
            assert clouds == {previous, keyframe} and keyframe in transforms
        previous = keyframe
    assert max(len(transforms) for _, _, transforms in viewer.sent) > 2
    assert viewer.sent[-1][1:] == (set(), set())  # the last frame was already sent


def test_mast3r_session_is_throttled(dynamic_scene, tmp_path):
    out = tmp_path / "run"
    viewer = run_mast3r(dynamic_scene, out, rate=1e-6)  # one update in a million seconds
    assert [frames for frames, _, _ in viewer.sent] == [1, FRAMES]  # the first and the last
    assert_map_is_the_written_one(viewer, out)


def test_slam3r_session_feeds_the_live_view(tmp_path):
    scene = generate_scene(frames=20, width=64, height=48, movers=0, seed=4)
    folder = write_scene(scene, tmp_path / "scene")
    out = tmp_path / "run"
    viewer = RecordingViewer()
    try:
        slam(out, oracle=str(folder), progress=False, viewer=viewer,
             options=SlamOptions(slam3r=SLAM3R_FAST, live=LiveViewOptions(view_rate=1e6)))
    finally:
        viewer.stop()
    assert viewer.page_status == 200
    assert_map_is_the_written_one(viewer, out)
    assert viewer.transforms and all(np.array_equal(t, np.eye(4))
                                     for t in viewer.transforms.values())


def test_the_command_prints_the_address(dynamic_scene, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["slam", "--method", "mast3r", "--oracle", str(dynamic_scene), "--out",
                 str(out), "--no-map-video", "--view", "--port", "0"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"recon4d slam: live view at http://127\.0\.0\.1:\d+\n", printed)
    assert f"recon4d slam: {FRAMES} frames" in printed


def test_bad_live_view_options_are_refused(tmp_path, capsys):
    assert main(["slam", "--oracle", str(tmp_path), "--out", str(tmp_path / "run"),
                 "--port", "70000"]) == 2
    assert "--port must be at most 65535, got 70000" in capsys.readouterr().err
    assert main(["slam", "--oracle", str(tmp_path), "--out", str(tmp_path / "run"),
                 "--view-rate", "0"]) == 2
    assert "--view-rate must be a positive number" in capsys.readouterr().err
