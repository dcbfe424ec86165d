"""Flow motion masks: pair-local induced flow, normalisation, aggregation, synthetic accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from recon4d.dynamics.flow import flow_masks, frame_maps, normalise_errors, smooth_maps
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
PUBLISHED = {"normalisation": "minmax", "reliable_only": False, "seed_dis": False,
             "dis_preset": "medium", "smoothing": 0.0}


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
    for options in ({}, PUBLISHED):
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
    noise = normalise_errors(errors, "noise")  # median of 7 values = 2: divided by 12 * 2
    np.testing.assert_allclose(noise[0, 1], [4 / 24, 3 / 24, 2 / 24, 1 / 24], atol=1e-5)
    clipped = normalise_errors(np.array([[[0.0, 0.0, 0.0, 0.3, 9.0]]], np.float32), "noise")
    np.testing.assert_allclose(clipped[0, 0], [0, 0, 0, 0.5, 1], atol=1e-5)  # median 0: 12 * 0.05
    with pytest.raises(OptionError, match="normalisation"):
        normalise_errors(errors, "zscore")


def test_frame_maps_average_the_edges_leaving_a_frame() -> None:
    edges = np.array([[0, 1], [0, 2], [1, 0], [2, 0], [0, 0]])
    maps = np.array([[[0.2, np.nan]], [[0.6, 0.5]], [[1.0, 1.0]], [[0.0, 0.1]], [[1.0, 1.0]]])
    out = frame_maps(edges, maps, 3)
    np.testing.assert_allclose(out, [[[0.4, 0.5]], [[1.0, 1.0]], [[0.0, 0.1]]], atol=1e-6)
    with pytest.raises(InputError, match="frame 1 is in no pair"):
        frame_maps(edges[:1], maps[:1], 3)


def test_smoothing_is_a_normalised_gaussian() -> None:
    impulse = np.zeros((2, 15, 15), np.float32)
    impulse[0, 7, 7] = 1.0
    out = smooth_maps(impulse, 1.0)
    # 1-D weights exp(-x^2 / 2) for x = -3..3 sum to 2.50595: centre (1 / 2.50595)^2
    assert out[0, 7, 7] == pytest.approx(0.159241, abs=1e-5)
    assert out[0, 7, 8] == pytest.approx(np.exp(-0.5) * 0.159241, abs=1e-5)
    assert out[0].sum() == pytest.approx(1.0, abs=1e-5) and not out[1].any()
    ramp = np.broadcast_to(np.linspace(0, 1, 15, dtype=np.float32), (1, 15, 15))
    np.testing.assert_allclose(smooth_maps(ramp, 1.0)[0, :, 4:-4], ramp[0, :, 4:-4], atol=1e-6)
    assert smooth_maps(impulse, 0.0) is impulse


@pytest.fixture(scope="module")
def dynamic_run():
    """A small dynamic scene (movers never pause) and its masks, default and published."""
    scene = generate_scene(frames=8, width=W, height=H, movers=2, seed=1, stops=False)
    preds = predictions(scene)
    published = flow_masks(preds, scene.rgb, **PUBLISHED)
    return scene, flow_masks(preds, scene.rgb), published


def test_defaults_beat_the_published_procedure(dynamic_run) -> None:
    """At 128x96 the movers shift 0.7 px per frame and J stays below the issue's 0.8 (a mean
    of 0.80 at 512x384, benchmarks/bench_flow_masks.py); the defaults still lead by far."""
    scene, default, published = dynamic_run
    j_default = mask_metrics(default.masks, scene.dynamic_mask)["J_mean"]
    j_published = mask_metrics(published.masks, scene.dynamic_mask)["J_mean"]
    assert j_default > 0.45 and j_default > j_published + 0.25  # measured: 0.50 and 0.13
