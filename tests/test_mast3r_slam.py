"""MASt3R-SLAM stream on synthetic oracle sequences: a pose per frame as it goes with a small
Sim(3) ATE against the ground truth, keyframes and back-end edges, relocalisation after a frame
that cannot be tracked, and clear errors on a frame of another size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon4d.errors import InputError, OptionError
from recon4d.eval.poses import align_poses, ate_errors
from recon4d.options import Mast3rSlamOptions
from recon4d.slam import mast3r
from recon4d.slam.mast3r import Mast3rSlam, stream_poses
from recon4d.slam.mast3r_landing import Landing
from recon4d.synthetic import generate_scene
from recon4d.synthetic.mast3r_slam_oracle import Mast3rSlamOracle

# the oracle's small convolutions run far faster on one thread than on a busy pool
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ate(est: np.ndarray, gt: np.ndarray) -> float:
    """RMS camera-centre error after Sim(3) alignment (recon4d.eval)."""
    aligned, _ = align_poses(est, gt)
    return float(np.sqrt(np.mean(ate_errors(aligned, gt) ** 2)))


def path_length(poses: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1).sum())


@pytest.fixture(scope="module")
def orbit():
    """A static orbit fast enough (8 degrees a frame) for keyframes to be made."""
    return generate_scene(frames=12, width=64, height=48, movers=0, seed=0, fps=2.5)


@pytest.fixture(scope="module")
def streamed(orbit):
    """The orbit streamed: the poses as they came out of `stream_poses`, and a finished run."""
    source = Mast3rSlamOracle(orbit)
    slam = Mast3rSlam(source)
    return [slam.push(view) for view in source.views()], slam


def test_a_pose_per_frame_as_it_goes_with_small_ate(orbit):
    source = Mast3rSlamOracle(orbit)
    frames = list(stream_poses(source, source.views()[:6]))
    assert [f.index for f in frames] == list(range(6))
    assert frames[0].is_keyframe and not any(f.lost for f in frames)
    poses = np.stack([f.pose_c2w for f in frames])
    assert np.allclose(poses[0], np.eye(4))
    assert ate(poses, orbit.poses_c2w[:6]) < 0.02 * path_length(orbit.poses_c2w[:6])


def test_keyframes_edges_and_final_poses(orbit, streamed):
    frames, slam = streamed
    assert not any(f.lost for f in frames)
    assert len(slam.keyframes) >= 2 and len(slam.graph) == len(slam.keyframes)
    assert [f.index for f in frames if f.is_keyframe] == [k.index for k in slam.keyframes]
    assert {(e.a, e.b) for e in slam.graph.edges} >= {(1, 0), (0, 1)}
    poses = slam.frame_poses()
    assert poses.shape == (12, 4, 4)
    assert np.allclose(poses[:, :3, :3] @ poses[:, :3, :3].transpose(0, 2, 1), np.eye(3),
                       atol=1e-6)  # rigid: the Sim(3) scale is taken out
    assert ate(poses, orbit.poses_c2w) < 0.02 * path_length(orbit.poses_c2w)
    assert np.allclose(slam.keyframe_poses(), poses[[k.index for k in slam.keyframes]])
    points, colors, conf = slam.cloud()
    assert len(points) == len(colors) == len(conf) > 0 and (conf > 1.5).all()


class Dropout:
    """The oracle, except that frames in `bad` come out unusable (descriptor confidence 0, so no
    match is valid), as a network's would on a blurred or covered frame."""

    def __init__(self, oracle: Mast3rSlamOracle, bad: set[int]) -> None:
        self.oracle, self.bad = oracle, bad

    def encode(self, view: dict) -> int:
        return self.oracle.encode(view)

    def decode(self, code_f: int, code_k: int) -> tuple[dict, dict]:
        preds = self.oracle.decode(code_f, code_k)
        if {code_f, code_k} & self.bad:
            for pred in preds:
                pred["desc_conf"] = torch.zeros_like(pred["desc_conf"])
        return preds


def test_relocalisation_after_frames_that_cannot_be_tracked(orbit):
    source = Mast3rSlamOracle(orbit)
    slam = Mast3rSlam(Dropout(source, {4, 5}))
    frames = [slam.push(view) for view in source.views()[:9]]
    # frames 4 and 5 are lost (pose: the last one tracked); frame 6 is relocalised against the
    # keyframes retrieved for it and becomes a keyframe; tracking goes on from there
    assert slam.lost_frames == [4, 5] and [f.lost for f in frames] == [False] * 4 + [True] * 2 \
        + [False] * 3
    assert np.allclose(frames[5].pose_c2w, frames[3].pose_c2w)
    assert frames[6].is_keyframe
    kept = [0, 1, 2, 3, 6, 7, 8]
    truth = orbit.poses_c2w[kept]
    assert ate(slam.frame_poses()[kept], truth) < 0.05 * path_length(truth)


