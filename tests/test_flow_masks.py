"""Flow motion masks: pair-local induced flow, normalisation, aggregation, synthetic accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from recon4d.dynamics.flow import flow_masks, frame_maps, normalise_errors
from recon4d.dynamics.flow_geometry import induced_flows
from recon4d.errors import InputError, OptionError
from recon4d.eval.masks import mask_metrics
from recon4d.geometry.flow import induced_flow
from recon4d.geometry.transforms import invert_rigid
from recon4d.inference.engine import infer_pairs
from recon4d.inference.graphs import make_pairs
from recon4d.synthetic.oracle import OracleCorruption, OracleModel
from recon4d.synthetic.scene import generate_scene

pytest.importorskip("cv2", reason="DIS flow needs opencv-python-headless (extra 'flow')")
W, H, FRAMES = 128, 96, 6


def predictions(scene, corruption=None, edges=None):
    """Oracle pair predictions over `edges` (default: swin-2-noncyclic, symmetrized)."""
    oracle = OracleModel(scene, corruption)
    edges = make_pairs(scene.num_frames, "swin-2-noncyclic") if edges is None else edges
    return infer_pairs(oracle, oracle.views(), edges, batch_size=8, progress=False)


def stacked(preds) -> tuple[np.ndarray, ...]:
    return (preds.edges, preds.pred1["pts3d"].numpy(),
            preds.pred2["pts3d_in_other_view"].numpy(), preds.pred1["conf"].numpy(),
            preds.pred2["conf"].numpy())


@pytest.fixture(scope="module")
def static_scene():
    return generate_scene(frames=FRAMES, width=W, height=H, movers=0, seed=3)


def test_pair_geometry_gives_the_true_induced_flow(static_scene) -> None:
    preds = predictions(static_scene, OracleCorruption.none())
    flows = induced_flows(*stacked(preds))
    scene = static_scene
    for e, (i, j) in enumerate(preds.edges):
        rel = invert_rigid(scene.poses_c2w[j]) @ scene.poses_c2w[i]
        truth = induced_flow(scene.depth[i].astype(np.float64), scene.intrinsics[i], rel,
                             scene.intrinsics[j])
        np.testing.assert_allclose(flows[e], truth, atol=0.05)


def test_static_scene_gives_an_all_static_mask(static_scene) -> None:
    preds = predictions(static_scene)  # default corruption
    for options in ({}, {"normalisation": "minmax", "reliable_only": False}):
        masks = flow_masks(preds, static_scene.rgb, **options)
        assert masks.masks.shape == (FRAMES, H, W) and masks.method == "flow:dis"
        assert masks.masks.mean() < 0.02, options  # measured: 1.0 % default, 0.2 % published


def test_one_sided_graphs_are_refused(static_scene) -> None:
    preds = predictions(static_scene, edges=make_pairs(FRAMES, "oneref-0", symmetrize=False))
    with pytest.raises(InputError, match=r"edge \(0, 1\) has no \(1, 0\)"):
        induced_flows(*stacked(preds))


def test_normalisations_by_hand() -> None:
    errors = np.array([[[0.0, 1.0, 2.0, np.nan], [4.0, 3.0, 2.0, 1.0]]], np.float32)
    minmax = normalise_errors(errors, "minmax")
    np.testing.assert_allclose(minmax[0, 0, :3], [0, 0.25, 0.5], atol=1e-5)
    assert np.isnan(minmax[0, 0, 3])
    robust = normalise_errors(errors, "robust")  # 98th percentile of 7 values = 3.88
    np.testing.assert_allclose(robust[0, 1], [1.0, 3 / 3.88, 2 / 3.88, 1 / 3.88], atol=1e-4)
    with pytest.raises(OptionError, match="normalisation"):
        normalise_errors(errors, "zscore")


def test_frame_maps_average_the_edges_leaving_a_frame() -> None:
    edges = np.array([[0, 1], [0, 2], [1, 0], [2, 0], [0, 0]])
    maps = np.array([[[0.2, np.nan]], [[0.6, 0.5]], [[1.0, 1.0]], [[0.0, 0.1]], [[1.0, 1.0]]])
    out = frame_maps(edges, maps, 3)
    np.testing.assert_allclose(out, [[[0.4, 0.5]], [[1.0, 1.0]], [[0.0, 0.1]]], atol=1e-6)
    with pytest.raises(InputError, match="frame 1 is in no pair"):
        frame_maps(edges[:1], maps[:1], 3)


@pytest.fixture(scope="module")
def dynamic_run():
    """A small dynamic scene (movers never pause) and its masks, default and published."""
    scene = generate_scene(frames=8, width=W, height=H, movers=2, seed=1, stops=False)
    preds = predictions(scene)
    published = flow_masks(preds, scene.rgb, normalisation="minmax", reliable_only=False)
    return scene, flow_masks(preds, scene.rgb), published


def test_defaults_beat_the_published_procedure(dynamic_run) -> None:
    scene, default, published = dynamic_run
    j_default = mask_metrics(default.masks, scene.dynamic_mask)["J_mean"]
    j_published = mask_metrics(published.masks, scene.dynamic_mask)["J_mean"]
    assert j_default > j_published + 0.1


@pytest.mark.xfail(strict=True, reason="issue 10 asks J >= 0.8; DIS flow masks reach a mean "
                   "J of 0.50 (pausing movers) to 0.68 (benchmarks/bench_flow_masks.py)")
def test_synthetic_masks_reach_the_issue_target(dynamic_run) -> None:
    scene, default, _ = dynamic_run
    assert mask_metrics(default.masks, scene.dynamic_mask)["J_mean"] >= 0.8
