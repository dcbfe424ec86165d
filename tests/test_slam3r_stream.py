"""SLAM3R stream (`recon4d.slam.slam3r`): the spec's bookkeeping rules on hand-computed cases,
the stream on a synthetic static sequence answered by the oracle (trajectory and world points
against the ground truth), streaming latency, bounded memory, and input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon4d.errors import InputError, OptionError
from recon4d.eval.clouds import nearest_distances
from recon4d.eval.poses import align_poses, pose_metrics
from recon4d.io.images import load_images
from recon4d.options.slam import Slam3rOptions
from recon4d.slam.slam3r import Slam3rStream, run_slam3r
from recon4d.slam.slam3r_camera import FrameCamera
from recon4d.slam.slam3r_fusion import PointFusion, to_world
from recon4d.slam.slam3r_rules import (
    SceneBuffer,
    initial_window_size,
    normalise_points,
    probe_strides,
    probe_windows,
    register_batch,
    window_ids,
)
from recon4d.synthetic import generate_scene
from recon4d.synthetic.slam3r_oracle import Slam3rOracle

FAST = dict(keyframe_stride=2, win_r=2, initial_winsize=3, num_scene_frame=3, buffer_size=6)


# the oracle's small convolutions run far faster on one thread than on a busy pool
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scene():
    return generate_scene(36, 64, 48, movers=0, seed=3)


@pytest.fixture(scope="module")
def views(scene):
    return load_images(list(scene.rgb), size=64, verbose=False)


# ---------------------------------------------------------------------------- rules

def test_window_ids_alternate_sides_and_drop_out_of_range():
    assert window_ids(10, 3, 2, 20) == [10, 7, 13, 4, 16]
    assert window_ids(1, 2, 3, 6) == [1, 3, 5]  # 1 - 2 < 0 and 1 + 6 >= 6 are dropped
    assert window_ids(5, 2, 2, 7) == [5, 3, 1]


def test_probe_strides_and_windows():
    assert list(probe_strides(121, 20)) == list(range(1, 21))
    assert list(probe_strides(50, 20)) == list(range(1, 9))  # (50 - 1) // 6 = 8
    assert list(probe_strides(6, 20)) == []
    windows = probe_windows(30, 4, np.random.default_rng(0))
    assert len(windows) == 6  # min(30 - 24, 10)
    assert sorted(w[0] for w in windows) == list(range(12, 18))  # every centre of [12, 18)
    assert all(w == window_ids(w[0], 4, 3, 30) and len(w) == 7 for w in windows)


def test_window_sizes():
    assert initial_window_size(100, 20, 5) == 5
    assert initial_window_size(45, 20, 5) == 2
    assert [register_batch(s, 10) for s in (1, 2, 3, 4, 19, 20, 40)] == [1, 1, 2, 2, 10, 10, 10]
    assert register_batch(9, 3) == 3


def test_normalise_points_jointly_by_mean_valid_distance():
    a = torch.tensor([[[3.0, 4.0, 0.0], [100.0, 0.0, 0.0]]])  # distances 5 and (invalid) 100
    b = torch.tensor([[[0.0, 0.0, 15.0], [0.0, 6.0, 8.0]]])  # 15 and 10
    va, vb = torch.tensor([[True, False]]), torch.tensor([[True, True]])
    na, nb = normalise_points([a, b], [va, vb])  # mean of 5, 15, 10 = 10
    assert torch.allclose(na, torch.tensor([[[0.3, 0.4, 0.0], [0.0, 0.0, 0.0]]]))
    assert torch.allclose(nb, torch.tensor([[[0.0, 0.0, 1.5], [0.0, 0.6, 0.8]]]))


class ScriptedRng:
    """Stand-in generator returning scripted draws, to hand-compute reservoir decisions."""

    def __init__(self, randoms, integers=()):
        self.randoms, self.ints = list(randoms), list(integers)

    def random(self):
        return self.randoms.pop(0)

    def integers(self, high):
        value = self.ints.pop(0)
        assert 0 <= value < high
        return value


def near_12(i):
    return -abs(i - 12)


def test_buffer_fifo_picks_best_of_segment_after_offset():
    buf = SceneBuffer([0, 4, 8], stride=4, size=3, strategy="fifo", interval=1,
                      rng=ScriptedRng([]))
    assert buf.milestone == 9
    assert buf.update(12, near_12) == [] and buf.ids == [0, 4, 8]  # 3 registered < 4
    # segment [9, 13): candidates from 9 + max(0, 8 + 3 - 9) = 11; best is 12; oldest leaves
    assert buf.update(13, near_12) == [0]
    assert buf.ids == [4, 8, 12] and buf.milestone == 13 and buf.counter == 4


def test_buffer_interval_waits_for_several_segments():
    buf = SceneBuffer([0, 2], stride=2, size=0, strategy="reservoir", interval=3,
                      rng=ScriptedRng([]))
    assert buf.update(8, lambda i: i) == [] and buf.ids == [0, 2]  # 8 - 3 = 5 < 6
    buf.update(9, lambda i: -i)  # segments [3, 5), [5, 7), [7, 9); unbounded: always insert
    # offsets: 2 + 1 - 3 = 0 -> 3; then 3 + 1 - 5 < 0 -> 5; then 5 + 1 - 7 < 0 -> 7
    assert buf.ids == [0, 2, 3, 5, 7] and buf.milestone == 9


def test_reservoir_inserts_with_probability_size_over_counter_and_keeps_newcomer():
    # size 2, counter starts at 2: segment 1 -> counter 3, p = 2/3; segment 2 -> 4, p = 1/2
    buf = SceneBuffer([0, 1], stride=1, size=2, strategy="reservoir", interval=1,
                      rng=ScriptedRng([0.7, 0.4], integers=[1]))
    assert buf.update(4, lambda i: 0.0) == [1]  # 0.7 >= 2/3 skips frame 2; 0.4 < 1/2 takes 3
    assert buf.ids == [0, 3] and buf.counter == 4


# ---------------------------------------------------------------------------- the stream

def test_stream_on_synthetic_sequence_tracks_camera_and_points(scene, views):
    result = run_slam3r(Slam3rOracle(scene), views, Slam3rOptions(**FAST))
    gt = scene.poses_c2w
    path = float(np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum())
    ate = pose_metrics(result.poses_c2w, gt, align="sim3")["ate"]
    assert len(result.poses_c2w) == scene.num_frames and result.failed == []
    assert ate < 0.01 * path  # the default corruption gives about 0.2 % of the path
    assert np.allclose(result.focals, scene.intrinsics[:, 0, 0], rtol=0.03)
    assert np.median(point_errors(scene, result)) < 0.02 * path
    assert result.points.shape == result.colors.shape


def point_errors(scene, result):
    """Distance of each world point to the true surface, after the trajectory's Sim(3)."""
    _, sim = align_poses(result.poses_c2w, scene.poses_c2w)
    truth = np.concatenate([scene.world_points(i)[scene.depth[i] > 0]
                            for i in range(scene.num_frames)])
    return nearest_distances(sim.apply_points(result.points), truth)


