"""Pose metrics: hand-computed cases, and agreement with the evo package to 1e-6."""

from __future__ import annotations

import numpy as np
import pytest
from evo.core import metrics as evo_metrics
from evo.core import sync as evo_sync
from evo.core.trajectory import PoseTrajectory3D
from evo.tools import file_interface
from scipy.spatial.transform import Rotation

from recon4d.errors import InputError
from recon4d.eval import pose_metrics
from recon4d.eval.poses import AlignmentError, Sim3, align_poses, fit_sim3, fit_sim3_to_poses
from recon4d.eval.trajectory import associate
from recon4d.io.tum import Trajectory, read_tum, write_tum
from tests.fixtures_eval import random_poses, write_tum_file


def poses_at(positions, rotvecs_deg=None) -> np.ndarray:
    """Poses with the given centres and rotations (rotation vectors in degrees)."""
    positions = np.asarray(positions, float)
    poses = np.tile(np.eye(4), (len(positions), 1, 1))
    poses[:, :3, 3] = positions
    if rotvecs_deg is not None:
        poses[:, :3, :3] = Rotation.from_rotvec(np.radians(rotvecs_deg)).as_matrix()
    return poses


# --- hand-computed values -------------------------------------------------------------------

def test_ate_without_alignment_is_the_offset():
    gt = poses_at([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    est = poses_at([[0, 0, 2], [1, 0, 2], [0, 1, 2], [0, 0, 3]])
    assert pose_metrics(est, gt, align="none")["ate"] == pytest.approx(2.0)
    # a pure translation is removed by SE(3) alignment
    assert pose_metrics(est, gt, align="se3")["ate"] == pytest.approx(0.0, abs=1e-12)


def test_rpe_hand_computed():
    # centres 0,1,3 on x (true 0,1,2); the third camera is turned 90 degrees about z
    gt = poses_at([[0, 0, 0], [1, 0, 0], [2, 0, 0]])
    est = poses_at([[0, 0, 0], [1, 0, 0], [3, 0, 0]], [[0, 0, 0], [0, 0, 0], [0, 0, 90]])
    m = pose_metrics(est, gt, align="none", delta=1)
    # pair (0,1): no error; pair (1,2): translation error 1, rotation error 90 degrees
    assert m["rpe_trans"] == pytest.approx(np.sqrt(1 / 2))
    assert m["rpe_rot"] == pytest.approx(np.sqrt(90 ** 2 / 2))
    assert m["num_pairs"] == 2
    m2 = pose_metrics(est, gt, align="none", delta=2)  # pair (0,2): |(3,0,0)-(2,0,0)| = 1
    assert (m2["rpe_trans"], m2["rpe_rot"], m2["num_pairs"]) == pytest.approx((1.0, 90.0, 1))


def test_sim3_alignment_removes_a_similarity_exactly():
    gt = random_poses(20, seed=1)
    sim_r = Rotation.from_euler("xyz", [30, -50, 10], degrees=True).as_matrix()
    est = gt.copy()
    est[:, :3, :3] = sim_r.T @ gt[:, :3, :3]
    est[:, :3, 3] = (gt[:, :3, 3] - [1.0, 2.0, -3.0]) @ sim_r / 2.5  # inverse of s R x + t
    m = pose_metrics(est, gt, align="sim3")
    assert m["ate"] < 1e-10 and m["rpe_trans"] < 1e-10 and m["rpe_rot"] < 1e-6
    assert m["scale"] == pytest.approx(2.5)
    transform = fit_sim3(est[:, :3, 3], gt[:, :3, 3])
    np.testing.assert_allclose(transform.rotation, sim_r, atol=1e-12)
    np.testing.assert_allclose(transform.translation, [1.0, 2.0, -3.0], atol=1e-12)
    # without scale the error is what remains of the factor 2.5
    assert pose_metrics(est, gt, align="se3")["ate"] > 0.1


def test_scale_only_alignment_scales_about_the_origin():
    gt = poses_at([[1, 0, 0], [0, 2, 0], [0, 0, 3], [1, 1, 1]])
    est = poses_at(gt[:, :3, 3] / 4)
    aligned, transform = align_poses(est, gt, "scale")
    assert transform.scale == pytest.approx(4.0)
    np.testing.assert_allclose(aligned, gt, atol=1e-12)


def test_degenerate_and_bad_inputs():
    line = poses_at([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]])
    with pytest.raises(AlignmentError, match="degenerate"):
        pose_metrics(line, line, align="sim3")
    with pytest.raises(AlignmentError, match="at least 3"):
        pose_metrics(line[:2], line[:2], align="se3")
    with pytest.raises(InputError, match="differ in length"):
        pose_metrics(line[:3], line, align="none")
    with pytest.raises(InputError, match="no frame pair"):
        pose_metrics(line, line, align="none", delta=4)
    with pytest.raises(InputError, match="alignment"):
        pose_metrics(line, line, align="affine")


# --- TUM files ----------------------------------------------------------------------------

def test_tum_round_trip_and_errors(tmp_path):
    poses = random_poses(7, seed=4)
    stamps = 1305031102.175 + np.arange(7) / 30
    write_tum(tmp_path / "t.txt", Trajectory(stamps, poses))
    back = read_tum(tmp_path / "t.txt")
    np.testing.assert_array_equal(back.timestamps, stamps)
    np.testing.assert_allclose(back.poses, poses, atol=1e-12)
    evo_traj = file_interface.read_tum_trajectory_file(str(tmp_path / "t.txt"))
    np.testing.assert_allclose(np.stack(evo_traj.poses_se3), poses, atol=1e-12)
    bad = tmp_path / "bad.txt"
    bad.write_text("# comment\n0 1 2 3 0 0 0 1\n1 2 3 0 0 1\n")
    with pytest.raises(InputError, match=r"bad.txt, line 3: expected 8 numbers"):
        read_tum(bad)
    with pytest.raises(InputError, match="missing.txt: file not found"):
        read_tum(tmp_path / "missing.txt")


def test_association_matches_evo():
    rng = np.random.default_rng(5)
    ref = np.sort(rng.uniform(0, 10, 300))
    est = np.sort(np.concatenate([ref[::3] + rng.uniform(-0.012, 0.012, 100),
                                  rng.uniform(0, 10, 20)]))
    for a, b in ((ref, est), (est, ref)):
        ia, ib = associate(a, b, 0.01)
        traj_a = PoseTrajectory3D(np.zeros((len(a), 3)), np.tile([1.0, 0, 0, 0], (len(a), 1)), a)
        traj_b = PoseTrajectory3D(np.zeros((len(b), 3)), np.tile([1.0, 0, 0, 0], (len(b), 1)), b)
        sa, sb = evo_sync.associate_trajectories(traj_a, traj_b, max_diff=0.01)
        np.testing.assert_array_equal(a[ia], sa.timestamps)
        np.testing.assert_array_equal(b[ib], sb.timestamps)
        assert 0 < len(ia) < min(len(a), len(b))


# --- agreement with evo ----------------------------------------------------------------------

def evo_reference(traj_ref, traj_est, align, delta, all_pairs):
    """evo's ATE / RPE RMSEs (translation part, rotation angle in degrees)."""
    traj_ref, traj_est = evo_sync.associate_trajectories(traj_ref, traj_est, max_diff=0.01)
    if align != "none":
        traj_est.align(traj_ref, correct_scale=align == "sim3", correct_only_scale=align == "scale")
    out = {}
    ape = evo_metrics.APE(evo_metrics.PoseRelation.translation_part)
    ape.process_data((traj_ref, traj_est))
    out["ate"] = ape.get_statistic(evo_metrics.StatisticsType.rmse)
    for key, rel in (("rpe_trans", evo_metrics.PoseRelation.translation_part),
                     ("rpe_rot", evo_metrics.PoseRelation.rotation_angle_deg)):
        rpe = evo_metrics.RPE(rel, delta=delta, delta_unit=evo_metrics.Unit.frames,
                              all_pairs=all_pairs)
        rpe.process_data((traj_ref, traj_est))
        out[key] = rpe.get_statistic(evo_metrics.StatisticsType.rmse)
    out["num_poses"] = traj_ref.num_poses
    return out


def noisy_estimate(gt: np.ndarray, seed: int) -> np.ndarray:
    """A rotated, shifted, scaled and perturbed copy of `gt`."""
    rng = np.random.default_rng(seed)
    est = gt.copy()
    rot = Rotation.from_rotvec(rng.normal(0, 1, 3)).as_matrix()
    noise = Rotation.from_rotvec(rng.normal(0, 0.05, (len(gt), 3))).as_matrix()
    est[:, :3, :3] = rot @ gt[:, :3, :3] @ noise
    est[:, :3, 3] = 0.4 * gt[:, :3, 3] @ rot.T + rng.normal(0, 0.05, (len(gt), 3)) + [3, -1, 2]
    return est


@pytest.mark.parametrize("align", ["sim3", "se3", "scale", "none"])
def test_tum_files_agree_with_evo(tmp_path, align):
    rng = np.random.default_rng(11)
    gt_stamps = 1305031102.0 + np.arange(120) / 30
    gt = random_poses(120, seed=6)
    keep = np.sort(rng.choice(120, 90, replace=False))  # the estimate misses some frames
    est_stamps = gt_stamps[keep] + rng.uniform(-0.009, 0.009, len(keep))
    gt_file = write_tum_file(tmp_path / "groundtruth.txt", gt_stamps, gt)
    est_file = write_tum_file(tmp_path / "est.txt", est_stamps, noisy_estimate(gt[keep], 7))
    for delta, all_pairs in ((1, True), (3, True), (3, False), (10, False)):
        ours = pose_metrics(est_file, gt_file, align=align, delta=delta, all_pairs=all_pairs)
        ref = evo_reference(file_interface.read_tum_trajectory_file(str(gt_file)),
                            file_interface.read_tum_trajectory_file(str(est_file)),
                            align, delta, all_pairs)
        for key in ("ate", "rpe_trans", "rpe_rot"):
            assert ours[key] == pytest.approx(ref[key], abs=1e-6, rel=1e-9), (key, delta)
        assert ours["num_poses"] == ref["num_poses"] == 90


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_trajectories_agree_with_evo(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    gt = random_poses(n, seed=100 + seed, step=float(rng.uniform(0.01, 2)))
    est = random_poses(n, seed=200 + seed)  # unrelated: large errors
    stamps = np.arange(n, dtype=float)

    def evo_traj(poses):
        quat = Rotation.from_matrix(poses[:, :3, :3]).as_quat()[:, [3, 0, 1, 2]]
        return PoseTrajectory3D(poses[:, :3, 3], quat, stamps)

    for align in ("sim3", "se3", "scale"):
        delta = int(rng.integers(1, n // 2 + 1))
        for all_pairs in (True, False):
            ours = pose_metrics(est, gt, align=align, delta=delta, all_pairs=all_pairs)
            ref = evo_reference(evo_traj(gt), evo_traj(est), align, delta, all_pairs)
            for key in ("ate", "rpe_trans", "rpe_rot"):
                assert ours[key] == pytest.approx(ref[key], abs=1e-6, rel=1e-9), key


def _arc_poses(n: int, radius: float, sweep_deg: float) -> np.ndarray:
    """Cameras on a short arc of a circle in the xy plane, each looking at its centre."""
    poses = np.tile(np.eye(4), (n, 1, 1))
    for k, angle in enumerate(np.radians(np.linspace(0.0, sweep_deg, n))):
        centre = radius * np.array([np.cos(angle), np.sin(angle), 0.0])
        forward = -centre / radius
        down = np.array([0.0, 0.0, -1.0])
        right = np.cross(down, forward)
        poses[k, :3, :3] = np.stack([right, down, forward], axis=1)
        poses[k, :3, 3] = centre
    return poses


def test_cloud_alignment_uses_orientations_where_centres_leave_a_rotation_free():
    truth = _arc_poses(4, 5.0, 6.0)  # nearly collinear centres
    rotation = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    known = Sim3(rotation, np.array([0.3, -1.0, 2.0]), 0.5)
    est = Sim3(rotation.T, -rotation.T @ known.translation / known.scale,
               1 / known.scale).apply_poses(truth)  # truth seen through the inverse of `known`
    exact = fit_sim3_to_poses(est, truth)
    np.testing.assert_allclose(exact.rotation, rotation, atol=1e-9)
    np.testing.assert_allclose(exact.scale, 0.5, rtol=1e-9)
    np.testing.assert_allclose(exact.apply_poses(est), truth, atol=1e-9)
    noisy = est.copy()
    noisy[:, :3, 3] += np.random.default_rng(0).normal(scale=2e-3, size=(4, 3))

    def angle(fit: Sim3) -> float:
        cos = (np.trace(fit.rotation.T @ rotation) - 1) / 2
        return float(np.degrees(np.arccos(np.clip(cos, -1, 1))))

    assert angle(fit_sim3_to_poses(noisy, truth)) < 0.5
    assert angle(fit_sim3(noisy[:, :3, 3], truth[:, :3, 3])) > 2.0  # the ATE protocol's fit


def test_cloud_alignment_needs_two_poses():
    with pytest.raises(AlignmentError, match="at least 2 poses"):
        fit_sim3_to_poses(np.eye(4)[None], np.eye(4)[None])
