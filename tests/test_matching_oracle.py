"""Matching accuracy on a synthetic scene with the oracle predictor (descriptors = surface
identity + noise, default corruption), judged against ground-truth correspondences."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from recon4d.inference import infer_pairs
from recon4d.matching.pipeline import (
    MatchOptions,
    PairMatches,
    match_graph,
    match_predictions,
    prepare_images,
)
from recon4d.synthetic import OracleModel, SyntheticScene, generate_scene
from recon4d.synthetic.matches import correct_matches

WIDTH, HEIGHT, FRAMES = 256, 192, 10
TOLERANCE_PX = 2.0
MIN_PRECISION = 0.98


@pytest.fixture(scope="module")
def scene() -> SyntheticScene:
    return generate_scene(frames=FRAMES, width=WIDTH, height=HEIGHT, movers=2, seed=0)


@pytest.fixture(scope="module")
def oracle(scene) -> OracleModel:
    return OracleModel(scene, desc_dim=24)


def correct(scene: SyntheticScene, pm: PairMatches) -> np.ndarray:
    """Per match: visible in frame j and within TOLERANCE_PX of its true position there."""
    return correct_matches(scene, pm.i, pm.j, pm.xy1.numpy(), pm.xy2.numpy(), TOLERANCE_PX)


def test_matches_without_masks_are_correct(scene, oracle):
    images, results = match_graph(oracle, list(scene.rgb), graph="oneref-0", size=WIDTH,
                                  progress=False)
    assert [(pm.i, pm.j) for pm in results] == [(0, j) for j in range(1, FRAMES)]
    hits = [correct(scene, pm) for pm in results]
    assert all(len(h) >= 400 for h in hits), [len(h) for h in hits]
    assert np.concatenate(hits).mean() >= MIN_PRECISION
    assert min(h.mean() for h in hits) >= 0.95
    # the model input is the frame itself here: original coordinates equal model pixels
    np.testing.assert_allclose(results[0].xy1_orig, results[0].xy1.numpy())


@pytest.mark.parametrize("mode", ["search", "post"])
def test_matches_inside_object_masks_are_correct(scene, oracle, mode):
    masks = [scene.instance[k] > 0 for k in range(FRAMES)]  # the two moving boxes
    options = MatchOptions(mask_mode=mode)
    images, results = match_graph(oracle, list(scene.rgb), masks, "oneref-0", options,
                                  size=WIDTH, progress=False)
    for pm in results:
        assert masks[pm.i][pm.xy1[:, 1], pm.xy1[:, 0]].all()
        assert masks[pm.j][pm.xy2[:, 1], pm.xy2[:, 0]].all()
        assert len(pm) >= 40
    hits = np.concatenate([correct(scene, pm) for pm in results])
    assert hits.mean() >= MIN_PRECISION


def test_match_count_scales_with_mask_area(scene, oracle):
    i, j = 0, 5
    preds = infer_pairs(oracle, oracle.views(), np.array([[i, j], [j, i]]), progress=False)
    counts = {}
    for fraction in (1 / 8, 1 / 4, 1 / 2, 1):
        h, w = round(HEIGHT * fraction**0.5), round(WIDTH * fraction**0.5)
        mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
        mask[(HEIGHT - h) // 2:(HEIGHT - h) // 2 + h, (WIDTH - w) // 2:(WIDTH - w) // 2 + w] = True
        images = prepare_images(list(scene.rgb), [mask] + [None] * (FRAMES - 1), size=WIDTH)
        pm = match_predictions(preds, i, j, images, MatchOptions())
        assert mask[pm.xy1[:, 1], pm.xy1[:, 0]].all()
        assert correct(scene, pm).mean() >= MIN_PRECISION
        counts[fraction] = len(pm)
    per_area = np.array([counts[f] / f for f in counts])
    assert np.all(np.diff(list(counts.values())) > 0), counts
    assert per_area.min() >= 0.5 * per_area.max(), counts  # roughly proportional to the area


def test_relative_pose_and_points_match_ground_truth(scene, oracle):
    i, j = 0, 6
    static = [scene.instance[k] == 0 for k in range(FRAMES)]
    preds = infer_pairs(oracle, oracle.views(), np.array([[i, j], [j, i]]), progress=False)
    images = prepare_images(list(scene.rgb), static, size=WIDTH)
    pm = match_predictions(preds, i, j, images, MatchOptions())
    geo = pm.two_view
    true_rel = np.linalg.inv(scene.poses_c2w[i]) @ scene.poses_c2w[j]  # camera j in camera i
    angle = Rotation.from_matrix(geo.pose[:3, :3].numpy() @ true_rel[:3, :3].T).magnitude()
    assert np.degrees(angle) < 1.0
    t_est, t_true = geo.pose[:3, 3].numpy(), true_rel[:3, 3]
    cos = t_est @ t_true / (np.linalg.norm(t_est) * np.linalg.norm(t_true))
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))) < 3.0
    # matched 3D points: the true camera-i points up to the pair's unknown global scale
    cam_pts = scene.world_points(i)[pm.xy1[:, 1], pm.xy1[:, 0]]
    w2c = np.linalg.inv(scene.poses_c2w[i])
    truth = cam_pts @ w2c[:3, :3].T + w2c[:3, 3]
    est = geo.pts3d.double().numpy()
    scale = np.median(np.linalg.norm(est, axis=1) / np.linalg.norm(truth, axis=1))
    rel = np.linalg.norm(est / scale - truth, axis=1) / np.linalg.norm(truth, axis=1)
    assert np.median(rel) < 0.03
    assert geo.inliers.float().mean() > 0.8