def test_a_new_keyframe_keeps_the_landing_tests_free_space_and_mover_insides(orbit,
                                                                            monkeypatch):
    """A frame that becomes a keyframe keeps the landing test's pixels in free space and those
    inside known movers; the rest of what it found on known movers goes to the frame's written
    mask only (docs/slam.md, "Keyframes keep the free space"). The landing test is replaced by
    fixed blocks: on movers the top-left 8x8, inside them its top-left 4x4, free space the
    bottom-right 8x8."""
    on_mover = torch.zeros(orbit.depth.shape[1:], dtype=torch.bool)
    on_mover[:8, :8] = True
    inside, free = torch.zeros_like(on_mover), torch.zeros_like(on_mover)
    inside[:4, :4] = True
    free[-8:, -8:] = True
    monkeypatch.setattr(mast3r, "landed_movers",
                        lambda *args, **kwargs: Landing(on_mover, free, inside))
    source = Mast3rSlamOracle(orbit)
    slam = Mast3rSlam(source, Mast3rSlamOptions(movers="geometry"))
    frames = [slam.push(view) for view in source.views()]
    made = slam.keyframes[1:]
    border = on_mover & ~inside
    assert made and all(k.movers[-8:, -8:].all() and k.movers[:4, :4].all()
                        and not k.movers[border].any() for k in made)
    assert all(f.movers[:8, :8].all() and f.movers[-8:, -8:].all() for f in frames[1:])


def test_a_relocalised_keyframe_keeps_the_movers_its_track_found():
    scene = generate_scene(frames=10, width=64, height=48, movers=20, seed=1, fps=5.0,
                           trajectory="walk")
    source = Mast3rSlamOracle(scene)
    slam = Mast3rSlam(Dropout(source, {4, 5}), Mast3rSlamOptions(movers="geometry"))
    frames = [slam.push(view) for view in source.views()[:7]]
    assert [f.lost for f in frames] == [False] * 4 + [True] * 2 + [False]
    keyframe, truth = slam.keyframes[-1], scene.dynamic_mask[6]
    assert keyframe.index == 6
    movers = keyframe.movers.cpu().numpy()
    written = frames[6].movers  # the keyframe's mask and the dense landing test's pixels
    assert not (movers & ~written).any() and (written & ~movers).any()
    # its edges were matched before the track found those movers: they leave them out
    # (measured 80 of 2061 edge pixels on them when they did not)
    found = keyframe.movers.reshape(-1)
    edges = [e for e in slam.graph.edges if e.b == len(slam.keyframes) - 1]
    assert edges and all(not found[e.pix_b.long()].any() for e in edges)
    # measured: recall 0.73, precision 0.73 (without the check's movers the mask was empty)
    assert (movers & truth).sum() > 0.3 * truth.sum()
    assert (movers & truth).sum() > 0.5 * movers.sum()


def test_a_frame_of_another_size_is_refused(orbit):
    source = Mast3rSlamOracle(orbit)
    views = source.views()
    slam = Mast3rSlam(source)
    slam.push(views[0])
    small = dict(views[1], img=views[1]["img"][..., :32, :48], label="small.png")
    with pytest.raises(InputError, match=r"small.png: frame 1 is 48x32 but the stream started "
                                         r"at 64x48"):
        slam.push(small)


def test_calibrated_tracking_with_the_true_intrinsics(orbit):
    source = Mast3rSlamOracle(orbit)
    slam = Mast3rSlam(source, intrinsics=torch.from_numpy(orbit.intrinsics[0]))
    for view in source.views()[:6]:
        slam.push(view)
    truth = orbit.poses_c2w[:6]
    assert ate(slam.frame_poses(), truth) < 0.02 * path_length(truth)
    assert np.allclose(slam.frame_focals(), orbit.intrinsics[0][0, 0])


def test_mover_masks_lower_the_ate_towards_frozen_movers():
    # 20 moving boxes take a large part of the frames (a walk towards the room's centre)
    scene, frozen = (generate_scene(frames=10, width=64, height=48, movers=20, seed=1, fps=5.0,
                                    trajectory="walk", freeze_movers=freeze)
                     for freeze in (False, True))

    def run(s, movers=None) -> float:
        source = Mast3rSlamOracle(s)
        slam = Mast3rSlam(source, movers=movers)
        for view in source.views():
            slam.push(view)
        return ate(slam.frame_poses(), s.poses_c2w)

    def truth(view, *_):
        return torch.from_numpy(scene.dynamic_mask[int(view["idx"])])

    without, masked, still = run(scene), run(scene, truth), run(frozen)
    assert masked < 0.9 * without and masked < 1.5 * still


def map_mover_share(slam: Mast3rSlam, scene) -> float:
    """Share of the map's keyframe pixels (those `cloud` keeps) that lie on true movers."""
    movers = total = 0
    for keyframe in slam.keyframes:
        kept = keyframe.map_pixels(slam.options.cloud_conf).numpy()
        movers += (kept & scene.dynamic_mask[keyframe.index]).sum()
        total += kept.sum()
    return movers / total


