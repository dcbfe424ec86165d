"""Refinement of a windowed alignment over all pairs: exact pairs give back the true poses from
perturbed ones and keep the true depths, whatever the block size, frame 0 fixed; a window off by
a common scale is brought back; a reader must give every edge."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon4d.align.inputs import PairData
from recon4d.align.pose_refine import PairChunk, refine_alignment
from recon4d.align.state import AlignState
from recon4d.errors import Recon4dError
from recon4d.geometry.cameras import depth_to_world, unproject_depth
from recon4d.geometry.rotations import so3_exp

N, H, W = 5, 6, 8


@pytest.fixture(scope="module")
def video():
    return _exact_video(N)


def _exact_video(n: int):
    """True cameras and depths of n frames, and exact pairs (i, j) with |i - j| <= 2, each in
    camera i's frame divided by its own scale s_e."""
    rng = np.random.default_rng(0)
    depths = rng.uniform(2.0, 4.0, (n, H, W))
    focals, pps = rng.uniform(6.0, 9.0, n), np.tile([W / 2, H / 2], (n, 1))
    intrinsics = np.zeros((n, 3, 3))
    intrinsics[:, 0, 0] = intrinsics[:, 1, 1] = focals
    intrinsics[:, :2, 2], intrinsics[:, 2, 2] = pps, 1
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, :3, :3] = so3_exp(rng.normal(0, 0.1, (n, 3)))
    poses[:, :3, 3] = np.c_[0.3 * np.arange(n), rng.normal(0, 0.1, (n, 2))]
    world = depth_to_world(depths, intrinsics, poses)
    edges = np.array([(i, j) for i in range(n) for j in range(n) if i != j and abs(i - j) <= 2])
    scales = rng.uniform(0.5, 2.0, len(edges))

    def in_pair_frame(points, e):
        i = edges[e, 0]
        return (points - poses[i, :3, 3]) @ poses[i, :3, :3] / scales[e]

    pts_i = np.stack([in_pair_frame(world[i], e) for e, (i, _) in enumerate(edges)])
    pts_j = np.stack([in_pair_frame(world[j], e) for e, (_, j) in enumerate(edges)])
    assert np.allclose(pts_i[0] * scales[0], unproject_depth(depths[0], intrinsics[0]))
    conf = torch.full((len(edges), H, W), 2.0)
    data = PairData(torch.as_tensor(edges), torch.as_tensor(pts_i, dtype=torch.float32),
                    torch.as_tensor(pts_j, dtype=torch.float32), conf, conf, n)
    return depths, focals, pps, poses, edges, data


def _start(depths: np.ndarray, poses: np.ndarray, focals: np.ndarray,
           pps: np.ndarray) -> AlignState:
    """The true cameras and depths with frames 1.. moved off by a few degrees and centimetres."""
    rng = np.random.default_rng(1)
    n = len(poses)
    rot, trans = poses[:, :3, :3].copy(), poses[:, :3, 3].copy()
    rot[1:] = so3_exp(rng.normal(0, 0.05, (n - 1, 3))) @ rot[1:]
    trans[1:] += rng.normal(0, 0.05, (n - 1, 3))
    return AlignState(torch.from_numpy(rot), torch.from_numpy(trans), torch.from_numpy(focals),
                      torch.from_numpy(pps), torch.as_tensor(depths, dtype=torch.float32),
                      *(torch.empty(0),) * 3)


def _reader(edges: np.ndarray, data: PairData, drop: int | None = None):
    """Reads the pairs inside consecutive frames from `data`; `drop`: an edge it never gives."""
    def read(frames: np.ndarray) -> PairChunk:
        positions = np.flatnonzero(np.isin(edges, frames).all(axis=1))
        positions = positions[positions != drop]
        sel = torch.as_tensor(positions)
        return PairChunk(positions, frames, PairData(
            torch.as_tensor(edges[positions] - frames[0]), data.pts_i[sel], data.pts_j[sel],
            data.conf_i[sel], data.conf_j[sel], len(frames)))
    return read


@pytest.mark.parametrize("block", [N, 2])
def test_exact_pairs_give_back_the_true_poses(video, block):
    depths, focals, pps, poses, edges, data = video
    state = _start(depths, poses, focals, pps)
    assert np.abs(state.trans.numpy() - poses[:, :3, 3]).max() > 0.02
    history = refine_alignment(state, edges, _reader(edges, data), block)
    assert history[-1] < 1e-3 * history[0]
    np.testing.assert_array_equal(state.rot[0], poses[0, :3, :3])  # the gauge: frame 0 stays
    np.testing.assert_array_equal(state.depths[0], depths[0].astype(np.float32))
    np.testing.assert_allclose(state.rot, poses[:, :3, :3], atol=1e-4)
    np.testing.assert_allclose(state.trans, poses[:, :3, 3], atol=1e-4)
    np.testing.assert_allclose(state.depths, depths, rtol=1e-4)


