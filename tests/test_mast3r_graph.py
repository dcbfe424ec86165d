"""MASt3R-SLAM back end: edge Jacobians against finite differences, recovery of known poses
from injected drift, the bounded window, loop closure on a path back to its start, and the
stream's point edges: the true keyframe poses on exact predictions, kept through a spill."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon4d.geometry.cameras import unproject_depth
from recon4d.geometry.sim3 import sim3_act, sim3_exp, sim3_inverse
from recon4d.slam.mast3r import Mast3rSlam
from recon4d.slam.mast3r_graph import (
    Calibration,
    Edge,
    PoseGraph,
    edge_residuals,
    edge_targets,
)
from recon4d.slam.mast3r_store import SpillSpace, SpillStore
from recon4d.synthetic import generate_scene
from recon4d.synthetic.mast3r_slam_oracle import Mast3rSlamOracle
from recon4d.synthetic.oracle import OracleCorruption

# small ops run far faster on one thread than on a busy pool
pytestmark = pytest.mark.usefixtures("one_torch_thread")

K = torch.tensor([[40.0, 0, 24], [0, 40.0, 16], [0, 0, 1]], dtype=torch.float64)  # 48 x 32


def circle_poses(n: int, radius: float = 2.0) -> list[torch.Tensor]:
    """Cameras on a circle about the origin, looking inwards (world z up), with growing scale."""
    poses = []
    for k in range(n):
        angle = torch.tensor(2 * math.pi * k / n, dtype=torch.float64)
        centre = torch.stack((radius * torch.cos(angle), radius * torch.sin(angle),
                              torch.tensor(0.0, dtype=torch.float64)))
        forward = -centre / centre.norm()
        down = torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64)
        right = torch.linalg.cross(down, forward)
        pose = torch.eye(4, dtype=torch.float64)
        pose[:3, :3] = torch.stack((right, down, forward), dim=1) * (1 + 0.05 * k)
        pose[:3, 3] = centre
        poses.append(pose)
    return poses


def world_cloud(count: int = 300, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(count, 3, generator=gen, dtype=torch.float64) - 0.5) * 1.2


def full_edge(a: int, b: int, target: torch.Tensor) -> Edge:
    """Edge (a, b) whose pixel n of b sees `target[n]` (in a's camera)."""
    count = len(target)
    return Edge(a, b, target, torch.arange(count), torch.ones(count, dtype=torch.float64))


def index_edge(a: int, b: int) -> Edge:
    """An edge for the bookkeeping of the window (its points are not used)."""
    return full_edge(a, b, torch.zeros(5, 3, dtype=torch.float64))


@pytest.mark.parametrize("calibrated", [False, True])
def test_edge_jacobians_match_finite_differences(calibrated):
    poses = circle_poses(8)
    pose_a, pose_b = poses[0], poses[1]
    cloud = world_cloud(40)
    x_a = sim3_act(sim3_inverse(pose_a), cloud)
    x_b = sim3_act(sim3_inverse(pose_b), cloud) * 1.03  # off, so residuals are not zero
    pix_b = torch.arange(40) + 7
    calib = Calibration(K, 32, 48) if calibrated else None
    weight = torch.linspace(0.5, 2.0, 40, dtype=torch.float64)
    jac = edge_residuals(pose_a, pose_b, x_a, x_b, pix_b, weight, calib).jac

    def residual(delta: torch.Tensor) -> torch.Tensor:
        return edge_residuals(sim3_exp(delta[:7]) @ pose_a, sim3_exp(delta[7:]) @ pose_b, x_a,
                              x_b, pix_b, weight, calib).r

    eps = 1e-6
    numeric = torch.stack([(residual(eps * e) - residual(-eps * e)) / (2 * eps)
                           for e in torch.eye(14, dtype=torch.float64)], dim=-1)
    assert torch.allclose(jac, numeric, rtol=1e-4, atol=1e-6 * numeric.abs().max())


def drifted(poses: list[torch.Tensor], size: float, seed: int = 1) -> list[torch.Tensor]:
    """The poses after a random walk of left Sim(3) errors (keyframe 0 unchanged)."""
    gen = torch.Generator().manual_seed(seed)
    out, acc = [poses[0]], torch.eye(4, dtype=torch.float64)
    for pose in poses[1:]:
        acc = sim3_exp(size * torch.randn(7, generator=gen, dtype=torch.float64)) @ acc
        out.append(acc @ pose)
    return out


def centre_errors(poses: list[torch.Tensor], truth: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([(p[:3, 3] - t[:3, 3]).norm() for p, t in zip(poses, truth, strict=True)])


def scene_keyframes(count: int) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor,
                                         list[Edge]]:
    """True poses, camera pointmaps (H*W, 3) and intrinsics of a synthetic scene's frames, and
    edges both ways between consecutive frames: each pixel of b with the pixel of a that sees
    the same surface point (by projection, rounded)."""
    scene = generate_scene(frames=count, width=48, height=32, movers=0, seed=2, fps=2.0)
    k = torch.from_numpy(scene.intrinsics[0])
    truth = [torch.from_numpy(p) for p in scene.poses_c2w]
    depth = torch.from_numpy(scene.depth).double()
    points = [unproject_depth(d, k).reshape(-1, 3) for d in depth]
    edges = []
    for a, b in [(i, i + 1) for i in range(count - 1)] + [(i + 1, i) for i in range(count - 1)]:
        in_a = sim3_act(sim3_inverse(truth[a]) @ truth[b], points[b])
        uv = (in_a / in_a[:, 2:].clamp(min=1e-9)) @ k.T
        col, row = uv[:, 0].round().long(), uv[:, 1].round().long()
        ok = (col >= 0) & (col < 48) & (row >= 0) & (row < 32) & (points[b][:, 2] > 0)
        pix_a = (row * 48 + col).clamp(0, 48 * 32 - 1)
        ok &= (points[a][pix_a, 2] - in_a[:, 2]).abs() < 0.02 * in_a[:, 2]
        pix_b = torch.nonzero(ok)[:, 0]
        edges.append(Edge(a, b, points[a][pix_a[pix_b]], pix_b, torch.ones(len(pix_b))))
    return truth, points, k, edges


@pytest.mark.parametrize("calibrated", [False, True])
def test_optimiser_removes_injected_drift(calibrated):
    truth, points, k, edges = scene_keyframes(5)
    graph = PoseGraph(window=10, iters=10, calib=Calibration(k, 32, 48) if calibrated else None)
    for pose in drifted(truth, 0.01):
        graph.add_keyframe(pose)
    for edge in edges:
        graph.add_edge(edge)
    before = centre_errors(graph.poses, truth).max()
    assert graph.optimise(lambda i: points[i]) == [1, 2, 3, 4]
    assert torch.equal(graph.poses[0], truth[0])  # the first keyframe is fixed
    # the matches are rounded to pixels: the optimum is near, not at, the truth; started from
    # the truth the solver finds the same optimum
    from_truth = PoseGraph(window=10, iters=10, calib=graph.calib)
    for pose in truth:
        from_truth.add_keyframe(pose)
    for edge in edges:
        from_truth.add_edge(edge)
    from_truth.optimise(lambda i: points[i])
    assert before > 0.1 and centre_errors(graph.poses, truth).max() < 0.2 * before
    assert centre_errors(graph.poses, from_truth.poses).max() < 1e-3 * before


def test_the_window_moves_only_the_newest_keyframes_and_loop_endpoints():
    graph = PoseGraph(window=3, loop_gap=4)
    for pose in circle_poses(10):
        graph.add_keyframe(pose)
    for k in range(1, 10):
        graph.add_edge(index_edge(k, k - 1))
    assert graph.free_keyframes() == [7, 8, 9]
    graph.add_edge(index_edge(9, 2))  # a loop edge: its old endpoint joins the window
    assert graph.free_keyframes() == [2, 7, 8, 9]
    graph.add_edge(index_edge(9, 0))  # the first keyframe stays fixed
    assert graph.free_keyframes() == [2, 7, 8, 9]


def test_a_solve_is_capped_to_recent_loop_endpoints_and_anchor_edges():
    graph = PoseGraph(window=3, loop_gap=4, loop_keyframes=2, anchor_edges=1)
    for pose in circle_poses(12):
        graph.add_keyframe(pose)
    for k in range(1, 12):
        graph.add_edge(index_edge(k, k - 1))
    for a, b in ((9, 1), (10, 2), (11, 3), (11, 4), (11, 0)):  # loop edges, oldest first
        graph.add_edge(index_edge(a, b))
    free, edges = graph.solve_set()
    # the window 9..11 and the old ends of the two newest loop edges other than keyframe 0's
    assert free == [3, 4, 9, 10, 11]
    among = {(4, 3), (10, 9), (11, 10), (11, 3), (11, 4)}
    # per free keyframe its newest edge to a held keyframe: 3 -> 2, 4 <- 5, 9 -> 1 (not the
    # older 9 -> 8), 10 -> 2, 11 -> 0
    anchors = {(3, 2), (5, 4), (9, 1), (10, 2), (11, 0)}
    assert {(e.a, e.b) for e in edges} == among | anchors and len(edges) == 10


def stretched_views(truth: list[torch.Tensor], cloud: torch.Tensor, size: float
                    ) -> list[torch.Tensor]:
    """Each keyframe's pointmap stretched in depth by 1 + size: a systematic error, like a
    network's, that no Sim(3) absorbs, so chained poses drift steadily."""
    stretch = torch.tensor([1.0, 1.0, 1.0 + size], dtype=torch.float64)
    return [sim3_act(sim3_inverse(p), cloud) * stretch for p in truth]


def run_stream(truth: list[torch.Tensor], points: list[torch.Tensor], loop: bool,
               window: int) -> list[torch.Tensor]:
    """Keyframes arrive one at a time (each starting at its predecessor's estimate), with an edge
    to the previous keyframe both ways; with `loop`, the last one also gets edges to the first
    two. Returns the final poses."""
    graph = PoseGraph(window=window, iters=10, loop_gap=4)
    for k, pose in enumerate(truth):
        graph.add_keyframe(pose if k == 0 else graph.poses[-1] @ sim3_inverse(truth[k - 1])
                           @ pose)
        if k:
            graph.add_edge(full_edge(k, k - 1, points[k]))
            graph.add_edge(full_edge(k - 1, k, points[k - 1]))
        if loop and k == len(truth) - 1:
            for old in (0, 1):
                graph.add_edge(full_edge(k, old, points[k]))
                graph.add_edge(full_edge(old, k, points[old]))
        graph.optimise(lambda i: points[i])
    return graph.poses


@pytest.mark.parametrize("window", [4, 100])
def test_loop_closure_reduces_end_to_start_drift(window):
    # the path goes round once and ends beside its start (frame n sits at frame 0's place)
    truth = circle_poses(10, radius=3.0)[:9] + circle_poses(9, radius=3.0)[:1]
    truth[-1] = truth[-1].clone()
    truth[-1][:3, 3] += 0.3  # beside the start, not on it
    cloud = world_cloud(60)
    points = stretched_views(truth, cloud, 0.05)

    def end_drift(poses: list[torch.Tensor]) -> float:
        return float((poses[-1][:3, 3] - truth[-1][:3, 3]).norm())

    open_loop = end_drift(run_stream(truth, points, loop=False, window=window))
    closed = end_drift(run_stream(truth, points, loop=True, window=window))
    assert open_loop > 0.5 and closed < 0.1 * open_loop


def test_edge_targets_bring_the_run_to_the_canonical_scale():
    gen = torch.Generator().manual_seed(3)
    pred_a, pred_b = (torch.rand(4, 5, 3, generator=gen) + 0.5 for _ in range(2))
    canonical = 2.5 * pred_a
    canonical[0, :2] *= 7.0  # a few pixels off: the median ratio ignores them
    usable = torch.ones(4, 5, dtype=torch.bool)
    usable[1] = False
    canonical[1] *= 3.0  # unusable pixels do not count
    pix_b = torch.tensor([0, 7, 19])
    target = edge_targets(canonical, pred_a, pred_b, usable, pix_b)
    assert torch.allclose(target, 2.5 * pred_b.reshape(-1, 3)[pix_b])


def canonical_scale(points: torch.Tensor, depth: np.ndarray) -> float:
    """The scale of a keyframe's canonical pointmap (H, W, 3) against the true depth."""
    z = torch.from_numpy(depth).double()
    return float((points[..., 2].double()[z > 0] / z[z > 0]).median())


@pytest.mark.parametrize("calibrated", [False, True])
def test_point_edges_give_the_true_keyframe_poses_on_exact_predictions(calibrated):
    # exact predictions, each decoder run at its own random scale: the back end's pose of the
    # second keyframe relative to the first is the scene's truth (their canonical scales from
    # the true depth); uncalibrated edges at integer matched pixels were 2e-3 off here
    # (rotation, centre)
    scene = generate_scene(frames=8, width=64, height=48, movers=0, seed=0, fps=2.5)
    exact = OracleCorruption.none().but(normalize=True, scale_sigma=0.3)
    intrinsics = torch.from_numpy(scene.intrinsics[0]) if calibrated else None
    with Mast3rSlam(Mast3rSlamOracle(scene, exact), intrinsics=intrinsics) as slam:
        for view in Mast3rSlamOracle(scene, exact).views():
            slam.push(view)
            if len(slam.keyframes) == 2:
                break
        first, second = slam.keyframes
        assert isinstance(slam.graph.edges[0], Edge)
        scales = [canonical_scale(k.points, scene.depth[k.index]) for k in (first, second)]
        estimate = sim3_inverse(first.pose_c2w) @ second.pose_c2w
    truth_c2w = [torch.from_numpy(scene.poses_c2w[k.index]) for k in (first, second)]
    truth = (torch.diag(torch.tensor([scales[0]] * 3 + [1.0], dtype=torch.float64))
             @ sim3_inverse(truth_c2w[0]) @ truth_c2w[1]
             @ torch.diag(torch.tensor([1 / scales[1]] * 3 + [1.0], dtype=torch.float64)))
    baseline = float(truth[:3, 3].norm())
    assert baseline > 0.05
    # calibrated, a's points sit on the rays of the matches' sub-pixel positions, which carry
    # the ray matching's interpolation error (measured 3e-5; 1.4e-3 / 2.2e-3 at the integer
    # matched pixels before)
    tol = 2e-4 if calibrated else 1e-6
    assert torch.allclose(estimate[:3, :3], truth[:3, :3], atol=tol)
    assert torch.allclose(estimate[:3, 3], truth[:3, 3], atol=tol * baseline)


def test_a_point_edge_comes_back_from_the_spill_bit_for_bit():
    gen = torch.Generator().manual_seed(4)
    target = torch.randn(6, 3, generator=gen)
    pix_b = torch.arange(6, dtype=torch.int32) * 5
    weight = torch.linspace(0.5, 1.5, 6)
    space = SpillSpace()
    store = SpillStore(space, "edge", capacity=1)
    edge = Edge(2, 5, target, pix_b, weight)
    store.add(edge)
    store.add(Edge(5, 2, target + 1, pix_b, weight))
    assert not edge.is_resident() and (edge.a, edge.b) == (2, 5)
    assert edge.target.dtype == torch.float32 and torch.equal(edge.target, target)
    assert torch.equal(edge.pix_b, pix_b) and torch.equal(edge.weight, weight)
    space.close()


def test_edges_leave_out_entries_on_pixels_dropped_afterwards():
    """`without_pixels` (a relocalised keyframe's movers, found after its edges were matched):
    b's pixels go; an edge reads no pixel of a, nor of a third keyframe."""
    pix_b = torch.tensor([5, 6, 7], dtype=torch.int32)
    weight, target = torch.tensor([1.0, 2.0, 3.0]), torch.arange(9.0).reshape(3, 3)
    dropped = torch.zeros(8, dtype=torch.bool)
    dropped[[1, 6]] = True
    edge = Edge(0, 1, target, pix_b, weight)
    on_b = edge.without_pixels(1, dropped)  # pixel 6 of b: the second entry goes
    assert on_b.pix_b.tolist() == [5, 7] and on_b.target.tolist() == [[0, 1, 2], [6, 7, 8]]
    assert on_b.weight.tolist() == [1.0, 3.0]
    assert edge.without_pixels(0, dropped) is edge
    assert edge.without_pixels(2, dropped) is edge
