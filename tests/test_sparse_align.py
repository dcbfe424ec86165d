"""Sparse alignment (MASt3R sparse GA) stage by stage against hand-computed values and the
ground truth of synthetic scenes, then end to end on the oracle: static accuracy, movers with
motion masks, known cameras, failure modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon4d.align import KnownCameras, VideoTerms, global_align
from recon4d.align.inputs import as_pair_data
from recon4d.align.known import resolve_known
from recon4d.align.sparse import SparseSettings, solve_sparse
from recon4d.align.sparse.anchors import AnchorGrid, densify
from recon4d.align.sparse.canonical import canonical_views
from recon4d.align.sparse.init import chain_init
from recon4d.align.sparse.losses import rho
from recon4d.align.sparse.matches import EdgePredictions, MatchCache, collect_correspondences
from recon4d.align.sparse.problem import match_counts, match_terms
from recon4d.align.sparse.tree import affinity, kinematic_tree
from recon4d.errors import InputError
from recon4d.eval import pose_metrics
from recon4d.inference import infer_pairs, make_pairs
from recon4d.pipeline.reconstruct import sparse_matcher
from recon4d.synthetic import OracleCorruption, OracleModel, generate_scene

FRAMES, WIDTH, HEIGHT = 8, 64, 48


def predictions(scene, corruption=None, graph="complete"):
    oracle = OracleModel(scene, corruption, desc_dim=24)
    return infer_pairs(oracle, oracle.views(), make_pairs(scene.num_frames, graph),
                       progress=False)


@pytest.fixture(scope="module")
def static():
    scene = generate_scene(FRAMES, WIDTH, HEIGHT, movers=0, seed=0)
    return scene, predictions(scene)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One match cache for the module: the same predictions are matched once."""
    return tmp_path_factory.mktemp("matches")


def align_sparse(preds, cache, **kwargs):
    """`global_align(method="sparse")` with the default matcher and the module's cache."""
    return global_align(preds, method="sparse", matcher=sparse_matcher(), match_cache=cache,
                        **kwargs)


def ate_percent(est_poses: np.ndarray, scene) -> float:
    path = np.linalg.norm(np.diff(scene.poses_c2w[:, :3, 3], axis=0), axis=1).sum()
    return 100 * pose_metrics(est_poses, scene.poses_c2w, align="sim3")["ate"] / path


# --- stages ---------------------------------------------------------------------------------

def test_rho_has_unit_slope_at_zero_and_the_closed_form():
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    for gamma in (0.5, 1.1, 1.5):
        (grad,) = torch.autograd.grad(rho(x, gamma).sum(), x)
        assert float(rho(x, gamma).detach()) == 0 and float(grad) == pytest.approx(1.0, rel=1e-9)
    # gamma 1.5: o = (2/3)^2 = 4/9, rho(1) = (13/9)^1.5 - (4/9)^1.5
    assert float(rho(torch.tensor(1.0, dtype=torch.float64), 1.5)) == pytest.approx(
        (13 / 9) ** 1.5 - (4 / 9) ** 1.5)
    # gamma 0.5 is robust: far errors grow like sqrt
    big = rho(torch.tensor([100.0, 400.0], dtype=torch.float64), 0.5)
    assert float(big[1] / big[0]) == pytest.approx(2.0, rel=0.05)


def test_affinity_is_matches_over_three_min_patches_capped_at_one():
    scores = np.array([[0, 30, 300], [30, 0, 0], [300, 0, 0]], float)
    aff = affinity(scores, np.array([10, 20, 40]))
    assert aff[0, 1] == pytest.approx(30 / 30) and aff[0, 2] == 1.0 and aff[1, 2] == 0


@pytest.mark.parametrize("method", ["hclust-ward", "mst"])
def test_tree_on_a_chain_roots_in_the_middle(method):
    """Chain 0-1-2-3-4 (neighbours strongly matched, 0-2 weakly): the tree is the chain, its
    root the middle image, edges in BFS order."""
    scores = np.zeros((5, 5))
    for a, b, m in ((0, 1, 90), (1, 2, 80), (2, 3, 85), (3, 4, 95), (0, 2, 5)):
        scores[a, b] = scores[b, a] = m
    tree = kinematic_tree(scores, np.full(5, 100), method)
    assert tree.root == 2
    assert tree.edges == [(2, 1), (2, 3), (1, 0), (3, 4)]
    assert tree.order == [2, 1, 3, 0, 4] and tree.parent.tolist() == [1, 2, -1, 2, 3]


