"""Global alignment on the synthetic oracle: accuracy of both solvers against ground truth,
known cameras, the two-image pair viewer, input forms, failure modes and cleaning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon4d.align import KnownCameras, global_align
from recon4d.align.api import scene_from_state
from recon4d.align.cleaning import contradicted_points
from recon4d.align.init_mst import mst_init
from recon4d.align.inputs import as_pair_data
from recon4d.align.known import resolve_known
from recon4d.align.objective import Objective
from recon4d.align.solver_adam import solve_adam
from recon4d.align.solver_fast import solve_fast
from recon4d.errors import InputError
from recon4d.eval import depth_metrics, pose_metrics
from recon4d.geometry.rotations import rotation_angle
from recon4d.inference import PairPredictions, ShapeGroup, infer_pairs, make_pairs
from recon4d.scene import Scene
from recon4d.synthetic import OracleModel, generate_scene

FRAMES, WIDTH, HEIGHT = 8, 64, 48


@pytest.fixture(scope="module")
def case():
    """A static oracle scene, its views and swin-2 predictions (default corruption)."""
    scene = generate_scene(FRAMES, WIDTH, HEIGHT, movers=0, seed=0)
    oracle = OracleModel(scene)
    views = oracle.views()
    preds = infer_pairs(oracle, views, make_pairs(FRAMES, "swin-2"), progress=False)
    return scene, oracle, views, preds


@pytest.fixture(scope="module")
def fast_scene(case):
    return global_align(case[3])


def path_length(poses: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1).sum())


def accuracy(est, gt) -> dict[str, float]:
    """ATE (% of path, Sim(3)), median focal error (%), depth Abs Rel (median scaling)."""
    ate = pose_metrics(est.poses_c2w, gt.poses_c2w, align="sim3")["ate"]
    focal = np.median(np.abs(est.intrinsics[:, 0, 0] / gt.intrinsics[:, 0, 0] - 1))
    return {"ate": 100 * ate / path_length(gt.poses_c2w), "focal": 100 * focal,
            "abs_rel": depth_metrics(est.depths, gt.depth, align="median")["abs_rel"]}


def meets_targets(acc: dict[str, float]) -> bool:
    return acc["ate"] <= 1.0 and acc["focal"] <= 2.0 and acc["abs_rel"] <= 0.03


def assert_valid(scene, n: int) -> None:
    """Shapes, dtypes, finiteness, rigid poses, positive depths and focals."""
    assert scene.images.shape == (n, HEIGHT, WIDTH, 3) and scene.images.dtype == np.uint8
    assert scene.depths.shape == (n, HEIGHT, WIDTH) and scene.depths.dtype == np.float32
    assert scene.poses_c2w.shape == (n, 4, 4) and scene.poses_c2w.dtype == np.float64
    assert scene.masks.dtype == bool and scene.confs.shape == scene.depths.shape
    for arr in (scene.depths, scene.confs, scene.intrinsics, scene.poses_c2w):
        assert np.isfinite(arr).all()
    rot = scene.poses_c2w[:, :3, :3]
    assert np.allclose(rot @ rot.transpose(0, 2, 1), np.eye(3), atol=1e-6)
    assert (scene.depths > 0).all() and (scene.intrinsics[:, 0, 0] > 0).all()


def test_fast_solver_meets_accuracy_targets(case, fast_scene):
    scene, _, views, _ = case
    assert_valid(fast_scene, FRAMES)
    assert meets_targets(accuracy(fast_scene, scene))
    # colours come from the predictions' images (the model inputs)
    assert np.array_equal(fast_scene.images, scene.rgb)


def _state_scene(state, images: np.ndarray) -> Scene:
    """A Scene from internal solver state, to score it like `global_align`'s output."""
    ones = np.ones(state.depths.shape)
    return scene_from_state(state, images, ones, ones.astype(bool))


