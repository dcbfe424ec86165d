"""The map-growing MP4 (`recon4d.viz.map_video`): frames side by side read back with PyAV, the map
seen from the filming camera reproduces the frame, the bounded map is a uniform sample, and
clear errors for bad paths, missing PyAV and failing writes."""

from __future__ import annotations

import av
import numpy as np
import pytest

from recon4d.errors import OptionError, OutputError
from recon4d.synthetic import generate_scene
from recon4d.viz import map_video
from recon4d.viz.map_video import MapVideo, PointReservoir

WIDTH, HEIGHT = 48, 32


@pytest.fixture(scope="module")
def scene():
    return generate_scene(6, WIDTH, HEIGHT, movers=0, seed=0, trajectory="orbit")


def frame_points(scene, i: int, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Every `step`-th surface point of frame i (world) with its colour."""
    keep = scene.depth[i] > 0
    return scene.world_points(i)[keep][::step], scene.rgb[i][keep][::step]


def decode(path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, float(stream.average_rate)


def test_mp4_shows_each_input_beside_the_growing_map(tmp_path, scene):
    path = tmp_path / "map.mp4"
    with MapVideo(path, (WIDTH, HEIGHT), fps=5) as video:
        for i in range(scene.num_frames):
            # frame 0 adds nothing: its map half must stay empty
            points, colors = frame_points(scene, i, 3) if i else (np.zeros((0, 3)), [])
            video.add(scene.rgb[i], points, colors, scene.poses_c2w[i])
    frames, rate = decode(path)
    assert len(frames) == scene.num_frames and rate == pytest.approx(5.0)
    assert frames[0].shape == (HEIGHT, 2 * WIDTH, 3)
    error = np.array([[np.abs(f[:, :WIDTH].astype(float) - scene.rgb[j]).mean()
                       for j in range(scene.num_frames)] for f in frames])
    assert error.diagonal().max() < 12  # H.264 loss on a textured 48 x 32 frame (~8)
    assert (error.argmin(axis=1) == np.arange(scene.num_frames)).all()  # its own frame
    drawn = [int((f[:, WIDTH:].max(axis=2) > 40).sum()) for f in frames]
    assert drawn[0] == 0 and min(drawn[1:]) > 0.3 * WIDTH * HEIGHT


def test_map_seen_from_the_filming_camera_is_the_frame(tmp_path, scene):
    """No pull-back, lift or smoothing and the scene's own K: the map of frame 0's points drawn
    from frame 0's camera reproduces frame 0 wherever it has a surface."""
    with MapVideo(tmp_path / "map.mp4", (WIDTH, HEIGHT), point_size=1, pull_back=0.0,
                  lift=0.0, sigma=1e-6, intrinsics=scene.intrinsics[0]) as video:
        image = video.add(scene.rgb[0], *frame_points(scene, 0), scene.poses_c2w[0])
    has_surface = scene.depth[0] > 0
    np.testing.assert_array_equal(image[:, :WIDTH], scene.rgb[0])
    np.testing.assert_array_equal(image[:, WIDTH:][has_surface], scene.rgb[0][has_surface])
    assert has_surface.mean() > 0.9


def test_input_frames_of_another_size_are_resized_and_lost_poses_tolerated(tmp_path):
    with MapVideo(tmp_path / "map.mp4", (WIDTH, HEIGHT)) as video:
        frame = np.full((2 * HEIGHT, 2 * WIDTH + 6, 3), (200, 100, 50), np.uint8)
        image = video.add(frame, np.zeros((0, 3)), np.zeros((0, 3)), np.full((4, 4), np.nan))
    assert image.shape == (HEIGHT, 2 * WIDTH, 3)
    assert (image[:, :WIDTH] == (200, 100, 50)).all() and (image[:, WIDTH:] == 0).all()


def test_bounded_map_is_a_uniform_sample_of_every_point_added():
    reservoir = PointReservoir(1000, seed=0)
    for batch in range(10):  # colour = batch: how many of each batch stay
        reservoir.add(np.random.default_rng(batch).normal(size=(1000, 3)),
                      np.full((1000, 3), batch, np.uint8))
    assert reservoir.size == 1000 and reservoir.seen == 10_000
    per_batch = np.bincount(reservoir.colors[:, 0], minlength=10)
    # expected 100 each (binomial sd ~9.5); keeping the newest or oldest would give 1000 / 0
    assert per_batch.min() > 60 and per_batch.max() < 140
    first = np.random.default_rng(0).normal(size=(1000, 3)).astype(np.float32)
    kept = reservoir.points[reservoir.colors[:, 0] == 0]
    assert np.isin(kept[:, 0], first[:, 0]).all()  # points keep their colours


def test_map_memory_stays_within_the_budget(tmp_path, scene):
    with MapVideo(tmp_path / "map.mp4", (WIDTH, HEIGHT), budget=500) as video:
        for i in range(3):
            video.add(scene.rgb[i], *frame_points(scene, i), scene.poses_c2w[i])
        assert video.map.size == 500 and len(video.map.points) == 500
        assert video.map.seen == sum((scene.depth[i] > 0).sum() for i in range(3))


def test_missing_folder_and_missing_pyav_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(OutputError, match=r"nowhere.*map\.mp4.*does not exist"):
        MapVideo(tmp_path / "nowhere" / "map.mp4", (WIDTH, HEIGHT))
    with pytest.raises(OptionError):
        MapVideo(tmp_path / "map.mp4", (0, HEIGHT))
    monkeypatch.setattr(map_video, "has_pyav", lambda: False)
    with pytest.raises(OutputError, match=r"map\.mp4.*PyAV"):
        MapVideo(tmp_path / "map.mp4", (WIDTH, HEIGHT))


def test_a_failing_write_is_reported_and_no_frames_write_no_file(tmp_path):
    target = tmp_path / "taken.mp4"
    target.mkdir()  # a folder where the file should go: the encoder cannot open it
    video = MapVideo(target, (WIDTH, HEIGHT))
    with pytest.raises(OutputError, match="taken.mp4: cannot write the map video"):
        for _ in range(5):
            video.add(np.zeros((HEIGHT, WIDTH, 3), np.uint8), np.zeros((0, 3)), [], np.eye(4))
        video.close()
    assert MapVideo(tmp_path / "empty.mp4", (WIDTH, HEIGHT)).close() is False
    assert not (tmp_path / "empty.mp4").exists()
