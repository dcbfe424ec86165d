"""The SLAM3R oracle (`recon4d.synthetic.slam3r_oracle`) against the scene's ground truth:
I2P in the window reference's camera, L2W in the world frame of the given scene frames,
correlation scores ranking true overlap, and the pair oracle's corruption."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon4d.errors import InputError
from recon4d.geometry.transforms import apply_transform, invert_rigid
from recon4d.io.images import load_images
from recon4d.synthetic import OracleCorruption, generate_scene
from recon4d.synthetic.slam3r_oracle import Slam3rOracle


@pytest.fixture(scope="module")
def scene():
    return generate_scene(24, 64, 48, movers=0, seed=5)


def truth_in(scene, frame, ref):
    return apply_transform(invert_rigid(scene.poses_c2w[ref]), scene.world_points(frame))


def test_i2p_gives_every_view_in_the_reference_camera(scene):
    oracle = Slam3rOracle(scene, OracleCorruption.none())
    points, conf = oracle.i2p([[4, 2, 6], [10, 8, 12]], ref_id=1)
    assert points.shape == (3, 2, 48, 64, 3) and conf.shape == (3, 2, 48, 64)
    for b, window in enumerate([[4, 2, 6], [10, 8, 12]]):
        for k, frame in enumerate(window):
            surface = scene.depth[frame] > 0
            expected = truth_in(scene, frame, window[1])[surface]
            assert np.allclose(points[k, b].numpy()[surface], expected, atol=1e-4)
    assert float(conf.min()) >= 1


def test_i2p_corruption_is_one_scale_per_window_and_noisy(scene):
    oracle = Slam3rOracle(scene, OracleCorruption(noise_rel=0.0, outlier_fraction=0.0,
                                                  edge_blur=0.0))
    points, _ = oracle.i2p([[3, 1, 5]])
    ratios = [np.median(np.linalg.norm(points[k, 0].numpy(), axis=-1)[scene.depth[f] > 0]
                        / np.linalg.norm(truth_in(scene, f, 3), axis=-1)[scene.depth[f] > 0])
              for k, f in enumerate([3, 1, 5])]
    assert np.allclose(ratios, ratios[0], rtol=1e-5) and abs(ratios[0] - 1) > 1e-3
    noisy, conf = Slam3rOracle(scene).i2p([[3, 1, 5]])
    err = np.linalg.norm(noisy[0, 0].numpy() - points[0, 0].numpy() / ratios[0], axis=-1)
    assert np.median(err) > 0 and float(conf.max()) > 10


def test_l2w_registers_into_the_scene_frames_world(scene):
    oracle = Slam3rOracle(scene, OracleCorruption.none())
    angle = 0.3
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                    [0, 0, 1]])
    scale, trans = 0.25, np.array([1.0, -2.0, 0.5])

    def to_world(points):
        return scale * points @ rot.T + trans

    ids = [0, 3, 6]
    world = np.stack([to_world(scene.world_points(i)) for i in ids])
    world[1, :5] = 0  # zeroed (low-confidence) points are ignored
    world[2, 5:10] += 50.0  # gross errors are left out of the fit
    local = torch.zeros(2, 48, 64, 3)
    out, conf = oracle.l2w(ids, torch.from_numpy(world).float(), [8, 9], local)
    for k, frame in enumerate([8, 9]):
        surface = scene.depth[frame] > 0
        expected = to_world(scene.world_points(frame))[surface]
        assert np.allclose(out[k].numpy()[surface], expected, atol=1e-3)
    assert conf.shape == (2, 48, 64)


def test_correlation_ranks_true_overlap(scene):
    oracle = Slam3rOracle(scene)
    scores = oracle.corr([10], [10, 11, 13, 23])
    assert scores.shape == (4, 1, 12)  # 3 x 4 patches of 16 pixels
    mean = scores.mean(dim=(1, 2))
    assert torch.all(mean[:-1] >= mean[1:])  # farther in time = less overlap on this path
    assert float(scores[0].min()) > 1 + 0.9 * oracle.corruption.conf_peak  # sees itself


def test_encode_checks_the_frame_against_the_scene(scene):
    oracle = Slam3rOracle(scene)
    views = load_images(list(scene.rgb[:2]), size=64)
    assert oracle.encode(views[1]) == 1
    with pytest.raises(InputError, match="outside the scene's 24 frames"):
        oracle.encode(dict(views[1], idx=30))