def test_fast_solver_reaches_the_adam_reference_optimum(case):
    """Same objective as Adam-300 from the same start, and both at the accuracy targets."""
    scene, _, _, preds = case
    data = as_pair_data(preds)
    obj = Objective(data)
    free = torch.zeros(FRAMES, dtype=torch.bool)
    start = mst_init(data, resolve_known(None, FRAMES, HEIGHT, WIDTH), obj)
    adam, adam_history = solve_adam(obj, start.copy(), free, False, True)
    fast = start.copy()
    history = solve_fast(obj, fast, free, False, True)
    assert len(adam_history) == 300 and len(history) < 20
    assert all(b <= a * (1 + 1e-6) for a, b in zip(history, history[1:], strict=False))

    def loss(s):
        return float(obj.loss(s.world_points().reshape(FRAMES, -1, 3), s.pw_scale, s.pw_rot,
                              s.pw_trans))
    assert loss(adam) < 0.8 * loss(start)
    assert loss(fast) <= loss(adam) * (1 + 1e-4)
    for state in (adam, fast):
        assert meets_targets(accuracy(_state_scene(state, scene.rgb), scene))
    # the scale gauge holds: geometric mean of the pairwise scales 0.5, as in the reference
    assert float(fast.pw_scale_mean()) == pytest.approx(0.5, rel=1e-6)


def test_adam_solver_through_the_public_api(case):
    scene, _, _, preds = case
    few = global_align(preds, solver="adam", niter=40, schedule="linear")
    assert_valid(few, FRAMES)
    start = global_align(preds, solver="adam", niter=0)
    # 40 steps move the cameras, and the depth maps towards the truth
    assert not np.allclose(few.poses_c2w, start.poses_c2w)
    assert accuracy(few, scene)["abs_rel"] < accuracy(start, scene)["abs_rel"]


def test_known_intrinsics_fixed_are_kept(case):
    scene, _, _, preds = case
    out = global_align(preds, known=KnownCameras.from_intrinsics(scene.intrinsics))
    np.testing.assert_allclose(out.intrinsics, scene.intrinsics, rtol=1e-12)
    assert meets_targets(accuracy(out, scene))
    # one focal for every image, and a principal point off the centre, are kept as given
    off = KnownCameras(focals=50.0, pps=[30.0, 25.0])
    out = global_align(preds, known=off, niter=2)
    assert (out.intrinsics[:, 0, 0] == 50.0).all() and (out.intrinsics[:, 1, 1] == 50.0).all()
    assert (out.intrinsics[:, :2, 2] == [30.0, 25.0]).all()


def test_known_poses_fixed_give_metric_scale(case):
    scene, _, _, preds = case
    known = KnownCameras(focals=scene.intrinsics[:, 0, 0], poses_c2w=scene.poses_c2w)
    out = global_align(preds, known=known)
    np.testing.assert_array_equal(out.poses_c2w, scene.poses_c2w)
    # the solvers themselves keep fixed poses (global_align then restores them bit for bit)
    data = as_pair_data(preds)
    priors = resolve_known(known, FRAMES, HEIGHT, WIDTH)
    obj = Objective(data)
    fixed = priors.fixed_pose_mask.clone()
    fast = mst_init(data, priors, obj)
    solve_fast(obj, fast, fixed, True, False)
    adam, _ = solve_adam(obj, mst_init(data, priors, obj), fixed, True, False, niter=5)
    for state, tol in ((fast, 1e-9), (adam, 1e-6)):  # Adam keeps float32 quaternions
        np.testing.assert_allclose(state.rot.numpy(), scene.poses_c2w[:, :3, :3], atol=tol)
        np.testing.assert_allclose(state.trans.numpy(), scene.poses_c2w[:, :3, 3], atol=tol)
    # the known poses fix the metric scale (the gauge's 0.5 would be far off); the L1 objective
    # pulls depths slightly short of it (the Adam reference shrinks them ~17% on this input)
    assert abs(np.median(out.depths / scene.depth) - 1) < 0.05
    assert depth_metrics(out.depths, scene.depth, align="median")["abs_rel"] <= 0.03


def test_known_poses_as_initial_values_end_in_their_frame(case):
    scene, _, _, preds = case
    out = global_align(preds, known=KnownCameras(poses_c2w=scene.poses_c2w, fix=False))
    assert_valid(out, FRAMES)
    ate = pose_metrics(out.poses_c2w, scene.poses_c2w, align="none")["ate"]
    assert 100 * ate / path_length(scene.poses_c2w) <= 1.0
    assert depth_metrics(out.depths, scene.depth, align="none")["abs_rel"] <= 0.03