def test_fusion_brings_points_closer_to_the_surface(scene, views):
    single = run_slam3r(Slam3rOracle(scene), views, Slam3rOptions(**FAST, fuse=False))
    fused = run_slam3r(Slam3rOracle(scene), views, Slam3rOptions(**FAST))
    assert np.mean(point_errors(scene, fused)) < 0.8 * np.mean(point_errors(scene, single))


def test_point_fusion_is_a_weighted_mean_with_fallback():
    fusion = PointFusion()
    fallback = torch.full((1, 2, 3), -1.0)
    assert fusion.mean(fallback) is fallback
    fusion.add(torch.tensor([[[1.0, 2, 3], [5, 5, 5]]]), torch.tensor([[1.0, 0.0]]))
    fusion.add(torch.tensor([[[5.0, 6, 7], [9, 9, 9]]]), torch.tensor([[3.0, 0.0]]))
    assert torch.allclose(fusion.mean(fallback), torch.tensor([[[4.0, 5, 6], [-1, -1, -1]]]))


def test_to_world_applies_the_cameras_similarity():
    pose = np.eye(4)
    pose[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # 90 degrees about z
    pose[:3, 3] = [1, 2, 3]
    camera = FrameCamera(pose, focal=50.0, scale=2.0, residual=0.0)
    out = to_world(camera, torch.tensor([[1.0, 0.0, 0.5]]))
    assert torch.allclose(out, torch.tensor([[1.0, 4.0, 4.0]], dtype=out.dtype))


def test_frames_come_out_as_soon_as_their_window_is_complete(scene, views):
    stream = Slam3rStream(Slam3rOracle(scene), Slam3rOptions(**FAST))
    # keyframes 0, 2, 4; the head (frames 0..4) needs frame 4 + 2 * 2 = 8; then one frame
    # per round (register_batch(2) = 1), frame k once frame k + 4 has arrived
    out = [[f.index for f in stream.push(v)] for v in views[:12]]
    assert out[:8] == [[]] * 8
    assert out[8] == [0, 1, 2, 3, 4]
    assert out[9:] == [[5], [6], [7]]
    assert [f.index for f in stream.finish()] == list(range(8, 12))


def test_memory_stays_bounded_over_the_stream(scene, views):
    opts = Slam3rOptions(**{**FAST, "buffer_size": 4})
    stream = Slam3rStream(Slam3rOracle(scene), opts)
    held = []
    for v in views:
        stream.push(v)
        held.append(len(stream.frames))
    s, r = opts.keyframe_stride, opts.win_r
    assert max(held[20:]) <= opts.buffer_size + 2 * r * s + 2 * s + 1
    assert len(stream.buffer.ids) == opts.buffer_size


# ---------------------------------------------------------------------------- errors

def test_frames_of_different_sizes_are_refused(scene, views):
    stream = Slam3rStream(Slam3rOracle(scene), Slam3rOptions(**FAST))
    stream.push(views[0])
    odd = dict(views[1], img=torch.zeros(1, 3, 32, 64), label="odd.png")
    with pytest.raises(InputError, match=r"odd.png: 64x32 pixels.*64x48"):
        stream.push(odd)


def test_stream_shorter_than_the_initial_window_is_refused(scene, views):
    stream = Slam3rStream(Slam3rOracle(scene), Slam3rOptions(keyframe_stride=4))
    for v in views[:7]:
        assert stream.push(v) == []
    with pytest.raises(InputError, match="7 frames is shorter than the initial window.*8 frames"):
        stream.finish()


def test_bad_options_are_refused():
    with pytest.raises(OptionError, match="--buffer-size"):
        Slam3rOptions(buffer_size=3)
    with pytest.raises(OptionError, match="--buffer-strategy"):
        Slam3rOptions(buffer_strategy="lru")