@pytest.mark.parametrize("frames", [10, 30])
def test_the_consistency_check_keeps_movers_out_without_masks(frames):
    """`movers="geometry"`, no mask given: the written trajectory stays within 1.5x the ATE of
    a reference and far below the unmasked one; the per-frame masks it writes overlap the true
    movers, and few mover points reach the map. The reference on 10 frames is the same walk
    with frozen movers (the issue's target). On 30 frames, where movers cover half of the late
    frames, even the oracle's true masks miss that target on most walks (docs/slam.md, "Where
    the 1.5x target holds"), so the reference is the walk with the true masks. 30 frames make
    keyframes, edges and span refinement (measured: 10 frames 0.148 against frozen 0.129 and
    unmasked 0.639 % of the path; 30 frames 0.066 against true masks 0.052 and unmasked 0.773,
    frozen 0.039; IoU of the written masks 0.57 / 0.65)."""
    scene, frozen = (generate_scene(frames=frames, width=64, height=48, movers=20, seed=1,
                                    fps=5.0, trajectory="walk", freeze_movers=freeze)
                     for freeze in (False, True))

    def run(s, mode, masks=None):
        source = Mast3rSlamOracle(s)
        slam = Mast3rSlam(source, Mast3rSlamOptions(movers=mode), movers=masks)
        frames = [slam.push(view) for view in source.views()]
        slam.finish()
        return ate(slam.frame_poses(), s.poses_c2w), frames, map_mover_share(slam, s)

    def true_masks(view, *_):
        return torch.from_numpy(scene.dynamic_mask[int(view["idx"])])

    (without, plain, share_plain), (checked, estimated, share_checked) = (
        run(scene, "none"), run(scene, "geometry"))
    reference = run(frozen, "none")[0] if frames == 10 else run(scene, "oracle", true_masks)[0]
    assert checked < 1.5 * reference and checked < 0.3 * without
    # the map: measured 0.07-0.10 of the unchecked share of mover points
    assert share_plain > 0.1 and share_checked < 0.3 * share_plain
    assert all(f.movers is None for f in plain) and estimated[0].movers is None
    truth = scene.dynamic_mask
    iou = np.mean([(f.movers & truth[f.index]).sum() / (f.movers | truth[f.index]).sum()
                   for f in estimated[1:]])
    assert iou > 0.5


def test_lost_and_keyframe_options_reach_tracking(orbit):
    source = Mast3rSlamOracle(orbit)
    views = source.views()[:4]
    few = Mast3rSlam(source, Mast3rSlamOptions(keyframe_overlap=0.01))
    assert [few.push(view).is_keyframe for view in views] == [True] + [False] * 3
    many = Mast3rSlam(source, Mast3rSlamOptions(keyframe_overlap=0.99))
    assert all(many.push(view).is_keyframe for view in views)
    strict = Mast3rSlam(source, Mast3rSlamOptions(min_valid=1.0))
    assert [strict.push(view).lost for view in views[:2]] == [False, True]
    with pytest.raises(OptionError, match="--keyframe-overlap must be at most 1"):
        Mast3rSlamOptions(keyframe_overlap=1.5)


def test_back_end_solves_stay_within_their_caps_on_a_looping_stream():
    # 100 frames at 8 degrees a frame: over two turns, each revisit adding loop edges
    scene = generate_scene(frames=100, width=48, height=32, movers=0, seed=0, fps=2.5)
    options = Mast3rSlamOptions(window=3, loop_gap=3, loop_keyframes=1, anchor_edges=2)
    source = Mast3rSlamOracle(scene)
    views = source.views()
    slam = Mast3rSlam(source, options)
    slam.push(views[0])
    graph, solves = slam.graph, []
    optimise = graph.optimise

    def counted(points):
        free, edges = graph.solve_set()
        newest = set(range(max(1, len(graph) - options.window), len(graph)))
        loop_ends = {k for e in graph.edges if abs(e.a - e.b) >= options.loop_gap
                     for k in (e.a, e.b) if {e.a, e.b} & newest} - newest - {0}
        solves.append((free, edges, loop_ends))
        return optimise(points)

    graph.optimise = counted
    frames = [slam.push(view) for view in views[1:]]
    assert not any(f.lost for f in frames) and len(solves) == len(slam.keyframes) - 1
    for free, edges, _ in solves:
        assert len(free) <= options.window + options.loop_keyframes
        assert all(e.a in free or e.b in free for e in edges)
        for k in free:  # edges to held keyframes: at most anchor_edges per free keyframe
            assert sum(k in (e.a, e.b) and not {e.a, e.b} <= set(free)
                       for e in edges) <= options.anchor_edges
        # an edge among free keyframes is one of the at most 2 (1 + retrieval_k) that its newer
        # end brought (to the previous and retrieved keyframes, both ways)
        assert len(edges) <= len(free) * (2 * (1 + options.retrieval_k) + options.anchor_edges)
    # the caps bound real solves: windows with more loop endpoints than may join them
    assert max(len(ends) for *_, ends in solves) > options.loop_keyframes
    assert max(len(free) for free, *_ in solves) == options.window + options.loop_keyframes
    assert ate(slam.frame_poses(), scene.poses_c2w) < 0.02 * path_length(scene.poses_c2w)
