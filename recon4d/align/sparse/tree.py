"""Kinematic tree of the sparse alignment: which image each camera is expressed relative to.

Pair score = number of matches. `hclust-ward` merges clusters by Ward linkage on the distance
1 - affinity and links the two clusters' representatives at each merge; `mst` is the maximum
spanning tree of the scores. The root is the most central node (double BFS), and edges are
listed in BFS order from it, so a parent always comes before its children.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import linkage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from scipy.spatial.distance import squareform

from recon4d.errors import InputError

UNMATCHED_DISTANCE = 2.0  # distance of a pair without matches (affinities lie in [0, 1])


@dataclass
class KinematicTree:
    """Root image and (parent, child) edges in BFS order; `parent[root] = -1`."""

    root: int
    edges: list[tuple[int, int]]
    parent: np.ndarray

    @property
    def order(self) -> list[int]:
        """Images in BFS order (root first)."""
        return [self.root] + [child for _, child in self.edges]


def affinity(scores: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """(N, N) affinity: matches / (3 min(#patches)) capped at 1, for symmetric `scores` (N, N)
    match counts and the number of patches (anchors) of each image (N,)."""
    least = np.minimum(patches[:, None], patches[None, :]).astype(np.float64)
    return np.minimum(scores / (3 * least), 1.0)


def hclust_ward_edges(aff: np.ndarray) -> list[tuple[int, int]]:
    """Undirected tree edges from Ward clustering on 1 - affinity (2 without matches).

    Each merge links the two clusters by their strongest pair (highest affinity across them).
    Only when no pair across them has matches does it link the clusters' representatives, the
    member with the larger total affinity (the reference always does: its tree may then hold
    pairs that share no match, whose cameras only the weak fallback ties)."""
    n = aff.shape[0]
    dist = np.where(aff > 0, 1.0 - aff, UNMATCHED_DISTANCE)
    np.fill_diagonal(dist, 0.0)
    merges = linkage(squareform(dist, checks=False), method="ward")
    total = aff.sum(axis=1) - np.diag(aff)
    members: list[list[int]] = [[k] for k in range(n)]  # scipy: new clusters n, n+1, ...
    rep = list(range(n))
    edges = []
    for a, b, *_ in merges:
        ma, mb = members[int(a)], members[int(b)]
        ra, rb = rep[int(a)], rep[int(b)]
        cross = aff[np.ix_(ma, mb)]
        if cross.max() > 0:
            ia, ib = np.unravel_index(int(np.argmax(cross)), cross.shape)
            edges.append((ma[ia], mb[ib]))
        else:
            edges.append((ra, rb))
        members.append(ma + mb)
        rep.append(ra if (total[ra], -ra) >= (total[rb], -rb) else rb)
    return edges


def mst_edges(aff: np.ndarray) -> list[tuple[int, int]]:
    """Undirected edges of the minimum spanning tree on 1 - affinity (2 without matches)."""
    # csgraph drops zero weights: shift every distance by 1 (a constant keeps the same tree)
    dist = np.where(aff > 0, 2.0 - aff, 1.0 + UNMATCHED_DISTANCE)
    np.fill_diagonal(dist, 0.0)
    tree = minimum_spanning_tree(dist).tocoo()
    return sorted((int(min(i, j)), int(max(i, j))) for i, j in zip(tree.row, tree.col,
                                                                       strict=True))


def require_connected(edges: np.ndarray, n: int) -> None:
    """InputError unless the pair graph `edges` (E, 2) connects all `n` images."""
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    if count > 1:
        alone = sorted(np.flatnonzero(labels != labels[0]).tolist())
        raise InputError(f"predictions: the pair graph does not connect the {n} images "
                         f"(images {alone} share no pair with image 0)")


def _bfs(adjacency: list[list[int]], start: int) -> tuple[np.ndarray, np.ndarray]:
    """Hop distances and BFS parents from `start` (neighbours visited in ascending order)."""
    n = len(adjacency)
    dist, parent = np.full(n, -1), np.full(n, -1)
    dist[start] = 0
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nb in sorted(adjacency[node]):
            if dist[nb] < 0:
                dist[nb], parent[nb] = dist[node] + 1, node
                queue.append(nb)
    return dist, parent


def rooted_tree(n: int, edges: list[tuple[int, int]]) -> KinematicTree:
    """Root the undirected spanning tree at its most central node (middle of a longest path,
    found by double BFS) and list its edges in BFS order."""
    adjacency: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        adjacency[a].append(b)
        adjacency[b].append(a)
    first, _ = _bfs(adjacency, 0)
    if (first < 0).any():
        raise InputError(f"the pair graph does not connect the {n} images")
    end = int(np.argmax(first))
    far, parent = _bfs(adjacency, end)
    path = [int(np.argmax(far))]
    while parent[path[-1]] >= 0:
        path.append(int(parent[path[-1]]))
    root = path[len(path) // 2]
    dist, parent = _bfs(adjacency, root)
    order = sorted(range(n), key=lambda k: (dist[k], k))
    tree_edges = [(int(parent[k]), k) for k in order if k != root]
    # BFS order: parents first; within a level, by the order their parents were reached
    rank = {node: pos for pos, node in enumerate(order)}
    tree_edges.sort(key=lambda e: (dist[e[1]], rank[e[0]], e[1]))
    return KinematicTree(root, tree_edges, parent)


def kinematic_tree(scores: np.ndarray, patches: np.ndarray, method: str = "hclust-ward"
                   ) -> KinematicTree:
    """The kinematic tree of N images from symmetric match counts `scores` (N, N)."""
    aff = affinity(np.asarray(scores, dtype=np.float64), np.asarray(patches))
    if method == "hclust-ward":
        edges = hclust_ward_edges(aff)
    elif method == "mst":
        edges = mst_edges(aff)
    else:
        raise InputError(f"unknown kinematic tree {method!r}; choose hclust-ward or mst")
    return rooted_tree(aff.shape[0], edges)
