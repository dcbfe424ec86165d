"""Two images without optimisation: cameras and depths straight from a symmetric pair."""

from __future__ import annotations

import torch

from recon4d.align.init_mst import (
    best_own_edges,
    edge_scores,
    initial_intrinsics,
    initial_state,
    pairwise_similarities,
)
from recon4d.align.inputs import PairData
from recon4d.align.known import CameraPriors
from recon4d.align.objective import Objective
from recon4d.align.state import AlignState
from recon4d.errors import InputError
from recon4d.geometry.umeyama import umeyama


def pair_view(data: PairData, priors: CameraPriors, objective: Objective) -> AlignState:
    """Cameras of two images from their pair predictions in both directions.

    The more confident direction (a, b) defines the world (camera a = identity, depths of a =
    z of its prediction). Camera b is the confidence-weighted similarity taking b's own-frame
    prediction (edge (b, a)) onto its prediction in camera a; its depths are that prediction's
    z times the similarity's scale. Focals by Weiszfeld on each own-frame prediction unless known.
    """
    if data.n_images != 2:
        raise InputError(f"the pair viewer aligns exactly two images, got {data.n_images}")
    scores = edge_scores(data)
    scores[data.edges[:, 0] == data.edges[:, 1]] = -torch.inf  # a self-pair reveals no pose
    if not torch.isfinite(scores).any():
        raise InputError("two images but only self-pairs: no pair links image 0 and image 1")
    own = best_own_edges(data, scores)
    e = int(scores.argmax())
    a, b = (int(v) for v in data.edges[e])
    back = int(own[b])
    f64 = torch.float64
    scale, rot, trans = umeyama(data.pts_i[back].reshape(1, -1, 3),
                                data.pts_j[e].reshape(1, -1, 3),
                                (data.conf_i[back] * data.conf_j[e]).reshape(1, -1))
    rots = torch.eye(3, dtype=f64).repeat(2, 1, 1)
    transl = torch.zeros(2, 3, dtype=f64)
    rots[b], transl[b] = rot[0], trans[0]
    depths = torch.empty(2, data.height, data.width)
    depths[a] = data.pts_i[e, ..., 2]
    depths[b] = float(scale[0]) * data.pts_i[back, ..., 2]
    state = initial_state(rots, transl, *initial_intrinsics(data, priors, own), depths)
    state.pw_scale, state.pw_rot, state.pw_trans = pairwise_similarities(
        data, state.world_points(), objective)
    return state
