"""Span refinement of the MASt3R-SLAM stream (`refine_frames`, recon4d.slam.mast3r_refine) on a
synthetic oracle orbit: the written trajectory gets closer to the truth, the poses the stream
yields do not change, the option off (or a short buffer) leaves the unrefined frames as
tracked, and on a walk among masked movers the refinement helps while keeping each frame's
scale near the tracked one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon4d.eval.poses import align_poses, ate_errors
from recon4d.geometry.sim3 import sim3_scale
from recon4d.options import Mast3rSlamOptions
from recon4d.slam.mast3r import Mast3rSlam
from recon4d.synthetic import generate_scene
from recon4d.synthetic.mast3r_slam_oracle import Mast3rSlamOracle

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def orbit():
    """20 frames of an orbit at 4 degrees a frame: a span of 14 frames between keyframes and
    5 frames after the last one."""
    return generate_scene(frames=20, width=64, height=48, movers=0, seed=0, fps=5.0)


def run(scene, refine_frames: int, movers=None) -> tuple[np.ndarray, np.ndarray, Mast3rSlam]:
    """(poses as `push` yielded them (N, 4, 4), `frame_poses()` before `finish`, the finished
    stream); `movers` as `Mast3rSlam`'s."""
    source = Mast3rSlamOracle(scene)
    slam = Mast3rSlam(source, Mast3rSlamOptions(refine_frames=refine_frames), movers=movers)
    yielded = np.stack([slam.push(view).pose_c2w for view in source.views()])
    before = slam.frame_poses()
    slam.finish()
    return yielded, before, slam


@pytest.fixture(scope="module")
def runs(orbit):
    """The orbit streamed with the refinement off and on (the default buffer)."""
    return {n: run(orbit, n) for n in (0, Mast3rSlamOptions().refine_frames)}


def rms_error(poses: np.ndarray, gt: np.ndarray) -> float:
    """RMS camera-centre error after Sim(3) alignment (the ATE protocol, recon4d.eval)."""
    return float(np.sqrt(np.mean(ate_errors(align_poses(poses, gt)[0], gt) ** 2)))


def test_refined_trajectory_is_closer_to_the_truth(orbit, runs):
    (_, _, off), (_, spans, on) = runs.values()
    gt = orbit.poses_c2w
    assert [k.index for k in on.keyframes] == [0, 14]  # frames 1..13 lie between them
    step = np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).mean()
    tracked, refined = rms_error(off.frame_poses(), gt), rms_error(on.frame_poses(), gt)
    # a frame tracked against keyframe 0 only drifts with its distance from it; against both
    # keyframes (and frames 15..18 against keyframe 14 and frame 19 at the end) the error
    # drops (by 8 % here: with point edges the keyframes, and so the tracked frames, are
    # already close), to a few hundredths of a step between frames
    assert refined < rms_error(spans, gt) < 0.95 * tracked
    assert refined < 0.04 * step


def test_streamed_poses_and_keyframes_do_not_change(runs):
    (yielded_off, _, off), (yielded_on, _, on) = runs.values()
    assert np.allclose(yielded_on, yielded_off, rtol=0, atol=1e-9)
    assert np.allclose(on.keyframe_poses(), off.keyframe_poses(), rtol=0, atol=1e-9)


def test_option_off_writes_the_tracked_poses(runs):
    yielded, before, off = runs[0]
    assert np.array_equal(off.frame_poses(), before)  # finish changed nothing
    last = off.keyframes[-1].index  # no back-end solve moved the last keyframe afterwards
    assert np.allclose(off.frame_poses()[last:], yielded[last:], atol=1e-9)


def test_spans_and_the_end_refine_only_their_newest_buffered_frames(orbit, runs):
    _, _, off = runs[0]
    _, before, short = run(orbit, 2)
    moved = np.abs(before - off.frame_poses()).max(axis=(1, 2)) > 1e-9
    assert moved.nonzero()[0].tolist() == [12, 13]  # the two frames before keyframe 14
    # at the end the newest frame (19) stands in for the next keyframe, for frame 18
    moved = np.abs(short.frame_poses() - before).max(axis=(1, 2)) > 1e-9
    assert moved.nonzero()[0].tolist() == [18]


def test_refinement_helps_on_a_walk_among_masked_movers():
    """A walk among 6 movers with their true masks, 2 keyframes. Ray residuals barely tell a
    forward move from a change of scale: with the frame's scale free, the joint solve changed
    it by up to 5 % and moved frames away from both keyframes' solutions (ATE 0.081 -> 0.178 %
    of the path, scratch run); held near the tracked scale (`REFINE_SCALE_SIGMA`) the
    refinement lowers the ATE (measured 0.056 %)."""
    walk = generate_scene(frames=30, width=64, height=48, movers=6, seed=1, trajectory="walk",
                          fps=5.0)

    def masks(view, *_):
        return torch.from_numpy(walk.dynamic_mask[int(view["idx"])])

    off = run(walk, 0, masks)[2]
    on = run(walk, Mast3rSlamOptions().refine_frames, masks)[2]
    assert rms_error(on.frame_poses(), walk.poses_c2w) < 0.85 * rms_error(off.frame_poses(),
                                                                            walk.poses_c2w)
    # the keyframes are the same in both runs, so T_af compares the frames' poses
    assert [k.index for k in on.keyframes] == [k.index for k in off.keyframes]
    pairs = zip(on.relative, off.relative, strict=True)
    changes = [abs(float(sim3_scale(a[1]) / sim3_scale(b[1])) - 1)
               for a, b in pairs if not torch.equal(a[1], b[1])]
    assert len(changes) > 20 and max(changes) < 0.01
