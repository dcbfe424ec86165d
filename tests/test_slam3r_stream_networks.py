"""The SLAM3R stream on the real networks (`NetworkBackend`), with the tiny golden checkpoints:
the calls it makes are the networks' own (checked against direct calls), the whole stream runs
(structure only: random weights give no geometry), and checkpoints of the wrong class are
refused before any frame is encoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recon4d.errors import CheckpointError, InputError
from recon4d.options.slam import Slam3rOptions
from recon4d.slam.slam3r import run_slam3r
from recon4d.slam.slam3r_backend import NetworkBackend, load_backend

CHECKPOINTS = Path(__file__).parent / "data" / "golden-slam3r" / "checkpoints"
I2P, L2W = CHECKPOINTS / "tiny_slam3r_i2p.pth", CHECKPOINTS / "tiny_slam3r_l2w_hf"


@pytest.fixture(scope="module")
def backend():
    return load_backend(str(I2P), str(L2W))


def frames(count, height=32, width=48, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [{"img": torch.rand(1, 3, height, width, generator=gen) * 2 - 1, "idx": i,
             "label": f"frame_{i}.png"} for i in range(count)]


def test_backend_calls_match_the_networks(backend):
    views = frames(4)
    codes = [backend.encode(v) for v in views]
    points, conf = backend.i2p([[codes[0], codes[1], codes[2]], [codes[3], codes[1], codes[2]]])
    direct = backend.i2p_net([views[3], views[1], views[2]], ref_id=0)
    assert points.shape == (3, 2, 32, 48, 3)
    assert torch.allclose(points[0, 1], direct[0]["pts3d"][0], atol=1e-5)
    assert torch.allclose(points[2, 1], direct[2]["pts3d_in_other_view"][0], atol=1e-5)
    assert torch.allclose(conf[1, 1], direct[1]["conf"][0], atol=1e-5)
    scores = backend.corr([codes[0], codes[3]], [codes[1], codes[2]])
    assert scores.shape == (2, 2, 6) and float(scores.min()) >= 1
    world = torch.randn(2, 32, 48, 3)
    local = torch.randn(1, 32, 48, 3)
    out, out_conf = backend.l2w([codes[0], codes[1]], world, [codes[2]], local)
    tokens = [{"img_tokens": c.tokens, "img_pos": c.pos, "true_shape": c.shape[None]}
              for c in (codes[0], codes[1], codes[2])]
    ref = backend.l2w_net([dict(tokens[0], pts3d_world=world[:1]),
                           dict(tokens[1], pts3d_world=world[1:]),
                           dict(tokens[2], pts3d_cam=local)], ref_ids=[0, 1])
    assert torch.allclose(out, ref[2]["pts3d_in_other_view"], atol=1e-5)
    assert torch.allclose(out_conf, ref[2]["conf"], atol=1e-5)


def test_stream_runs_end_to_end_on_the_tiny_networks(backend):
    opts = Slam3rOptions(keyframe_stride=0, stride_probe=13, win_r=1, initial_winsize=3,
                         num_scene_frame=2, buffer_size=4, points_per_frame=50)
    result = run_slam3r(backend, frames(14), opts)
    assert result.poses_c2w.shape == (14, 4, 4) and np.isfinite(result.poses_c2w).all()
    assert result.keyframe_stride in (1, 2) and len(result.buffer_ids) <= 4
    assert result.points.shape == result.colors.shape and result.points.shape[0] <= 14 * 50


def test_an_l2w_checkpoint_given_as_i2p_is_refused():
    with pytest.raises(CheckpointError, match="tiny_slam3r_l2w.*L2W.*I2P"):
        load_backend(str(CHECKPOINTS / "tiny_slam3r_l2w.pth"), str(L2W))


def test_swapped_networks_are_refused(backend):
    with pytest.raises(InputError, match="I2P network must be a SLAM3R Image2PointsModel"):
        NetworkBackend(backend.l2w_net, backend.i2p_net)