def test_known_cameras_are_checked(case):
    preds = case[3]
    with pytest.raises(InputError, match="known focals"):
        global_align(preds, known=KnownCameras(focals=[500.0, 400.0]))
    bad = np.tile(np.eye(4), (FRAMES, 1, 1))
    bad[2, :3, :3] *= 2
    with pytest.raises(InputError, match="image 2.*not a rotation"):
        global_align(preds, known=KnownCameras(poses_c2w=bad))


def test_pair_viewer_recovers_the_relative_pose(case):
    scene, oracle, views, _ = case
    a, b = 0, 4
    preds = infer_pairs(oracle, [views[a], views[b]], make_pairs(2, "complete"), progress=False)
    out = global_align(preds)
    assert_valid(out, 2)
    gt = np.linalg.inv(scene.poses_c2w[a]) @ scene.poses_c2w[b]
    est = np.linalg.inv(out.poses_c2w[0]) @ out.poses_c2w[1]
    assert np.degrees(rotation_angle(est[:3, :3].T @ gt[:3, :3])) < 1.0
    cos = est[:3, 3] @ gt[:3, 3] / np.linalg.norm(est[:3, 3]) / np.linalg.norm(gt[:3, 3])
    assert np.degrees(np.arccos(min(cos, 1.0))) < 3.0
    assert np.abs(out.intrinsics[:, 0, 0] / scene.intrinsics[[a, b], 0, 0] - 1).max() < 0.02
    # one scale for both depth maps: the pair's relative scale is right
    assert depth_metrics(out.depths, scene.depth[[a, b]], align="median")["abs_rel"] < 0.03