def test_tree_on_a_star_roots_at_the_hub():
    scores = np.zeros((5, 5))
    for leaf in (0, 1, 3, 4):
        scores[2, leaf] = scores[leaf, 2] = 50 + leaf
    for method in ("hclust-ward", "mst"):
        tree = kinematic_tree(scores, np.full(5, 100), method)
        assert tree.root == 2 and sorted(tree.edges) == [(2, 0), (2, 1), (2, 3), (2, 4)]


def test_a_disconnected_pair_graph_is_refused(cache):
    scene = generate_scene(4, WIDTH, HEIGHT, movers=0, seed=2)
    oracle = OracleModel(scene, desc_dim=24)
    preds = infer_pairs(oracle, oracle.views(), np.array([[0, 1], [1, 0], [2, 3], [3, 2]]),
                        progress=False)
    with pytest.raises(InputError, match=r"does not connect the 4 images \(images \[2, 3\]"):
        align_sparse(preds, cache)


def test_anchor_grid_blocks_and_offsets_by_hand():
    grid = AnchorGrid(HEIGHT, WIDTH)
    assert grid.shape == (6, 8) and grid.count == 48
    xy = torch.tensor([[13, 21], [0, 0], [63, 47]])
    assert grid.anchor_of(xy).tolist() == [2 * 8 + 1, 0, 47]
    assert grid.pixels()[17].tolist() == [12, 20]
    odd = AnchorGrid(20, 10)  # partial last blocks: centres clipped inside the image
    assert odd.shape == (3, 2) and odd.pixels()[-1].tolist() == [9, 19]
    depth = torch.full((1, HEIGHT, WIDTH), 2.0, dtype=torch.float64)
    depth[0, 21, 13] = 3.0
    off = grid.offsets(depth)
    assert float(off[0, 21, 13]) == 1.5 and float(off[0, 0, 0]) == 1.0


def test_densification_reproduces_the_canonical_depth(static):
    scene, preds = static
    depth = torch.from_numpy(scene.depth.astype(np.float64))
    depth = torch.where(depth > 0, depth, torch.ones_like(depth))
    grid = AnchorGrid(HEIGHT, WIDTH)
    dense = densify(grid.sample(depth), grid.offsets(depth), grid,
                    torch.ones(FRAMES, dtype=torch.float64))
    torch.testing.assert_close(dense, depth, rtol=1e-12, atol=0)
    # a focal change f0 -> f scales each pixel's offset from its anchor by f0 / f
    ratio = torch.full((FRAMES,), 0.5, dtype=torch.float64)
    half = densify(grid.sample(depth), grid.offsets(depth), grid, ratio)
    anchor = grid.sample(depth)[:, grid.index_map()]
    torch.testing.assert_close(half, anchor + 0.5 * (depth - anchor))


def test_canonical_view_is_the_true_geometry_on_exact_predictions():
    scene = generate_scene(4, WIDTH, HEIGHT, movers=0, seed=1)
    data = as_pair_data(predictions(scene, OracleCorruption.none()))
    canon = canonical_views(data)
    surface = scene.depth > 0
    np.testing.assert_allclose(canon.depth.numpy()[surface], scene.depth[surface], rtol=1e-5)
    np.testing.assert_allclose(canon.focal.numpy(), scene.intrinsics[:, 0, 0], rtol=0.005)
    assert (canon.conf >= 1).all()


