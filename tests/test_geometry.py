"""recon4d.geometry against hand-computed values, round trips, scipy and evo, numpy and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from evo.core.geometry import umeyama_alignment
from scipy.spatial.transform import Rotation

from recon4d.geometry.cameras import (
    camera_rays,
    depth_to_world,
    intrinsics_matrix,
    look_at,
    pixel_grid,
    project,
    unproject_depth,
)
from recon4d.geometry.flow import induced_flow
from recon4d.geometry.quaternions import matrix_to_quat, quat_to_matrix
from recon4d.geometry.rotations import axis_angle, rotation_angle, skew, so3_exp
from recon4d.geometry.transforms import apply_similarity, apply_transform, invert_rigid, make_rigid
from recon4d.geometry.umeyama import umeyama
from recon4d.synthetic.flow import forward_flow
from recon4d.synthetic.scene import generate_scene

K = np.array([[50.0, 0.0, 20.5], [0.0, 60.0, 15.25], [0.0, 0.0, 1.0]])


def as_kind(kind: str, value):
    """`value` as a float64 numpy array or torch tensor."""
    return np.asarray(value, np.float64) if kind == "numpy" else torch.tensor(value)


def to_numpy(value) -> np.ndarray:
    return value.numpy() if isinstance(value, torch.Tensor) else value


def random_rotations(count: int, seed: int) -> np.ndarray:
    return Rotation.random(count, random_state=seed).as_matrix()


KINDS = ["numpy", "torch"]


# --- quaternions and rotations --------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_quaternions_match_scipy_including_half_turns(kind):
    rot = Rotation.concatenate([Rotation.random(300, random_state=3),
                                Rotation.from_rotvec(np.pi * np.eye(3))])  # unstable branches
    quat = rot.as_quat()  # scipy: x, y, z, w
    quat *= np.sign(quat[:, 3:])
    out = matrix_to_quat(as_kind(kind, rot.as_matrix()))
    assert isinstance(out, torch.Tensor) == (kind == "torch")
    np.testing.assert_allclose(to_numpy(out), quat, atol=1e-12)
    back = quat_to_matrix(as_kind(kind, 3.0 * quat))  # normalised on the way in
    np.testing.assert_allclose(to_numpy(back), rot.as_matrix(), atol=1e-12)


def test_quaternion_hand_computed():
    # 90 degrees about z: q = (0, 0, sin 45, cos 45); it maps x to y
    quat = np.array([0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5)])
    rot = quat_to_matrix(quat)
    np.testing.assert_allclose(rot @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(matrix_to_quat(rot), quat, atol=1e-15)
    # the other sign of the same rotation comes back with w >= 0
    np.testing.assert_allclose(matrix_to_quat(quat_to_matrix(-quat)), quat, atol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
def test_so3_exp_and_rotation_angle_match_scipy(kind):
    rng = np.random.default_rng(0)
    rotvecs = np.concatenate([rng.normal(size=(20, 3)), 1e-9 * rng.normal(size=(3, 3)),
                              np.zeros((1, 3))])
    rot = so3_exp(as_kind(kind, rotvecs))
    np.testing.assert_allclose(to_numpy(rot), Rotation.from_rotvec(rotvecs).as_matrix(),
                               atol=1e-14)
    angles = np.array([0.0, 1e-9, 1e-4, 1.0, np.pi / 2, np.pi - 1e-7, np.pi])
    rots = Rotation.from_rotvec(angles[:, None] * np.array([[0.6, 0.0, 0.8]])).as_matrix()
    np.testing.assert_allclose(to_numpy(rotation_angle(as_kind(kind, rots))), angles,
                               rtol=1e-7, atol=1e-15)


def test_axis_angle_and_skew_hand_computed():
    rot = axis_angle(np.array([0.0, 0.0, 2.0]), np.array([np.pi / 2, np.pi]))  # axis normalised
    np.testing.assert_allclose(rot[0] @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(rot[1], np.diag([-1.0, -1.0, 1.0]), atol=1e-15)
    v, w = np.array([1.0, 2.0, 3.0]), np.array([-4.0, 0.5, 2.0])
    np.testing.assert_allclose(skew(v) @ w, np.cross(v, w))


# --- rigid and similarity transforms --------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_rigid_inverse_round_trip(kind):
    rots = random_rotations(10, seed=1)
    trans = np.random.default_rng(1).normal(size=(10, 3))
    poses = make_rigid(as_kind(kind, rots), as_kind(kind, trans))
    assert tuple(poses.shape) == (10, 4, 4)
    np.testing.assert_array_equal(to_numpy(poses)[:, 3], np.tile([0.0, 0.0, 0.0, 1.0], (10, 1)))
    np.testing.assert_allclose(to_numpy(invert_rigid(poses) @ poses), np.tile(np.eye(4),
                                                                             (10, 1, 1)),
                               atol=1e-14)
    np.testing.assert_allclose(to_numpy(invert_rigid(poses)), np.linalg.inv(to_numpy(poses)),
                               atol=1e-12)


def test_apply_transform_hand_computed_and_batch_rule():
    pose = make_rigid(axis_angle([0.0, 0.0, 1.0], np.pi / 2), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(apply_transform(pose, np.array([1.0, 0.0, 0.0])), [1, 3, 3],
                               atol=1e-15)
    # (B, 4, 4) transforms act on (B, H, W, 3) points, one transform per leading index
    rots, trans = random_rotations(2, seed=2), np.array([[0.0, 0.0, 1.0], [5.0, 0.0, 0.0]])
    points = np.random.default_rng(2).normal(size=(2, 4, 5, 3))
    out = apply_similarity(rots, trans, points, scale=np.array([2.0, 0.5]))
    for b, s in enumerate((2.0, 0.5)):
        np.testing.assert_allclose(out[b], s * points[b] @ rots[b].T + trans[b], atol=1e-14)


def test_apply_similarity_keeps_the_points_dtype_for_tensors():
    points = torch.randn(3, 7, 3)
    out = apply_transform(torch.eye(4, dtype=torch.float64).expand(3, 4, 4), points)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, points)


# --- Umeyama -------------------------------------------------------------------------------

def noisy_similarity(seed: int, count: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(count, 3))
    rot = random_rotations(1, seed)[0]
    dst = 1.7 * src @ rot.T + [0.3, -1.0, 2.0] + 0.05 * rng.normal(size=(count, 3))
    return src, dst


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("with_scale", [True, False])
def test_umeyama_matches_evo(kind, with_scale):
    src, dst = noisy_similarity(4)
    ref_rot, ref_trans, ref_scale = umeyama_alignment(src.T, dst.T, with_scale)
    scale, rot, trans = umeyama(as_kind(kind, src), as_kind(kind, dst), with_scale=with_scale)
    assert float(scale) == pytest.approx(ref_scale, rel=1e-12)
    np.testing.assert_allclose(to_numpy(rot), ref_rot, atol=1e-12)
    np.testing.assert_allclose(to_numpy(trans), ref_trans, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_weighted_umeyama_equals_repeated_points(kind):
    """Integer weights are the same as repeating each correspondence that many times (evo)."""
    src, dst = noisy_similarity(5, count=12)
    counts = np.array([1, 3, 2, 1, 4, 1, 2, 5, 1, 1, 3, 2])
    ref_rot, ref_trans, ref_scale = umeyama_alignment(np.repeat(src, counts, 0).T,
                                                      np.repeat(dst, counts, 0).T, True)
    scale, rot, trans = umeyama(as_kind(kind, src), as_kind(kind, dst), as_kind(kind, counts))
    assert float(scale) == pytest.approx(ref_scale, rel=1e-12)
    np.testing.assert_allclose(to_numpy(rot), ref_rot, atol=1e-12)
    np.testing.assert_allclose(to_numpy(trans), ref_trans, atol=1e-12)


def test_umeyama_batched_moments_and_degenerate_input():
    pairs = [noisy_similarity(seed) for seed in (6, 7)]
    src = torch.tensor(np.stack([p[0] for p in pairs])).float()  # float32 in, float64 out
    dst = torch.tensor(np.stack([p[1] for p in pairs])).float()
    scale, rot, trans = umeyama(src, dst)
    assert scale.dtype == torch.float64 and tuple(rot.shape) == (2, 3, 3)
    for b in range(2):
        single = umeyama(src[b], dst[b])
        torch.testing.assert_close(rot[b], single[1])
    # a mirror image still gives a proper rotation
    _, mirror, _ = umeyama(src[0].double(), src[0].double() * torch.tensor([1.0, 1.0, -1.0],
                                                                          dtype=torch.float64))
    assert torch.linalg.det(mirror).item() == pytest.approx(1.0)
    # no weight, or all sources at one point: identity and scale 1, never NaN
    scale, rot, trans = umeyama(np.ones((4, 3)), np.zeros((4, 3)))
    assert scale == 1.0 and np.array_equal(rot, np.eye(3))
    np.testing.assert_array_equal(trans, [-1.0, -1.0, -1.0])
    scale, rot, _ = umeyama(src[0], dst[0], torch.zeros(len(src[0])))
    assert float(scale) == 1.0 and torch.equal(rot, torch.eye(3, dtype=torch.float64))


# --- cameras --------------------------------------------------------------------------------

def test_pixel_grid_puts_centres_at_integers():
    grid = pixel_grid(2, 3)
    np.testing.assert_array_equal(grid[..., 0], [[0, 1, 2], [0, 1, 2]])  # u = column
    np.testing.assert_array_equal(grid[..., 1], [[0, 0, 0], [1, 1, 1]])  # v = row
    like = torch.zeros(1, dtype=torch.float32)
    assert pixel_grid(2, 3, like=like).dtype == torch.float32


def test_back_projection_hand_computed():
    k = np.array([[2.0, 0, 1], [0, 2.0, 1], [0, 0, 1]])
    c2w = make_rigid(np.eye(3), [10.0, 0.0, 0.0])
    depth = np.array([[4.0, 0.0], [0.0, 2.0]])
    world = depth_to_world(depth, k, c2w)
    # pixel (u=0, v=0), z=4: x = y = (0 - 1) * 4 / 2 = -2; pixel (1, 1), z=2: x = y = 0
    np.testing.assert_allclose(world[0, 0], [8.0, -2.0, 4.0])
    np.testing.assert_allclose(world[1, 1], [10.0, 0.0, 2.0])
    np.testing.assert_allclose(world[0, 1], [10.0, 0.0, 0.0])  # depth 0: the camera centre
    # skew: x = (u - cx - s y) / fx
    rays = camera_rays(np.array([[2.0, 0.5, 1], [0, 4.0, 1], [0, 0, 1]]), 3, 2)
    np.testing.assert_allclose(rays[2, 0], [(0 - 1 - 0.5 * 0.25) / 2, 0.25, 1.0])


@pytest.mark.parametrize("kind", KINDS)
def test_project_inverts_unproject(kind):
    depth = 1.0 + np.random.default_rng(3).random((2, 5, 7))
    ks = np.stack([K, intrinsics_matrix(np.array([40.0, 45.0]), np.array([3.0, 2.0]))])
    points = unproject_depth(as_kind(kind, depth), as_kind(kind, ks))
    assert tuple(points.shape) == (2, 5, 7, 3)
    uv, z = project(points, as_kind(kind, ks))
    np.testing.assert_allclose(to_numpy(uv), np.broadcast_to(pixel_grid(5, 7), (2, 5, 7, 2)),
                               atol=1e-12)
    np.testing.assert_allclose(to_numpy(z), depth, atol=1e-15)


def test_intrinsics_matrix_and_look_at():
    np.testing.assert_array_equal(intrinsics_matrix(np.array([3.0, 4.0]), np.array([1.0, 2.0])),
                                  [[3, 0, 1], [0, 4, 2], [0, 0, 1]])
    batch = intrinsics_matrix(torch.tensor([3.0, 5.0]), torch.tensor([[1.0, 2.0], [0.5, 0.5]]))
    torch.testing.assert_close(batch[1], torch.tensor([[5.0, 0, 0.5], [0, 5.0, 0.5], [0, 0, 1]]))
    pose = look_at([0.0, 0.0, 1.0], [5.0, 0.0, 1.0])  # along +x, world z up
    np.testing.assert_allclose(pose[:3, :3], [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-15)


# --- induced flow ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_induced_flow_hand_computed(kind):
    """Camera j one unit to the right of camera i: every pixel moves by -fx * 1 / depth."""
    depth = np.full((3, 4), 5.0)
    depth[0, 0] = 0.0  # no surface
    relative = invert_rigid(make_rigid(np.eye(3), [1.0, 0.0, 0.0]))  # inv(pose_j) @ pose_i
    flow = to_numpy(induced_flow(as_kind(kind, depth), as_kind(kind, K), as_kind(kind, relative)))
    assert np.isnan(flow[0, 0]).all()
    np.testing.assert_allclose(flow[1:, :, 0], -K[0, 0] / 5.0)
    np.testing.assert_allclose(flow[1:, :, 1], 0.0, atol=1e-12)
    behind = invert_rigid(make_rigid(np.eye(3), [0.0, 0.0, 6.0]))  # j is beyond the surface
    assert np.isnan(to_numpy(induced_flow(as_kind(kind, depth), as_kind(kind, K),
                                          as_kind(kind, behind)))).all()


def test_induced_flow_equals_the_true_flow_of_a_static_scene():
    scene = generate_scene(frames=3, width=48, height=36, movers=0, seed=2, trajectory="orbit")
    for i, j in ((0, 1), (0, 2), (2, 1)):
        relative = invert_rigid(scene.poses_c2w[j]) @ scene.poses_c2w[i]
        flow = induced_flow(scene.depth[i], scene.intrinsics[i], relative, scene.intrinsics[j])
        truth, _, _ = forward_flow(scene.depth[i], scene.instance[i], scene.depth[j],
                                   scene.intrinsics[i], scene.intrinsics[j], scene.poses_c2w[i],
                                   scene.poses_c2w[j], scene.object_poses[i],
                                   scene.object_poses[j])
        defined = np.isfinite(flow).all(-1)
        assert defined.mean() > 0.9 and np.abs(flow[defined]).max() > 0.5  # the camera moved
        np.testing.assert_allclose(flow[defined], truth[defined], atol=1e-3)  # truth is float32
        np.testing.assert_array_equal(truth[~defined], 0.0)
