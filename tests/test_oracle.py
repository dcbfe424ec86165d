"""The oracle predictor: exact truth without corruption, corruption statistics, descriptors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recon4d.errors import InputError
from recon4d.geometry.transforms import invert_rigid
from recon4d.inference.engine import collate, infer_pairs
from recon4d.io.images import load_images
from recon4d.synthetic.oracle import OracleCorruption, OracleModel, blurred_edge_depth
from recon4d.synthetic.scene import generate_scene

W, H = 128, 96
EXACT = OracleCorruption.none()


@pytest.fixture(scope="module")
def scene():
    return generate_scene(frames=8, width=W, height=H, movers=2, seed=7, trajectory="orbit")


def run_pairs(oracle: OracleModel, pairs: list[tuple[int, int]]) -> tuple[dict, dict]:
    views = oracle.views()
    return oracle(collate([views[i] for i, _ in pairs], torch.device("cpu")),
                  collate([views[j] for _, j in pairs], torch.device("cpu")))


def gt_in_camera(scene, frame: int, camera: int) -> np.ndarray:
    """Ground-truth points of `frame` (at its own time) in the camera of frame `camera`."""
    w2c = invert_rigid(scene.poses_c2w[camera])
    return scene.world_points(frame) @ w2c[:3, :3].T + w2c[:3, 3]


def test_exact_oracle_matches_ground_truth(scene) -> None:
    pred1, pred2 = run_pairs(OracleModel(scene, EXACT), [(0, 3), (5, 2)])
    assert set(pred1) == {"pts3d", "conf"} and set(pred2) == {"pts3d_in_other_view", "conf"}
    for b, (i, j) in enumerate([(0, 3), (5, 2)]):
        pts = pred1["pts3d"][b].double().numpy()
        assert pred1["pts3d"].dtype == torch.float32
        uvw = pts @ scene.intrinsics[i].T
        u, v = np.meshgrid(np.arange(W), np.arange(H))
        np.testing.assert_allclose(uvw[..., 0] / uvw[..., 2], u, atol=1e-3)  # own pixels
        np.testing.assert_allclose(uvw[..., 1] / uvw[..., 2], v, atol=1e-3)
        np.testing.assert_allclose(pts[..., 2], scene.depth[i], rtol=1e-6)
        other = pred2["pts3d_in_other_view"][b].double().numpy()
        np.testing.assert_allclose(other, gt_in_camera(scene, j, i), atol=1e-5)
    assert (pred1["conf"] == 1 + EXACT.conf_peak).all() and (pred2["conf"] > 1).all()


def test_views_are_what_load_images_gives(scene, tmp_path) -> None:
    oracle = OracleModel(scene)
    views = oracle.views()
    reference = load_images(list(scene.rgb), size=W)
    assert len(views) == scene.num_frames
    for view, ref, rgb in zip(views, reference, scene.rgb, strict=True):
        torch.testing.assert_close(view["img"], ref["img"], rtol=0, atol=0)
        expected = (torch.from_numpy(rgb).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
        torch.testing.assert_close(view["img"][0], expected, rtol=0, atol=0)
        np.testing.assert_array_equal(view["true_shape"], [[H, W]])
        assert view["instance"] == str(view["idx"])
    with pytest.raises(InputError, match="render the scene at the model resolution"):
        oracle.views(size=512)


def test_runs_unchanged_in_the_pair_inference_engine(scene) -> None:
    oracle = OracleModel(scene, desc_dim=24, seed=1)
    edges = np.array([[0, 1], [1, 0], [2, 5], [5, 2], [3, 4]])
    result = infer_pairs(oracle, oracle.views(), edges, batch_size=2, progress=False)
    for e, (i, j) in enumerate(edges):
        side1, side2 = oracle.predict_pair(int(i), int(j))
        got = result[e]
        np.testing.assert_array_equal(got["pred1"]["pts3d"].numpy(), side1["pts3d"])
        np.testing.assert_array_equal(got["pred2"]["pts3d_in_other_view"].numpy(),
                                      side2["pts3d"])
        np.testing.assert_array_equal(got["pred2"]["desc"].numpy(), side2["desc"])


def test_deterministic_per_pair_whatever_the_batch(scene) -> None:
    oracle = OracleModel(scene, seed=3)
    a1, a2 = run_pairs(oracle, [(1, 2), (4, 6)])
    b1, b2 = run_pairs(oracle, [(4, 6)])
    torch.testing.assert_close(a1["pts3d"][1:], b1["pts3d"], rtol=0, atol=0)
    torch.testing.assert_close(a2["conf"][1:], b2["conf"], rtol=0, atol=0)
    c1, _ = run_pairs(OracleModel(scene, seed=4), [(4, 6)])
    assert not torch.equal(c1["pts3d"], b1["pts3d"])


def test_noise_grows_with_depth_at_the_requested_level(scene) -> None:
    oracle = OracleModel(scene, EXACT.but(noise_rel=0.02, noise_abs=0.01))
    side1, _ = oracle.predict_pair(2, 3)
    depth = scene.depth[2].astype(np.float64)
    residual = side1["pts3d"] - gt_in_camera(scene, 2, 2)
    normalised = residual / (0.01 + 0.02 * depth)[..., None]
    assert abs(normalised.mean()) < 0.02
    assert normalised.std() == pytest.approx(1.0, rel=0.03)
    near, far = depth < np.median(depth), depth >= np.median(depth)
    ratio = np.abs(residual[far]).mean() / np.abs(residual[near]).mean()
    expected = (0.01 + 0.02 * depth[far]).mean() / (0.01 + 0.02 * depth[near]).mean()
    assert ratio == pytest.approx(expected, rel=0.05)


def test_outliers_have_the_requested_fraction_and_low_confidence(scene) -> None:
    oracle = OracleModel(scene, EXACT.but(outlier_fraction=0.1))
    side1, side2 = oracle.predict_pair(1, 6)
    for side, frame in ((side1, 1), (side2, 6)):
        error = np.linalg.norm(side["pts3d"] - gt_in_camera(scene, frame, 1), axis=-1)
        rel = error / scene.depth[frame]
        bad = rel > 0.1
        assert bad.mean() == pytest.approx(0.1, abs=0.01)
        assert (side["conf"][bad] < 2).all() and (side["conf"][~bad] > 20).all()


def test_pair_scale_is_log_normal_and_shared_by_both_views(scene) -> None:
    oracle = OracleModel(scene, EXACT.but(scale_sigma=0.3))
    logs = []
    for i in range(scene.num_frames):
        for j in range(scene.num_frames):
            side1, side2 = oracle.predict_pair(i, j)
            scale = side1["pts3d"][0, 0, 2] / scene.depth[i, 0, 0]
            np.testing.assert_allclose(side1["pts3d"], scale * gt_in_camera(scene, i, i),
                                       rtol=1e-5, atol=1e-5 * scale)
            np.testing.assert_allclose(side2["pts3d"], scale * gt_in_camera(scene, j, i),
                                       rtol=1e-5, atol=1e-5 * scale)
            logs.append(np.log(scale))
    assert np.std(logs) == pytest.approx(0.3, rel=0.2)
    assert abs(np.mean(logs)) < 0.1


def test_dust3r_normalisation_gives_unit_mean_distance(scene) -> None:
    side1, side2 = OracleModel(scene, EXACT.but(normalize=True)).predict_pair(3, 5)
    dists = np.concatenate([np.linalg.norm(s["pts3d"], axis=-1).ravel() for s in (side1, side2)])
    assert dists.mean() == pytest.approx(1.0, rel=1e-5)


def test_edge_blur_moves_only_points_near_depth_edges(scene) -> None:
    side1, _ = OracleModel(scene, EXACT.but(edge_blur=1.5)).predict_pair(4, 5)
    depth = scene.depth[4].astype(np.float64)
    changed = np.abs(side1["pts3d"][..., 2] - depth) > 1e-4 * depth
    jump = np.zeros(depth.shape, dtype=bool)  # > 5 % steps between neighbouring pixels
    for axis in (0, 1):
        a, b = np.moveaxis(depth, axis, 0)[:-1], np.moveaxis(depth, axis, 0)[1:]
        step = np.abs(a - b) > 0.05 * np.minimum(a, b)
        np.moveaxis(jump, axis, 0)[:-1] |= step
        np.moveaxis(jump, axis, 0)[1:] |= step
    near = np.zeros_like(jump)
    for dy in range(-4, 5):
        for dx in range(-4, 5):
            near |= np.roll(np.roll(jump, dy, 0), dx, 1)
    assert jump.sum() > 100 and not changed[~near].any()
    assert changed[jump].mean() > 0.8
    # blurred points stay on their pixel's ray (flying pixels between the two surfaces)
    uvw = side1["pts3d"].astype(np.float64) @ scene.intrinsics[4].T
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    np.testing.assert_allclose(uvw[..., 0] / uvw[..., 2], u, atol=1e-3)
    np.testing.assert_allclose(uvw[..., 1] / uvw[..., 2], v, atol=1e-3)


def test_blurred_edge_depth_keeps_flat_regions_and_smooths_a_step() -> None:
    depth = np.full((20, 20), 2.0)
    depth[:, 10:] = 4.0
    out = blurred_edge_depth(depth, sigma=1.0, threshold=0.05)
    np.testing.assert_array_equal(out[:, :7], 2.0)
    np.testing.assert_array_equal(out[:, 13:], 4.0)
    assert 2.0 < out[0, 9] < 3.0 < out[0, 10] < 4.0


def test_dynamic_failure_places_view2_movers_at_view1_pose(scene) -> None:
    i, j = 0, 7
    _, exact = OracleModel(scene, EXACT).predict_pair(i, j)
    _, failed = OracleModel(scene, EXACT.but(dynamic_as_static=True)).predict_pair(i, j)
    static = scene.instance[j] == 0
    np.testing.assert_array_equal(failed["pts3d"][static], exact["pts3d"][static])
    # expected: each mover's body point placed with the mover's pose at frame i
    inst, body = scene.surface_coords(j)
    w2c = invert_rigid(scene.poses_c2w[i])
    moved_any = False
    for k in range(1, scene.object_poses.shape[1]):
        sel = inst == k
        if not sel.any():
            continue
        pose = w2c @ scene.object_poses[i, k]
        expected = body[sel] @ pose[:3, :3].T + pose[:3, 3]
        np.testing.assert_allclose(failed["pts3d"][sel], expected, atol=1e-5)
        moved_any |= np.abs(expected - exact["pts3d"][sel]).max() > 0.05
    assert moved_any
    # confident, yet inconsistent with view 2: they no longer reproject onto their pixels
    assert (failed["conf"] == exact["conf"]).all()
    to_j = invert_rigid(scene.poses_c2w[j]) @ scene.poses_c2w[i]
    cam_j = failed["pts3d"].astype(np.float64) @ to_j[:3, :3].T + to_j[:3, 3]
    uvw = cam_j @ scene.intrinsics[j].T
    u = np.meshgrid(np.arange(W), np.arange(H))[0]
    off = np.abs(uvw[..., 0] / uvw[..., 2] - u)
    assert off[static].max() < 1e-2 and np.median(off[~static]) > 1.0


def test_confidence_ranks_errors_under_default_corruption(scene) -> None:
    side1, _ = OracleModel(scene).predict_pair(2, 4)
    conf = side1["conf"].ravel()
    assert conf.min() >= 1.0
    truth = gt_in_camera(scene, 2, 2)
    scale = np.median(side1["pts3d"][..., 2] / truth[..., 2])  # the pair's unknown scale
    error = (np.linalg.norm(side1["pts3d"] / scale - truth, axis=-1) / scene.depth[2]).ravel()
    high, low = conf > np.quantile(conf, 0.75), conf < np.quantile(conf, 0.25)
    assert np.median(error[high]) < 0.5 * np.median(error[low])


def test_descriptors_follow_surface_identity() -> None:
    width, height = 256, 192  # descriptor periods are a few pixels at model resolution
    scene = generate_scene(frames=3, width=width, height=height, movers=2, seed=7)
    oracle = OracleModel(scene, EXACT.but(desc_noise=0.05), desc_dim=24)
    t = 1
    side1, side2 = oracle.predict_pair(t, t + 1)
    d1, d2 = side1["desc"], side2["desc"]
    np.testing.assert_allclose(np.linalg.norm(d1, axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(side1["desc_conf"], side1["conf"])
    target = np.stack(np.meshgrid(np.arange(width), np.arange(height)), -1) + scene.flow_fwd[t]
    ui = np.clip(np.rint(target[..., 0]).astype(int), 0, width - 1)
    vi = np.clip(np.rint(target[..., 1]).astype(int), 0, height - 1)
    valid = scene.flow_valid[t]
    same = (d1 * d2[vi, ui]).sum(-1)[valid]
    rng = np.random.default_rng(0)
    other = (d1[valid] * d2[vi, ui][valid][rng.permutation(valid.sum())]).sum(-1)
    assert np.median(same) > 0.9 and np.median(np.abs(other)) < 0.3
    # the nearest neighbour of a descriptor in the other frame is the flow correspondence
    queries = rng.choice(np.flatnonzero(valid), 400, replace=False)
    best = np.argmax(d1.reshape(-1, 24)[queries] @ d2.reshape(-1, 24).T, axis=1)
    found = np.stack([best % width, best // width], -1)
    error = np.abs(found - target.reshape(-1, 2)[queries]).max(-1)
    assert (error <= 1.5).mean() > 0.85 and (error <= 3).mean() > 0.95


def test_bad_views_raise_input_errors(scene) -> None:
    oracle = OracleModel(scene)
    views = oracle.views()
    bad = dict(views[0], idx=99)
    with pytest.raises(InputError, match="outside the scene"):
        oracle(bad, views[1])
    small = dict(views[0], img=views[0]["img"][..., :64])
    with pytest.raises(InputError, match="synthetic scene is"):
        oracle(small, views[1])


def test_pixels_without_surface_get_far_points_with_confidence_one(scene) -> None:
    depth = scene.depth.copy()
    depth[:, :20, :] = 0.0  # as if the top rows saw the sky
    open_scene = dataclasses.replace(scene, depth=depth)
    side1, side2 = OracleModel(open_scene, EXACT, desc_dim=24).predict_pair(2, 3)
    for side in (side1, side2):
        assert (side["conf"][:20] == 1).all() and (side["conf"][20:] > 1).all()
        np.testing.assert_allclose(np.linalg.norm(side["desc"], axis=-1), 1.0, rtol=1e-5)
    sky = side1["pts3d"][:20].astype(np.float64)
    assert (sky[..., 2] > depth[2].max()).all()
    uvw = sky @ scene.intrinsics[2].T  # still on the pixel's ray
    np.testing.assert_allclose(uvw[..., 0] / uvw[..., 2], np.arange(W)[None].repeat(20, 0),
                               atol=1e-3)


def test_descriptor_dimension_must_be_even(scene) -> None:
    with pytest.raises(ValueError, match="even"):
        OracleModel(scene, desc_dim=7)


def test_edge_blur_cached_per_frame_gives_the_same_predictions(scene, monkeypatch) -> None:
    """The per-frame cache of the edge blur changes no bit of any prediction: pairs predicted
    with it (cold and warm, in any order) equal those of the blur recomputed for every view."""
    pairs = [(0, 3), (3, 0), (5, 2), (2, 5), (0, 3)]
    cached = OracleModel(scene)
    with_cache = [cached.predict_pair(i, j) for i, j in pairs]
    assert sorted(cached._edge_factors) == [0, 2, 3, 5]
    c = cached.corruption

    def direct(self, i: int, depth: np.ndarray) -> np.ndarray:
        surface = depth > 0
        blurred = blurred_edge_depth(depth, c.edge_blur, c.edge_threshold)
        return np.where(surface, blurred / np.where(surface, depth, 1.0), 1.0)

    monkeypatch.setattr(OracleModel, "_edge_blur_factors", direct)
    uncached = OracleModel(scene)
    for (i, j), got in zip(pairs, with_cache, strict=True):
        want = uncached.predict_pair(i, j)
        for side_got, side_want in zip(got, want, strict=True):
            assert side_got.keys() == side_want.keys()
            for key in side_want:
                np.testing.assert_array_equal(side_got[key], side_want[key])
    assert any((direct(None, i, scene.depth[i].astype(np.float64)) != 1).any() for i in (0, 2))