def _reference_dict(preds) -> dict:
    """The originals' inference output, stacked over edges, built field by field."""
    edges = preds.edges
    img = torch.from_numpy(np.asarray(preds.images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    shape = torch.tensor([[HEIGHT, WIDTH]] * len(edges))
    return {"view1": {"idx": edges[:, 0].tolist(), "true_shape": shape, "img": img[edges[:, 0]]},
            "view2": {"idx": edges[:, 1].tolist(), "true_shape": shape, "img": img[edges[:, 1]]},
            "pred1": {"pts3d": preds.pred1["pts3d"].clone(), "conf": preds.pred1["conf"].clone()},
            "pred2": {"pts3d_in_other_view": preds.pred2["pts3d_in_other_view"].clone(),
                      "conf": preds.pred2["conf"].clone()}}


def test_reference_dict_input_equals_pair_predictions(case):
    preds = case[3]
    ours = global_align(preds, niter=2)
    theirs = global_align(_reference_dict(preds), niter=2)
    np.testing.assert_array_equal(ours.images, theirs.images)
    np.testing.assert_allclose(ours.poses_c2w, theirs.poses_c2w, atol=1e-6)
    np.testing.assert_allclose(ours.depths, theirs.depths, rtol=1e-5)
    np.testing.assert_array_equal(ours.masks, theirs.masks)
    # numpy arrays (a dict saved and reloaded) give the same colours
    d = _reference_dict(preds)
    for view in ("view1", "view2"):
        d[view]["img"] = d[view]["img"].numpy()
    np.testing.assert_array_equal(global_align(d, niter=0).images, ours.images)


def test_single_image_is_refused(case):
    _, oracle, views, _ = case
    preds = infer_pairs(oracle, views[:1], np.array([[0, 0]]), progress=False)
    with pytest.raises(InputError, match="at least two images"):
        global_align(preds)


def test_two_identical_images_give_one_camera_twice(case):
    _, oracle, views, _ = case
    preds = infer_pairs(oracle, [views[3], views[3]], make_pairs(2, "complete"), progress=False)
    out = global_align(preds)
    assert_valid(out, 2)
    rel = np.linalg.inv(out.poses_c2w[0]) @ out.poses_c2w[1]
    assert np.degrees(rotation_angle(rel[:3, :3])) < 0.5
    assert np.linalg.norm(rel[:3, 3]) < 0.01 * np.median(out.depths)


def test_disconnected_pair_graph_names_the_groups(case):
    _, oracle, views, _ = case
    edges = [(0, 1), (1, 0), (1, 2), (2, 1), (3, 4), (4, 3), (4, 5), (5, 4)]
    preds = infer_pairs(oracle, views[:6], np.array(edges), progress=False)
    with pytest.raises(InputError, match=r"disconnected.*\[0, 1, 2\]; \[3, 4, 5\]"):
        global_align(preds)


def test_all_low_confidence_is_refused(case):
    d = _reference_dict(case[3])
    d["pred1"]["conf"] = torch.full_like(d["pred1"]["conf"], 1.5)
    d["pred2"]["conf"] = torch.full_like(d["pred2"]["conf"], 1.5)
    with pytest.raises(InputError, match="conf_threshold"):
        global_align(d)


def test_different_image_sizes_are_refused(case):
    d = _reference_dict(case[3])
    pts = list(d["pred1"]["pts3d"])
    pts[0] = pts[0][:-16]
    d["pred1"]["pts3d"] = pts
    with pytest.raises(InputError, match="different sizes"):
        global_align(d)
    # our PairPredictions with two shape groups (edges 0-1 at 64x48, the rest 64x32)
    preds = case[3]
    crop = {side: {k: v[2:, :32] for k, v in getattr(preds, side).items()}
            for side in ("pred1", "pred2")}
    shapes = np.array([[HEIGHT, WIDTH]] * 2 + [[32, WIDTH]] * (len(preds) - 2))
    mixed = PairPredictions(preds.edges, shapes, shapes, [
        ShapeGroup(np.arange(2), {k: v[:2] for k, v in preds.pred1.items()},
                   {k: v[:2] for k, v in preds.pred2.items()}),
        ShapeGroup(np.arange(2, len(preds)), crop["pred1"], crop["pred2"])])
    with pytest.raises(InputError, match=r"different sizes.*\(32, 64\), \(48, 64\)"):
        global_align(mixed)


def test_non_finite_predictions_and_bad_options_are_refused(case):
    d = _reference_dict(case[3])
    d["pred2"]["pts3d_in_other_view"][1, 2, 3, 0] = float("nan")
    with pytest.raises(InputError, match="pred2/pts3d_in_other_view contains NaN"):
        global_align(d)
    with pytest.raises(InputError, match="unknown solver"):
        global_align(case[3], solver="sgd")


def test_masks_are_the_confidence_threshold_without_cleaning(case):
    preds = case[3]
    out = global_align(preds, niter=2, clean=False, conf_threshold=10.0)
    # an image's confidence: the max over every prediction of it (view 1 or view 2 of a pair)
    conf1, conf2 = preds.pred1["conf"].numpy(), preds.pred2["conf"].numpy()
    expected = np.stack([np.max(np.concatenate([conf1[preds.edges[:, 0] == k],
                                                conf2[preds.edges[:, 1] == k]]), axis=0)
                         for k in range(FRAMES)])
    np.testing.assert_array_equal(out.confs, expected)
    np.testing.assert_array_equal(out.masks, expected > 10.0)
    assert 0 < out.masks.mean() < 1


def test_cleaning_removes_injected_contradicting_points(case):
    scene = case[0]
    t = torch.from_numpy
    depths = t(scene.depth.astype(np.float32))
    confs = torch.full_like(depths, 10.0)
    # a block of image 3 pulled halfway towards its camera, with low confidence: floaters
    injected = torch.zeros_like(depths, dtype=torch.bool)
    injected[3, 16:32, 20:40] = True
    depths[injected] *= 0.5
    confs[injected] = 2.0
    k, poses = t(scene.intrinsics), t(scene.poses_c2w)
    bad = contradicted_points(depths, k[:, 0, 0], k[:, :2, 2], poses[:, :3, :3], poses[:, :3, 3],
                              confs)
    assert bad[injected].float().mean() > 0.9
    assert bad[~injected].float().mean() < 0.01