class CountingMatcher:
    """A matcher with fixed answers that counts its calls (stands in for the real search)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, pred1, pred2, mask1, mask2):
        self.calls += 1
        xy1 = torch.tensor([[1, 2], [3, 4], [1, 2]])
        xy2 = torch.tensor([[5, 6], [7, 8], [5, 6]])
        return xy1, xy2, torch.tensor([2.0, 3.0, 4.0])


def test_matches_both_orders_deduplicated_once_and_cached_by_content(tmp_path):
    scene = generate_scene(3, WIDTH, HEIGHT, movers=0, seed=2)
    preds = predictions(scene)
    edges = EdgePredictions(preds)
    matcher = CountingMatcher()
    corrs = collect_correspondences(edges, matcher)
    assert matcher.calls == 6 and [(c.i, c.j) for c in corrs] == [(0, 1), (0, 2), (1, 2)]
    # edge (0, 1) gives (1,2)<->(5,6) twice (conf 2, 4) and (3,4)<->(7,8); edge (1, 0) the
    # same pixels the other way round: (5,6) in image 0 <-> (1,2) in image 1, ...
    c = corrs[0]
    got = {(tuple(a), tuple(b)): float(w) for a, b, w in zip(c.xy_i.tolist(), c.xy_j.tolist(),
                                                             c.conf, strict=True)}
    assert got == {((1, 2), (5, 6)): 4.0, ((3, 4), (7, 8)): 3.0, ((5, 6), (1, 2)): 4.0,
                   ((7, 8), (3, 4)): 3.0}
    cache = MatchCache(tmp_path / "cache", "counting")
    collect_correspondences(edges, matcher, cache=cache)
    assert matcher.calls == 12
    again = collect_correspondences(edges, matcher, cache=cache)
    assert matcher.calls == 12 and torch.equal(again[0].xy_i, c.xy_i)
    masks = torch.ones(3, HEIGHT, WIDTH, dtype=torch.bool)
    masks[0, 0, 0] = False  # other masks: other content, new searches
    collect_correspondences(edges, matcher, masks=masks, cache=cache)
    assert matcher.calls == 18


def test_subpixel_matches_keep_their_offsets_through_deduplication():
    """A matcher giving float positions: each end is stored as its nearest pixel plus the rest,
    a duplicate keeps the offsets of its most confident copy, and the losses see the exact
    positions while anchors and depth ratios come from the pixels."""
    scene = generate_scene(2, WIDTH, HEIGHT, movers=0, seed=2)
    edges = EdgePredictions(predictions(scene))

    def matcher(pred1, pred2, mask1, mask2):
        xy1 = torch.tensor([[1, 2], [9, 9], [1, 2]])
        xy2 = torch.tensor([[5.25, 6.0], [16.5, 8.75], [4.75, 6.25]], dtype=torch.float64)
        return xy1, xy2, torch.tensor([2.0, 3.0, 4.0])

    corrs = collect_correspondences(edges, matcher)
    c = corrs[0]
    # both decoder orders: (0, 1) keeps image 0 on integers, (1, 0) image 1; 16.5 rounds to even
    got = {(tuple(a), tuple(b)): (tuple(sa), tuple(sb)) for a, b, sa, sb in zip(
        c.xy_i.tolist(), c.xy_j.tolist(), c.shift_i.tolist(), c.shift_j.tolist(), strict=True)}
    assert got == {((1, 2), (5, 6)): ((0.0, 0.0), (-0.25, 0.25)),
                   ((9, 9), (16, 9)): ((0.0, 0.0), (0.5, -0.25)),
                   ((5, 6), (1, 2)): ((-0.25, 0.25), (0.0, 0.0)),
                   ((16, 9), (9, 9)): ((0.5, -0.25), (0.0, 0.0))}
    grid = AnchorGrid(HEIGHT, WIDTH)
    offsets = torch.rand(2, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(0)) + 0.5
    terms = match_terms(corrs, grid, offsets)
    assert torch.equal(terms.pix_a, c.exact_i()) and torch.equal(terms.pix_b, c.exact_j())
    assert torch.equal(terms.anc_b, grid.anchor_of(c.xy_j))
    assert torch.equal(terms.off_b, offsets[1, c.xy_j[:, 1], c.xy_j[:, 0]].double())


def test_chain_init_recovers_the_cameras_of_exact_predictions():
    scene = generate_scene(6, WIDTH, HEIGHT, movers=0, seed=1)
    preds = predictions(scene, OracleCorruption.none())
    data = as_pair_data(preds)
    corrs = collect_correspondences(EdgePredictions(preds), sparse_matcher())
    canon = canonical_views(data)
    grid = AnchorGrid(HEIGHT, WIDTH)
    tree = kinematic_tree(match_counts(corrs, 6), np.full(6, grid.count))
    init = chain_init(tree, corrs, canon, data, grid, resolve_known(None, 6, HEIGHT, WIDTH))
    poses = np.tile(np.eye(4), (6, 1, 1))
    poses[:, :3, :3], poses[:, :3, 3] = init.rot.numpy(), init.centre.numpy()
    # matches sit on integer pixels of both images: half a pixel of disagreement per match
    assert ate_percent(poses, scene) < 2.0
    assert float(init.size[tree.root]) == 1.0


# --- end to end -----------------------------------------------------------------------------

def test_static_scene_meets_the_accuracy_targets(static, cache):
    scene, preds = static
    out = align_sparse(preds, cache)
    assert ate_percent(out.poses_c2w, scene) <= 1.0
    focal_err = np.median(np.abs(out.intrinsics[:, 0, 0] / scene.intrinsics[:, 0, 0] - 1))
    assert focal_err <= 0.02
    rot = out.poses_c2w[:, :3, :3]
    assert np.allclose(rot @ rot.transpose(0, 2, 1), np.eye(3), atol=1e-6)
    assert out.depths.shape == (FRAMES, HEIGHT, WIDTH) and (out.depths > 0).all()
    assert np.array_equal(out.images, scene.rgb) and out.masks.mean() > 0.5


def test_fast_schedule_reaches_the_3d_optimum_and_beats_the_reference(static):
    """The fast schedule runs the 3D stage to the optimum MASt3R's 300 Adam steps reach, then a
    short 2D stage: its cameras are closer to the ground truth than the reference schedule's."""
    scene, preds = static
    data = as_pair_data(preds)
    corrs = collect_correspondences(EdgePredictions(preds), sparse_matcher())
    priors = resolve_known(None, FRAMES, HEIGHT, WIDTH)
    runs = {s: solve_sparse(data, corrs, priors, SparseSettings(schedule=s), conf_threshold=3.0)
            for s in ("fast", "reference")}
    assert runs["fast"].stages["coarse"].end <= 1.01 * runs["reference"].stages["coarse"].end
    ate, focal = {}, {}
    for name, sol in runs.items():
        poses = np.tile(np.eye(4), (FRAMES, 1, 1))
        poses[:, :3, :3], poses[:, :3, 3] = sol.rot.numpy(), sol.trans.numpy()
        ate[name] = ate_percent(poses, scene)
        focal[name] = np.median(np.abs(sol.focals.numpy() / scene.intrinsics[:, 0, 0] - 1))
    assert ate["fast"] <= min(0.5, ate["reference"])
    assert focal["fast"] <= min(0.005, focal["reference"])