def test_a_window_off_by_a_common_scale_is_brought_back(video):
    """Frames 2.. as a window chained with a wrong scale: depths and camera offsets from frame 1
    x 1.3 (consistent within the window: only the pairs between it and frames 0, 1 see the
    error) -> the truth, in one call of the default rounds."""
    depths, focals, pps, poses, edges, data = video
    wrong = 1.3
    state = _start(depths, poses, focals, pps)
    state.rot, state.trans = torch.tensor(poses[:, :3, :3]), torch.tensor(poses[:, :3, 3])
    state.depths[2:] *= wrong
    state.trans[2:] = state.trans[1] + wrong * (state.trans[2:] - state.trans[1])
    refine_alignment(state, edges, _reader(edges, data), 2)
    np.testing.assert_allclose(state.trans, poses[:, :3, 3], atol=1e-3)
    np.testing.assert_allclose(state.depths, depths, rtol=1e-3)


def test_a_reader_missing_an_edge_is_refused(video):
    depths, focals, pps, poses, edges, data = video
    state = _start(depths, poses, focals, pps)
    with pytest.raises(Recon4dError, match="each of the 14 edges"):
        refine_alignment(state, edges, _reader(edges, data, drop=3), 2)


def test_pairs_are_read_block_by_block():
    """Memory is one block of pairs, not the video's: every read covers at most the block
    widened by the graph's reach (2) on each side, and the poses still come most of the way
    back (the default rounds)."""
    depths, focals, pps, poses, edges, data = _exact_video(12)
    state = _start(depths, poses, focals, pps)
    start_error = np.abs(state.trans.numpy() - poses[:, :3, 3]).max()
    read = _reader(edges, data)
    asked: list[int] = []

    def counting(frames: np.ndarray) -> PairChunk:
        asked.append(len(frames))
        return read(frames)

    refine_alignment(state, edges, counting, 2)
    assert max(asked) <= 2 + 2 * 2 < 12
    assert np.abs(state.trans.numpy() - poses[:, :3, 3]).max() < 0.1 * start_error


def test_no_block_of_pairs_outlives_its_turn(monkeypatch):
    """Memory is one block of pairs at a time: when a block is read, no earlier block's pair
    data (nor the subset of its edges a pass uses) is alive any more."""
    import weakref

    import recon4d.align.pose_refine as pose_refine

    depths, focals, pps, poses, edges, data = _exact_video(12)
    state = _start(depths, poses, focals, pps)
    read, subset = _reader(edges, data), pose_refine._subset
    held: list[weakref.ref] = []
    alive_at_read: list[int] = []

    def tracked_read(frames: np.ndarray) -> PairChunk:
        alive_at_read.append(sum(ref() is not None for ref in held))
        chunk = read(frames)
        held.append(weakref.ref(chunk.data))
        return chunk

    def tracked_subset(*args):
        out = subset(*args)
        held.append(weakref.ref(out))
        return out

    monkeypatch.setattr(pose_refine, "_subset", tracked_subset)
    refine_alignment(state, edges, tracked_read, 3)
    assert len(alive_at_read) > 8 and set(alive_at_read) == {0}


def test_block_by_block_moments_equal_those_of_one_loop(monkeypatch):
    """The moments gathered block by block (each block's data freed on its return) are the
    ones of the earlier single loop kept here as the reference: the refined poses and depths
    are bit-identical."""
    import recon4d.align.pose_refine as pose_refine
    from recon4d.align.objective import Objective
    from recon4d.align.pose_graph import TermMoments
    from recon4d.align.solver_fast import moments_pass

    def one_loop(state, edges, read, starts, block, reach, delta):
        later = edges.max(dim=1).values.numpy()
        parts, loss = [], 0.0
        for start in starts:
            lo, hi = max(0, start - reach), min(start + block, state.depths.shape[0])
            chunk = read(np.arange(lo, hi))
            own = later[chunk.positions] >= start
            data = (chunk.data if own.all()
                    else pose_refine._subset(chunk.data, torch.from_numpy(own)))
            obj = Objective(data, chunk.static)
            part, chunk_loss = moments_pass(
                obj, pose_refine._view(state, lo, hi, chunk.positions[own]), delta)
            parts.append((chunk.positions[own], part))
            loss += chunk_loss * obj.norm
        order = torch.as_tensor(np.argsort(np.concatenate([p for p, _ in parts]), kind="stable"))
        return TermMoments(*(torch.cat([getattr(m, name) for _, m in parts])[order]
                             for name in ("weight", "mean", "scatter"))), loss

    depths, focals, pps, poses, edges, data = _exact_video(12)
    noise = torch.randn(data.pts_i.shape, generator=torch.Generator().manual_seed(3))
    noisy = PairData(data.edges, data.pts_i * (1 + 0.01 * noise), data.pts_j, data.conf_i,
                     data.conf_j, data.n_images)  # pairs that disagree: several IRLS rounds
    results = []
    for moments in (pose_refine._moments, one_loop):
        monkeypatch.setattr(pose_refine, "_moments", moments)
        state = _start(depths, poses, focals, pps)
        history = refine_alignment(state, edges, _reader(edges, noisy), 3)
        results.append((history, state.rot.clone(), state.trans.clone(), state.depths.clone()))
    (h_new, *new), (h_old, *old) = results
    assert h_new == h_old and len(h_new) > 1
    for a, b in zip(new, old, strict=True):
        assert torch.equal(a, b)
