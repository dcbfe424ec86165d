"""Headless 4D rendering: z-buffered splats against hand-computed projections, the replay of a
scene from its own cameras, and the smooth virtual camera path."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from recon4d.errors import OptionError
from recon4d.geometry.quaternions import matrix_to_quat
from recon4d.geometry.rotations import axis_angle, rotation_angle
from recon4d.scene import Scene
from recon4d.viz.camera_path import local_linear_weights, smooth_poses, virtual_camera_path
from recon4d.viz.render import (
    moving_points,
    render_frames,
    render_points,
    static_cloud,
    write_render,
)

SIZE = (64, 48)  # W, H
FOCAL, CX, CY = 50.0, 32.0, 24.0
K = np.array([[FOCAL, 0, CX], [0, FOCAL, CY], [0, 0, 1]])
RED, BLUE, BLACK = (255, 0, 0), (0, 0, 255), (0, 0, 0)


def patch(cols: range, rows: range, depth: float, colour: tuple[int, int, int]):
    """Points at `depth` on the rays through the centres of pixels `cols` x `rows` (of K)."""
    u, v = np.meshgrid(np.array(cols, float), np.array(rows, float))
    xyz = np.stack([(u - CX) * depth / FOCAL, (v - CY) * depth / FOCAL,
                    np.full_like(u, depth)], -1).reshape(-1, 3)
    return torch.tensor(xyz, dtype=torch.float32), torch.tensor(colour, dtype=torch.uint8).repeat(
        len(xyz), 1)


def expected(*regions) -> np.ndarray:
    """A black (H, W, 3) image with (cols, rows, colour) regions painted in order."""
    image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    for cols, rows, colour in regions:
        image[rows.start:rows.stop, cols.start:cols.stop] = colour
    return image


def render(*clouds, pose=None, point_size=1) -> np.ndarray:
    """The clouds ((P, 3) points, (P, 3) colours) seen with K at SIZE (default pose: identity)."""
    pose = np.eye(4) if pose is None else pose
    points = torch.cat([c[0] for c in clouds])
    colours = torch.cat([c[1] for c in clouds])
    return render_points(points, colours, pose, K, SIZE, point_size)


def test_plane_fills_exactly_its_pixels():
    plane = patch(range(10, 20), range(8, 16), 2.0, RED)
    np.testing.assert_array_equal(render(plane), expected((range(10, 20), range(8, 16), RED)))


@pytest.mark.parametrize("blue_first", [False, True])
def test_nearer_point_wins_whatever_the_order(blue_first):
    red = patch(range(10, 20), range(8, 16), 3.0, RED)
    blue = patch(range(15, 25), range(8, 16), 1.5, BLUE)
    truth = expected((range(10, 15), range(8, 16), RED), (range(15, 25), range(8, 16), BLUE))
    clouds = (blue, red) if blue_first else (red, blue)
    np.testing.assert_array_equal(render(*clouds), truth)
    reversed_points = (torch.flip(torch.cat([c[0] for c in clouds]), [0]),
                       torch.flip(torch.cat([c[1] for c in clouds]), [0]))
    np.testing.assert_array_equal(render(reversed_points), truth)


def test_points_behind_or_beside_the_camera_are_not_drawn():
    behind = patch(range(10, 20), range(8, 16), -2.0, RED)  # would project mirrored
    # one column right of the image: a row-major index would wrap onto the next row
    beside = (torch.tensor([[(SIZE[0] - CX) * 2.0 / FOCAL, 0.0, 2.0]]),
              torch.tensor([RED], dtype=torch.uint8))
    np.testing.assert_array_equal(render(behind, beside), expected())


def test_square_splats_are_centred_on_the_projection():
    odd = patch(range(30, 31), range(20, 21), 2.0, RED)
    np.testing.assert_array_equal(render(odd, point_size=3),
                                  expected((range(29, 32), range(19, 22), RED)))
    # size 2: the 2 x 2 pixels whose centres are nearest to (30.2, 20.3)
    even = (torch.tensor([[(30.2 - CX) / FOCAL * 2, (20.3 - CY) / FOCAL * 2, 2.0]]),
            torch.tensor([BLUE], dtype=torch.uint8))
    np.testing.assert_array_equal(render(even, point_size=2),
                                  expected((range(30, 32), range(20, 22), BLUE)))
    # a splat partly outside the image keeps its inside part
    corner = patch(range(0, 1), range(0, 1), 2.0, RED)
    np.testing.assert_array_equal(render(corner, point_size=3),
                                  expected((range(0, 2), range(0, 2), RED)))


def test_camera_pose_is_camera_to_world():
    # camera at (-4, 0, 0) looking along world +x; its x axis is world -z, its y axis world +y
    pose = np.eye(4)
    pose[:3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]
    pose[:3, 3] = [-4, 0, 0]
    # camera coordinates of (0, 0.48, -0.4): (0.4, 0.48, 4) -> pixel (32 + 5, 24 + 6)
    point = (torch.tensor([[0.0, 0.48, -0.4]]), torch.tensor([RED], dtype=torch.uint8))
    np.testing.assert_array_equal(render(point, pose=pose),
                                  expected((range(37, 38), range(30, 31), RED)))


def small_scene(frames: int = 3, height: int = 12, width: int = 16) -> Scene:
    """Identity cameras over a textured wall at depth 4 and a red box at depth 2 that moves two
    columns per frame; row 0 is not kept."""
    rng = np.random.default_rng(0)
    wall = rng.integers(0, 200, (height, width, 3), dtype=np.uint8)
    images = np.repeat(wall[None], frames, axis=0)
    depths = np.full((frames, height, width), 4.0, np.float32)
    dynamic = np.zeros((frames, height, width), bool)
    for t in range(frames):
        dynamic[t, 4:8, 2 * t + 2:2 * t + 6] = True
    images[dynamic] = RED
    depths[dynamic] = 2.0
    masks = np.ones_like(dynamic)
    masks[:, 0] = False
    k = np.array([[20.0, 0, width / 2], [0, 20.0, height / 2], [0, 0, 1]])
    return Scene(images=images, depths=depths, confs=np.ones_like(depths),
                 intrinsics=np.repeat(k[None], frames, axis=0),
                 poses_c2w=np.repeat(np.eye(4)[None], frames, axis=0), masks=masks,
                 timestamps=np.arange(frames) * 0.2, dynamic_masks=dynamic)


def test_replay_from_the_recorded_cameras_shows_each_frame_as_filmed():
    """Static points of all frames plus the movers of frame t only: the wall behind the box's
    earlier places is filled from frames where it was visible; row 0 (not kept) stays empty."""
    scene = small_scene()
    height, width = scene.depths.shape[1:]
    frames = list(render_frames(scene, scene.poses_c2w, scene.intrinsics[0], (width, height),
                                point_size=1))
    for t, frame in enumerate(frames):
        truth = scene.images[t].copy()
        truth[0] = 0
        np.testing.assert_array_equal(frame, truth)


def test_static_cloud_and_moving_points():
    scene = small_scene()
    xyz, rgb = static_cloud(scene)
    kept_static = scene.masks & ~scene.dynamic_masks
    assert len(xyz) == kept_static.sum()
    np.testing.assert_array_equal(xyz[:, 2].numpy(), 4.0)  # the wall only, never the box
    few, _ = static_cloud(scene, budget=50)
    assert len(few) == 50
    moving, colours = moving_points(scene, 1)
    assert len(moving) == 16
    np.testing.assert_array_equal(colours.numpy(), np.tile(RED, (16, 1)))
    no_dynamics = Scene(**{**scene.__dict__, "dynamic_masks": None})
    assert len(moving_points(no_dynamics, 1)[0]) == 0
    assert len(static_cloud(no_dynamics)[0]) == scene.masks.sum()


def test_write_render_decodes_with_size_count_and_rate(tmp_path):
    scene = small_scene(frames=4, height=13, width=15)
    path = tmp_path / "render.mp4"
    write_render(scene, path, size=(33, 21))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert float(stream.average_rate) == pytest.approx(5.0)  # timestamps 0.2 s apart
    assert len(decoded) == 4
    assert decoded[0].shape == (22, 34, 3)  # odd sides padded to even for H.264
    assert decoded[0].max() > 100  # something was drawn


@pytest.mark.parametrize("options", [{"size": (0, 10)}, {"size": (5000, 4000)}, {"point_size": 0},
                                     {"fps": -1.0}])
def test_write_render_rejects_bad_options(tmp_path, options):
    with pytest.raises(OptionError):
        write_render(small_scene(), tmp_path / "render.mp4", **options)
    assert not (tmp_path / "render.mp4").exists()


def noisy_trajectory(count: int = 60, seed: int = 0):
    """(truth, noisy) camera-to-world poses: uniform motion and yaw, plus seeded jitter of
    0.02 (position, per axis) and 0.01 rad (rotation)."""
    rng = np.random.default_rng(seed)
    t = np.arange(count, dtype=float)
    truth = np.repeat(np.eye(4)[None], count, axis=0)
    truth[:, :3, 3] = np.stack([0.1 * t, 0 * t, 0.05 * t], -1)
    truth[:, :3, :3] = axis_angle(np.array([0.0, 1.0, 0.0]), 0.02 * t)
    noisy = truth.copy()
    noisy[:, :3, 3] += rng.normal(0, 0.02, (count, 3))
    jitter = axis_angle(rng.normal(size=(count, 3)), rng.normal(0, 0.01, count))
    noisy[:, :3, :3] = jitter @ truth[:, :3, :3]
    return truth, noisy


def test_local_linear_smoother_keeps_straight_lines_to_the_ends():
    line = 3.0 - 0.5 * np.arange(10)
    np.testing.assert_allclose(local_linear_weights(10, 3.0) @ line, line, atol=1e-9)
    np.testing.assert_allclose(local_linear_weights(1, 3.0), [[1.0]])


def test_smoothed_path_is_smooth_and_near_the_true_trajectory():
    truth, noisy = noisy_trajectory()
    smooth = smooth_poses(noisy)
    position_error = np.linalg.norm(smooth[:, :3, 3] - truth[:, :3, 3], axis=1)
    noise = np.linalg.norm(noisy[:, :3, 3] - truth[:, :3, 3], axis=1)
    assert position_error.mean() < 0.5 * noise.mean()
    accel = np.linalg.norm(np.diff(smooth[:, :3, 3], 2, axis=0), axis=1)
    assert accel.max() < 0.15 * np.linalg.norm(np.diff(noisy[:, :3, 3], 2, axis=0), axis=1).mean()
    angle_error = rotation_angle(np.swapaxes(smooth[:, :3, :3], 1, 2) @ truth[:, :3, :3])
    assert angle_error.max() < 0.01
    # angular velocity between frames stays near the true 0.02 rad per frame
    steps = rotation_angle(np.swapaxes(smooth[:-1, :3, :3], 1, 2) @ smooth[1:, :3, :3])
    assert np.abs(steps - 0.02).max() < 0.005


def test_virtual_camera_is_pulled_back_lifted_and_looks_ahead():
    poses = np.repeat(np.eye(4)[None], 5, axis=0)
    path = virtual_camera_path(poses, distance=2.0, pull_back=0.5, lift=0.25)
    # eye 1.0 behind (-z) and 0.5 above (-y, OpenCV y points down); it looks at (0, 0, 2)
    np.testing.assert_allclose(path[:, :3, 3], np.tile([0.0, -0.5, -1.0], (5, 1)), atol=1e-12)
    forward = np.array([0.0, 0.5, 3.0]) / np.hypot(0.5, 3.0)
    np.testing.assert_allclose(path[:, :3, 2], np.tile(forward, (5, 1)), atol=1e-12)
    np.testing.assert_allclose(path[:, :3, 0], np.tile([1.0, 0, 0], (5, 1)), atol=1e-12)
    np.testing.assert_allclose(np.abs(matrix_to_quat(path[:, :3, :3])[:, 3]),
                               np.cos(np.arctan2(0.5, 3.0) / 2), atol=1e-12)


def test_virtual_path_stays_near_the_recorded_trajectory():
    truth, noisy = noisy_trajectory()
    path = virtual_camera_path(noisy, distance=2.0)  # default pull back 0.3, lift 0.15
    offset = np.linalg.norm(path[:, :3, 3] - noisy[:, :3, 3], axis=1)
    assert offset.max() < np.hypot(0.3, 0.15) * 2.0 + 0.1  # + about 3 sigma of the jitter
    accel = np.linalg.norm(np.diff(path[:, :3, 3], 2, axis=0), axis=1)
    assert accel.max() < 0.01
