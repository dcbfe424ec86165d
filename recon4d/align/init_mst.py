"""Initial cameras and depths by chaining pair predictions along a maximum spanning tree."""

from __future__ import annotations

import torch
from torch import Tensor

from recon4d.align.focal import FOCAL_RANGE, estimate_focal
from recon4d.align.inputs import PairData
from recon4d.align.known import CameraPriors
from recon4d.align.objective import Objective
from recon4d.align.state import AlignState
from recon4d.errors import InputError
from recon4d.geometry.transforms import apply_similarity, apply_transform, invert_rigid, make_rigid
from recon4d.geometry.umeyama import PairMoments, point_moments, umeyama, umeyama_from_moments


def edge_scores(data: PairData) -> Tensor:
    """Edge score mean(C_i) * mean(C_j) on raw confidences, (E,)."""
    return data.conf_i.mean((1, 2)).double() * data.conf_j.mean((1, 2)).double()


def _find(parent: list[int], a: int) -> int:
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


def maximum_spanning_tree(edges: Tensor, scores: Tensor, n_images: int) -> list[int]:
    """Indices of the edges of a maximum spanning tree (Kruskal), by decreasing score.

    Directions are ignored; of two edges joining the same images the better one is used.
    A pair graph that does not connect every image raises InputError listing the groups.
    """
    parent = list(range(n_images))
    tree = []
    pairs = edges.tolist()  # one transfer: the loop below runs on Python ints
    for e in torch.argsort(scores, descending=True, stable=True).tolist():
        i, j = pairs[e]
        ri, rj = _find(parent, i), _find(parent, j)
        if ri != rj:
            parent[ri] = rj
            tree.append(e)
    if len(tree) < n_images - 1:
        groups: dict[int, list[int]] = {}
        for k in range(n_images):
            groups.setdefault(_find(parent, k), []).append(k)
        listed = "; ".join(str(g) for g in sorted(groups.values()))
        raise InputError(f"the pair graph is disconnected ({len(groups)} groups of images that "
                         f"share no pair: {listed}); add pairs between them or align them apart")
    return tree


def best_own_edges(data: PairData, scores: Tensor) -> Tensor:
    """For each image, the best-scoring edge where it is the first view (its own camera frame)."""
    n = data.n_images
    best, best_score = [-1] * n, [-float("inf")] * n
    for e, (i, score) in enumerate(zip(data.edges[:, 0].tolist(), scores.tolist(), strict=True)):
        if score > best_score[i]:
            best[i], best_score[i] = e, score
    missing = [k for k in range(n) if best[k] < 0]
    if missing:
        raise InputError(f"images {missing} are never the first view of a pair, so their own "
                         "camera frame is unknown; use a symmetric pair graph")
    return torch.tensor(best, dtype=torch.long)


def _place_along_tree(data: PairData, tree: list[int], objective: Objective
                      ) -> tuple[list[Tensor], list[Tensor | None], list[Tensor | None]]:
    """World pointmaps of every image (camera of the best edge's first view = world), and the
    camera poses the tree edges reveal (None where an image is never a tree edge's first view).
    Registrations are weighted by confidence times the objective's static weights."""
    n = data.n_images
    world: list[Tensor | None] = [None] * n
    rot: list[Tensor | None] = [None] * n
    trans: list[Tensor | None] = [None] * n
    pairs = data.edges.tolist()
    i, j = pairs[tree[0]]
    world[i], world[j] = data.pts_i[tree[0]], data.pts_j[tree[0]]
    rot[i], trans[i] = torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    pending = tree[1:]
    while pending:
        deferred = []
        for e in pending:
            i, j = pairs[e]
            if world[i] is not None:
                src, dst, wgt, known, other_pts, other = (data.pts_i[e], world[i], data.conf_i[e],
                                                          i, data.pts_j[e], j)
            elif world[j] is not None:
                src, dst, wgt, known, other_pts, other = (data.pts_j[e], world[j], data.conf_j[e],
                                                          j, data.pts_i[e], i)
            else:
                deferred.append(e)
                continue
            wgt = wgt.reshape(1, -1) * objective.static_weights(torch.tensor([known]))
            s, r, t = umeyama(src.reshape(1, -1, 3), dst.reshape(1, -1, 3), wgt)
            world[other] = apply_similarity(r, t, other_pts[None], s)[0]
            if rot[i] is None:
                rot[i], trans[i] = r[0], t[0]
        pending = deferred
    return world, rot, trans


