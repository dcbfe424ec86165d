"""`recon4d view`: reading output folders back, the viser viewer served over HTTP and its
websocket, the timeline driving the moving cloud, and a clean shutdown on Ctrl-C / SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from recon4d import cli
from recon4d.errors import InputError, OptionError, Recon4dError
from recon4d.io.output_folder import read_output_folder
from recon4d.io.writers import write_scene
from recon4d.options import ViewOptions
from recon4d.scene import Scene
from recon4d.viz.point_cloud import PointCloud
from recon4d.viz.viewer import CAMERA_COLOUR, CURRENT_COLOUR, Viewer, load_viser

viser = pytest.importorskip("viser")

N, H, W = 4, 6, 8
STATIC_FORMATS = ("trajectory", "intrinsics", "depth", "conf", "kept_mask", "ply")
MOVING_COUNTS = (3, 0, 5, 2)  # moving points per frame; frame 1 has no file


def make_scene() -> Scene:
    """N cameras stepping along x, looking down +z at depth 2; every other pixel kept."""
    poses = np.tile(np.eye(4), (N, 1, 1))
    poses[:, 0, 3] = 0.5 * np.arange(N)
    k = np.tile(np.array([[10.0, 0, 3.5], [0, 10.0, 2.5], [0, 0, 1]]), (N, 1, 1))
    rng = np.random.default_rng(0)
    masks = np.zeros((N, H, W), bool)
    masks[:, :, ::2] = True
    return Scene(images=rng.integers(0, 256, (N, H, W, 3), dtype=np.uint8),
                 depths=np.full((N, H, W), 2.0, np.float32),
                 confs=rng.uniform(1, 5, (N, H, W)).astype(np.float32),
                 intrinsics=k, poses_c2w=poses, masks=masks)


def write_test_ply(path: Path, points: np.ndarray, colours: np.ndarray,
                   confidence: np.ndarray) -> None:
    """A binary PLY as the 4D writer's: xyz float, rgb uchar, then float confidence."""
    rows = np.empty(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"),
                                        ("green", "u1"), ("blue", "u1"), ("confidence", "<f4")])
    for axis, name in enumerate("xyz"):
        rows[name] = points[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        rows[name] = colours[:, channel]
    rows["confidence"] = confidence
    header = ("ply\nformat binary_little_endian 1.0\n"
              f"element vertex {len(points)}\nproperty float x\nproperty float y\n"
              "property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\n"
              "property float confidence\nend_header\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode("ascii") + rows.tobytes())


def cloud(count: int, seed: int) -> PointCloud:
    """`count` points with colours and confidences 1, 2, ..., count."""
    rng = np.random.default_rng(seed)
    return PointCloud(rng.normal(size=(count, 3)).astype(np.float32),
                      rng.integers(0, 256, (count, 3), dtype=np.uint8),
                      np.arange(1, count + 1, dtype=np.float32))


STATIC_4D = cloud(10, seed=10)
MOVING = [cloud(count, seed=i) for i, count in enumerate(MOVING_COUNTS)]


@pytest.fixture
def static_dir(tmp_path) -> Path:
    out = tmp_path / "static"
    write_scene(make_scene(), out, STATIC_FORMATS)
    return out


@pytest.fixture
def dynamic_dir(static_dir) -> Path:
    """The static folder plus static.ply and dynamic/NNNNNN.ply (none for frame 1)."""
    write_test_ply(static_dir / "static.ply", STATIC_4D.points, STATIC_4D.colors,
                   STATIC_4D.confidence)
    for i, moving in enumerate(MOVING):
        if len(moving):
            write_test_ply(static_dir / "dynamic" / f"{i:06d}.ply", moving.points,
                           moving.colors, moving.confidence)
    return static_dir


def test_reads_a_static_folder(static_dir):
    scene = make_scene()
    folder = read_output_folder(static_dir)
    assert len(folder) == N and folder.moving == ()
    assert len(folder.static) == N * H * W // 2 and folder.image_size == (W, H)
    np.testing.assert_allclose(folder.poses_c2w, scene.poses_c2w, atol=1e-12)
    np.testing.assert_allclose(folder.intrinsics, scene.intrinsics)
    np.testing.assert_array_equal(folder.timestamps, np.arange(N))
    # first kept point: pixel (0, 0) of frame 0 at depth 2: x = (0 - 3.5) * 2 / 10
    np.testing.assert_allclose(folder.static.points[0], [-0.7, -0.5, 2.0], rtol=1e-6)
    np.testing.assert_array_equal(folder.static.colors[0], scene.images[0, 0, 0])


def test_reads_a_4d_folder_and_thins_it(dynamic_dir):
    folder = read_output_folder(dynamic_dir)
    np.testing.assert_array_equal(folder.static.points, STATIC_4D.points)
    np.testing.assert_array_equal(folder.static.confidence, STATIC_4D.confidence)
    assert [len(c) for c in folder.moving] == list(MOVING_COUNTS)
    np.testing.assert_array_equal(folder.moving[2].colors, MOVING[2].colors)
    thin = read_output_folder(dynamic_dir, max_points=2)
    assert [len(c) for c in thin.moving] == [2, 0, 2, 2]
    np.testing.assert_array_equal(thin.static.confidence, [1, 10])  # first and last


def test_reads_what_the_4d_writer_writes(tmp_path):
    """The real writer's static.ply and dynamic/: each frame's moving points are its kept moving
    pixels, back-projected here by hand (depth 2, f = 10, camera i at x = 0.5 i)."""
    scene = make_scene()
    scene.dynamic_masks = np.zeros((N, H, W), bool)
    scene.dynamic_masks[[0, 2, 3], :3, :4] = True  # frame 1: nothing moves
    write_scene(scene, tmp_path, ("trajectory", "intrinsics", "static_ply", "dynamic_ply"))
    folder = read_output_folder(tmp_path)
    assert [len(c) for c in folder.moving] == [6, 0, 6, 6]  # rows 0-2, columns 0 and 2
    v, u = np.mgrid[0:3, 0:4:2]
    expected = np.stack([(u - 3.5) * 0.2 + 1.0, (v - 2.5) * 0.2, np.full(u.shape, 2.0)], -1)
    np.testing.assert_allclose(folder.moving[2].points, expected.reshape(-1, 3), atol=1e-6)
    np.testing.assert_allclose(folder.moving[2].confidence,
                               scene.confs[2, :3, 0:4:2].reshape(-1))
    assert 0 < len(folder.static) <= N * H * W // 2 - 18
    assert folder.static.confidence is not None


def test_folder_errors_name_the_file(tmp_path, static_dir):
    with pytest.raises(InputError, match="not a recon4d output folder"):
        read_output_folder(tmp_path)
    with pytest.raises(InputError, match="absent: no such folder"):
        read_output_folder(tmp_path / "absent")
    (static_dir / "dynamic").mkdir()
    write_test_ply(static_dir / "dynamic" / "000004.ply", MOVING[0].points, MOVING[0].colors,
                   MOVING[0].confidence)
    with pytest.raises(InputError, match=r"000004\.ply: no such frame .* \(4 poses\)"):
        read_output_folder(static_dir)
    (static_dir / "dynamic" / "000004.ply").unlink()
    (static_dir / "pointcloud.ply").write_text("solid cube\n")
    with pytest.raises(InputError, match=r"pointcloud\.ply: not a PLY file"):
        read_output_folder(static_dir)
    (static_dir / "pointcloud.ply").rename(tmp_path / "elsewhere.ply")
    with pytest.raises(InputError, match=r"no point cloud \(static\.ply or pointcloud\.ply\)"):
        read_output_folder(static_dir)
    (tmp_path / "elsewhere.ply").rename(static_dir / "pointcloud.ply")
    (static_dir / "trajectory_tum.txt").unlink()
    with pytest.raises(InputError, match=r"trajectory_tum\.txt: file not found"):
        read_output_folder(static_dir)


def test_one_moving_cloud_per_camera():
    with pytest.raises(InputError, match="2 moving clouds for 4 cameras"):
        Viewer(STATIC_4D, MOVING[:2], np.tile(np.eye(4), (N, 1, 1)), port=0)


def test_missing_viser_names_the_extra(monkeypatch, static_dir, capsys):
    monkeypatch.setitem(sys.modules, "viser", None)
    with pytest.raises(Recon4dError, match=r"pip install 'recon4d\[viewer\]'"):
        load_viser()
    assert cli.main(["view", str(static_dir)]) == 2
    assert "recon4d view: error: the viewer needs the package 'viser'" in capsys.readouterr().err


def test_bad_port_is_an_option_error():
    with pytest.raises(OptionError, match="--port must be at most 65535, got 70000"):
        ViewOptions(port=70000)


def scene_state(port: int) -> dict[str, dict]:
    """What a new browser receives: per scene node, its message type and point or segment count
    (creation messages folded with later updates), read from viser's websocket."""
    import msgspec
    import zstandard
    from websockets.sync.client import connect

    nodes: dict[str, dict] = {}
    with connect(f"ws://127.0.0.1:{port}", subprotocols=[f"viser-v{viser.__version__}"],
                 open_timeout=10) as ws:
        while True:
            raw = ws.recv(timeout=10)
            size, packed = (int.from_bytes(raw[i:i + 8], "little") for i in (0, 8))
            batch = msgspec.msgpack.decode(zstandard.ZstdDecompressor().decompress(
                raw[16:16 + packed], max_output_size=size))
            lengths = batch["binaryBufferLengths"]
            for message in batch["messages"]:
                if message["type"] == "ReplayDoneMessage":
                    return nodes
                fields = message.get("props") or message.get("updates")
                if message.get("name") is None or not isinstance(fields, dict):
                    continue
                node = nodes.setdefault(message["name"], {"type": message["type"]})
                if "points" in fields:  # float32 xyz: 12 bytes a point, 24 a segment
                    node["count"] = lengths[fields["points"]["__binary_index"]] // 12


@pytest.fixture
def viewer(dynamic_dir):
    folder = read_output_folder(dynamic_dir)
    with Viewer(folder.static, folder.moving, folder.poses_c2w, folder.intrinsics,
                folder.image_size, port=0) as running:
        yield running


def test_serves_the_page_and_the_scene(viewer):
    with urllib.request.urlopen(viewer.url, timeout=10) as page:
        assert page.status == 200 and b"<html" in page.read().lower()
    nodes = scene_state(viewer.server.get_port())
    frustums = [n for n in nodes.values() if n["type"] == "CameraFrustumMessage"]
    assert len(frustums) == N
    assert nodes["/static"]["count"] == len(STATIC_4D)
    assert nodes["/moving"]["count"] == MOVING_COUNTS[0]
    assert nodes["/cameras/trail"]["count"] == 0


def test_the_timeline_drives_the_moving_cloud(viewer):
    viewer.frame.value = 2
    np.testing.assert_array_equal(viewer.moving_node.points, MOVING[2].points)
    np.testing.assert_array_equal(viewer.moving_node.colors, MOVING[2].colors)
    assert [f.color for f in viewer.frustums] == [CAMERA_COLOUR] * 2 + [CURRENT_COLOUR,
                                                                         CAMERA_COLOUR]
    np.testing.assert_allclose(viewer.trail.points[:, :, 0], [[0.0, 0.5], [0.5, 1.0]])
    nodes = scene_state(viewer.server.get_port())
    assert nodes["/moving"]["count"] == MOVING_COUNTS[2]
    assert nodes["/cameras/trail"]["count"] == 2 * 2  # two segments, two ends each
    viewer.frame.value = 1  # no moving points in frame 1
    assert len(viewer.moving_node.points) == 0


def test_threshold_size_and_toggles(viewer):
    viewer.frame.value = 2
    viewer.min_confidence.value = 4.0  # confidences are 1..count
    assert len(viewer.static_node.points) == 10 - 3 and len(viewer.moving_node.points) == 5 - 3
    np.testing.assert_array_equal(viewer.static_node.points, STATIC_4D.points[3:])
    viewer.point_size.value = viewer.point_size.max
    assert viewer.static_node.point_size == viewer.moving_node.point_size == viewer.point_size.max
    viewer.show_static.value = viewer.show_moving.value = viewer.show_cameras.value = False
    assert not (viewer.static_node.visible or viewer.moving_node.visible
                or viewer.cameras_node.visible)


def test_play_advances_the_frames(viewer):
    seen = set()
    viewer.fps.value = 20
    viewer.playing.value = True
    deadline = time.monotonic() + 10
    while len(seen) < N and time.monotonic() < deadline:
        seen.add(int(viewer.frame.value))
        time.sleep(0.005)
    viewer.playing.value = False
    assert seen == set(range(N))


def read_url(process: subprocess.Popen, timeout: float = 60) -> str:
    """The viewer's address from the command's stdout line (read in a thread: no blocking)."""
    found: list[str] = []

    def scan() -> None:
        for line in process.stdout:
            if match := re.search(r"open (http://\S+) ", line):
                found.append(match.group(1))
                return

    reader = threading.Thread(target=scan, daemon=True)
    reader.start()
    reader.join(timeout)
    assert found, "the viewer did not print its address"
    return found[0]


@pytest.mark.parametrize("signum, status, message", [
    (signal.SIGINT, 130, "recon4d view: interrupted"),
    (signal.SIGTERM, 143, "recon4d view: terminated by SIGTERM")])
def test_the_command_serves_until_a_signal(dynamic_dir, signum, status, message):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Ctrl-C reaches the child even where this test runs with SIGINT ignored (a background job)
    process = subprocess.Popen(
        [sys.executable, "-m", "recon4d", "view", str(dynamic_dir), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        url = read_url(process)
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200
        process.send_signal(signum)
        assert process.wait(timeout=20) == status
    finally:
        process.kill()
    err = process.stderr.read()
    assert "Traceback" not in err and err.strip().splitlines()[-1] == message