def test_movers_with_motion_masks_stay_close_to_the_frozen_scene(cache):
    frozen = generate_scene(FRAMES, WIDTH, HEIGHT, movers=2, seed=0, freeze_movers=True)
    moving = generate_scene(FRAMES, WIDTH, HEIGHT, movers=2, seed=0)
    reference = align_sparse(predictions(frozen), cache)
    masked = align_sparse(predictions(moving), cache,
                          video=VideoTerms(dynamic_masks=moving.dynamic_mask))
    assert ate_percent(masked.poses_c2w, moving) <= 1.5 * ate_percent(reference.poses_c2w,
                                                                      frozen)
    np.testing.assert_array_equal(masked.dynamic_masks, moving.dynamic_mask)


def test_known_cameras_fixed_and_initial(static, cache):
    scene, preds = static
    focals = scene.intrinsics[:, 0, 0]
    fixed = align_sparse(preds, cache, known=KnownCameras(
        focals=focals, poses_c2w=scene.poses_c2w, fix=True))
    np.testing.assert_allclose(fixed.intrinsics[:, 0, 0], focals)
    np.testing.assert_allclose(fixed.poses_c2w, scene.poses_c2w)
    surface = scene.depth > 0  # two or more fixed poses fix the scale: depths come out metric
    assert np.median(fixed.depths[surface] / scene.depth[surface]) == pytest.approx(1, abs=0.03)
    # initial poses: the result lands in the poses' world and scale (no alignment needed)
    start = align_sparse(preds, cache, known=KnownCameras(poses_c2w=scene.poses_c2w, fix=False))
    path = np.linalg.norm(np.diff(scene.poses_c2w[:, :3, 3], axis=0), axis=1).sum()
    err = np.linalg.norm(start.poses_c2w[:, :3, 3] - scene.poses_c2w[:, :3, 3], axis=1)
    assert err.max() <= 0.02 * path


def test_shared_intrinsics_give_one_focal(static, cache):
    scene, preds = static
    out = align_sparse(preds, cache, sparse=SparseSettings(shared_intrinsics=True, tree="mst"))
    assert np.ptp(out.intrinsics[:, 0, 0]) == 0
    assert abs(out.intrinsics[0, 0, 0] / scene.intrinsics[0, 0, 0] - 1) <= 0.02


def test_dust3r_predictions_and_a_missing_matcher_are_refused(static, cache):
    scene, preds = static
    oracle = OracleModel(scene)  # no descriptors: what DUSt3R gives
    dust3r = infer_pairs(oracle, oracle.views(), make_pairs(3, "complete"), progress=False)
    with pytest.raises(InputError, match="descriptors"):
        align_sparse(dust3r, cache)
    with pytest.raises(InputError, match="matcher"):
        global_align(preds, method="sparse")
    with pytest.raises(InputError, match="method"):
        global_align(preds, method="sideways")