def similarity_to_known(rot: Tensor, trans: Tensor, priors: CameraPriors
                        ) -> tuple[Tensor, Tensor, Tensor]:
    """Similarity (scale (1,), R (1, 3, 3), t (1, 3)) taking estimated cameras onto known poses.

    Two or more known poses: fitted on each camera's centre and a point ahead of it (centre +
    eps * optical axis, eps = median camera distance / 100). One: a rigid motion.
    """
    mask = priors.pose_mask
    kr, kt = priors.poses[mask, :3, :3], priors.poses[mask, :3, 3]
    er, et = rot[mask], trans[mask]
    if int(mask.sum()) == 1:
        turn = kr @ er.transpose(1, 2)
        return (torch.ones(1, dtype=torch.float64), turn,
                kt - (turn @ et[..., None])[..., 0])

    def probe(r: Tensor, t: Tensor) -> Tensor:
        eps = torch.pdist(t).median().clamp(min=1e-12) / 100
        return torch.cat((t, t + eps * r[:, :, 2]))[None]
    return umeyama(probe(er, et), probe(kr, kt),
                            torch.ones(1, 2 * len(kt), dtype=torch.float64))


def pairwise_similarities(data: PairData, world: Tensor, objective: Objective,
                          ) -> tuple[Tensor, Tensor, Tensor]:
    """Per edge, the similarity taking P_i^e onto image i's world points (weights C_i^e times
    the objective's static weights)."""
    moms = []
    for c in objective.chunks():
        weights = data.conf_i[c.sl].reshape(c.pts_i.shape[:2]) * objective.static_weights(c.idx_i)
        moms.append(point_moments(c.pts_i, world.reshape(world.shape[0], -1, 3)[c.idx_i],
                                  weights))
    cat = PairMoments(*(torch.cat([getattr(m, f) for m in moms]) for f in
                        ("weight", "mean_src", "mean_dst", "cross", "var_src")))
    return umeyama_from_moments(cat)


def initial_intrinsics(data: PairData, priors: CameraPriors, own: Tensor
                       ) -> tuple[Tensor, Tensor]:
    """(focals, pps): the known ones, else Weiszfeld on each image's own-frame prediction
    (kept within FOCAL_RANGE) with the principal point at the image centre."""
    if priors.focals is not None:
        return priors.focals.clone(), priors.pps.clone()
    pps = torch.tensor([data.width / 2, data.height / 2], dtype=torch.float64)
    pps = pps.repeat(data.n_images, 1)
    focals = estimate_focal(data.pts_i[own], pps.float(), min_focal=FOCAL_RANGE[0],
                            max_focal=FOCAL_RANGE[1]).double()
    return focals, pps


def initial_state(rot: Tensor, trans: Tensor, focals: Tensor, pps: Tensor,
                  depths: Tensor) -> AlignState:
    """A state with non-positive or non-finite depths replaced by the median valid depth and no
    edge similarities yet."""
    good = torch.isfinite(depths) & (depths > 0)
    fill = depths[good].median() if good.any() else depths.new_tensor(1.0)
    f64 = torch.float64
    return AlignState(rot, trans, focals, pps, torch.where(good, depths, fill).contiguous(),
                      torch.empty(0, dtype=f64), torch.empty(0, 3, 3, dtype=f64),
                      torch.empty(0, 3, dtype=f64))


def mst_init(data: PairData, priors: CameraPriors, objective: Objective,
             shared_focal: bool = False) -> AlignState:
    """The reference's `mst` initialisation (see the module doc of `recon4d.align`).

    Cameras a tree edge does not reveal get their pose by registering their best own-frame
    prediction onto their world points (instead of PnP); focals come from Weiszfeld on that
    prediction unless known (`shared_focal`: their mean for every image). The world is then
    moved onto known poses, and scaled so that the geometric mean of the pairwise scales is 0.5
    when no pose is known. Registrations use the objective's static weights (moving pixels out).
    """
    n = data.n_images
    scores = edge_scores(data)
    tree = maximum_spanning_tree(data.edges, scores, n)
    own = best_own_edges(data, scores)
    placed, rot_list, trans_list = _place_along_tree(data, tree, objective)
    world = torch.stack(placed)
    missing = [k for k in range(n) if rot_list[k] is None]
    if missing:
        _, r, t = umeyama(data.pts_i[own[missing]].reshape(len(missing), -1, 3),
                          world[missing].reshape(len(missing), -1, 3),
                          data.conf_i[own[missing]].reshape(len(missing), -1)
                          * objective.static_weights(torch.tensor(missing)))
        for k, m in enumerate(missing):
            rot_list[m], trans_list[m] = r[k], t[k]
    rot, trans = torch.stack(rot_list), torch.stack(trans_list)
    focals, pps = initial_intrinsics(data, priors, own)
    if shared_focal and priors.focals is None:
        focals = focals.mean().expand_as(focals).clone()
    cam = apply_transform(invert_rigid(make_rigid(rot, trans)), world)
    state = initial_state(rot, trans, focals, pps, cam[..., 2])
    if priors.n_known_poses:
        sim = similarity_to_known(state.rot, state.trans, priors)
        state.apply_similarity(*sim)
        mask = priors.pose_mask
        state.rot[mask], state.trans[mask] = priors.poses[mask, :3, :3], priors.poses[mask, :3, 3]
        world = state.world_points()
    state.pw_scale, state.pw_rot, state.pw_trans = pairwise_similarities(data, world, objective)
    if not priors.n_known_poses:
        state.normalise_scale()
    return state
