"""The MASt3R-SLAM pair sources: the oracle against the scene's ground truth, and the network
source (tiny random-weight MASt3R checkpoint: structure only) against the network's own forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon4d.errors import InputError
from recon4d.geometry.transforms import apply_transform, invert_rigid
from recon4d.io.images import load_images
from recon4d.models import load_model
from recon4d.slam.mast3r_network import NetworkPairSource
from recon4d.synthetic.mast3r_slam_oracle import Mast3rSlamOracle, period_stretch
from recon4d.synthetic.oracle import OracleCorruption
from recon4d.synthetic.scene import SyntheticScene, generate_scene
from tests.conftest import GOLDEN_DIR
from tests.fixtures_mast3r_slam import true_matches

pytestmark = pytest.mark.usefixtures("one_torch_thread")

W, H = 64, 48


@pytest.fixture(scope="module")
def scene() -> SyntheticScene:
    return generate_scene(frames=4, width=W, height=H, movers=1, seed=0)


def test_decode_gives_both_views_in_the_frame_camera(scene):
    oracle = Mast3rSlamOracle(scene, OracleCorruption.none())
    views = oracle.views()
    frame, keyframe = oracle.encode(views[3]), oracle.encode(views[0])
    assert (frame, keyframe) == (3, 0)
    pred_f, pred_k = oracle.decode(frame, keyframe)
    assert set(pred_f) == set(pred_k) == {"pts3d", "conf", "desc", "desc_conf"}
    assert pred_f["pts3d"].shape == (H, W, 3) and pred_f["desc"].shape == (H, W, 24)
    assert pred_k["conf"].shape == pred_k["desc_conf"].shape == (H, W)
    assert all(v.dtype == torch.float32 for v in (*pred_f.values(), *pred_k.values()))
    to_frame = invert_rigid(scene.poses_c2w[3])
    surface_f, surface_k = scene.depth[3] > 0, scene.depth[0] > 0
    np.testing.assert_allclose(pred_f["pts3d"].numpy()[surface_f],
                               apply_transform(to_frame, scene.world_points(3))[surface_f],
                               atol=1e-4)
    # exact corruption keeps movers where they are at the keyframe's time
    np.testing.assert_allclose(pred_k["pts3d"].numpy()[surface_k],
                               apply_transform(to_frame, scene.world_points(0))[surface_k],
                               atol=1e-4)


def test_depth_stretch_stretches_both_views_along_the_optical_axis(scene):
    exact = Mast3rSlamOracle(scene, OracleCorruption.none())
    stretched = Mast3rSlamOracle(scene, OracleCorruption.none(), depth_stretch=0.05)
    for frame, keyframe in ((3, 0), (0, 3), (2, 2)):
        for true, pred in zip(exact.decode(frame, keyframe), stretched.decode(frame, keyframe),
                              strict=True):
            torch.testing.assert_close(pred["pts3d"],
                                       true["pts3d"] * torch.tensor([1.0, 1.0, 1.05]))
            torch.testing.assert_close(pred["desc"], true["desc"])


def test_default_predictions_are_normalised_and_descriptors_agree_on_true_matches(scene):
    exact = Mast3rSlamOracle(scene, OracleCorruption.none().but(normalize=True))
    pred_f, pred_k = exact.decode(2, 0)
    both = torch.cat((pred_f["pts3d"][torch.from_numpy(scene.depth[2] > 0)],
                      pred_k["pts3d"][torch.from_numpy(scene.depth[0] > 0)]))
    assert both.norm(dim=-1).mean().item() == pytest.approx(1.0, rel=1e-5)
    pred_f, pred_k = Mast3rSlamOracle(scene).decode(2, 0)  # default corruption
    uv, visible = true_matches(scene, 2, 0)
    static = visible & ~scene.dynamic_mask[0]
    pix = np.round(uv[static]).astype(int)
    same = (pred_f["desc"][pix[:, 1], pix[:, 0]] * pred_k["desc"][static]).sum(-1)
    shifted = (pred_f["desc"][pix[:, 1], (pix[:, 0] + 8).clip(0, W - 1)]
               * pred_k["desc"][static]).sum(-1)
    assert same.median() > 0.8 and shifted.median() < same.median() - 0.2


def test_descriptor_periods_span_pixels_at_any_resolution(scene):
    assert period_stretch(scene) > 3.0  # 64 px wide: the pair oracle's periods are sub-pixel
    pred_f, _ = Mast3rSlamOracle(scene).decode(1, 1)
    desc = pred_f["desc"]
    static = torch.from_numpy(scene.depth[1] > 0)[:, 1:] & torch.from_numpy(
        scene.depth[1] > 0)[:, :-1]
    neighbours = (desc[:, 1:] * desc[:, :-1]).sum(-1)[static]
    assert neighbours.median() > 0.7  # one pixel apart: still much alike


def test_encode_refuses_frames_outside_the_scene(scene):
    oracle = Mast3rSlamOracle(scene)
    view = dict(oracle.views()[0], idx=9)
    with pytest.raises(InputError, match="outside the scene"):
        oracle.encode(view)


@pytest.fixture(scope="module")
def network_views() -> list[dict]:
    rng = np.random.default_rng(0)
    return load_images([rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(2)],
                       size=64)


def test_network_source_decodes_like_the_forward(network_views):
    model = load_model(GOLDEN_DIR / "checkpoints" / "tiny_mast3r_a.pth")
    source = NetworkPairSource(model)
    frame, keyframe = (source.encode(v) for v in network_views)
    pred_f, pred_k = source.decode(frame, keyframe)
    with torch.no_grad():
        pred1, pred2 = model(network_views[0], network_views[1])
    for ours, theirs, key in ((pred_f, pred1, "pts3d"), (pred_k, pred2, "pts3d_in_other_view")):
        assert set(ours) == {"pts3d", "conf", "desc", "desc_conf"}
        torch.testing.assert_close(ours["pts3d"], theirs[key][0], atol=1e-5, rtol=1e-5)
        for name in ("conf", "desc", "desc_conf"):
            torch.testing.assert_close(ours[name], theirs[name][0], atol=1e-5, rtol=1e-5)
    assert pred_f["pts3d"].shape[:2] == tuple(network_views[0]["img"].shape[-2:])


def test_network_source_refuses_a_model_without_descriptors():
    model = load_model(GOLDEN_DIR / "checkpoints" / "tiny_dust3r_linear.pth")
    with pytest.raises(InputError, match="MASt3R network"):
        NetworkPairSource(model)
