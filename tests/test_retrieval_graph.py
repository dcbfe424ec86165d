"""`retrieval-Na-k` pair graphs (MASt3R-SfM): hand-derived graphs on images whose similarity is
minus their distance along a line, and the errors of a missing or malformed similarity."""

from __future__ import annotations

import numpy as np
import pytest

from recon4d.errors import Recon4dError
from recon4d.inference.graphs import farthest_point_sampling, make_pairs


def line_similarity(positions: list[float]) -> np.ndarray:
    """Images at `positions` on a line: the closer two are, the more alike."""
    x = np.asarray(positions, dtype=float)
    return 1.0 - np.abs(x[:, None] - x[None, :])


def pairs(*args, **kwargs) -> list[tuple[int, int]]:
    return [tuple(e) for e in make_pairs(*args, **kwargs).tolist()]


def test_two_keys_and_one_neighbour_on_a_line_give_the_hand_derived_graph():
    # keys 0 then 5 (farthest); 1, 2 join key 0 and 3, 4 join key 5; each image's nearest other
    # image: 0-1, 1-0 (tie 0/2 -> lower), 2-1 (tie 1/3 -> lower), 3-2, 4-3, 5-4
    expected = [(0, 5), (0, 1), (0, 2), (3, 5), (4, 5), (1, 2), (2, 3), (3, 4)]
    sim = line_similarity([0, 1, 2, 3, 4, 5])
    assert pairs(6, "retrieval-2-1", symmetrize=False, similarity=sim) == expected
    swapped = [(j, i) for i, j in expected]
    assert pairs(6, "retrieval-2-1", similarity=sim) == expected + swapped


def test_farthest_point_sampling_follows_the_similarity_not_the_index_order():
    # images 0..4 shuffled along the line: 0 at 2, 1 at 0, 2 at 10, 3 at 5, 4 at 9
    dist = 1.0 - line_similarity([2, 0, 10, 5, 9])
    # from image 0 (at 2): image 2 (at 10) is 8 away; then image 3 (at 5, 3 from the nearest
    # key) beats image 1 (2 away) and image 4 (1 away); then 1, then 4
    assert farthest_point_sampling(dist, 3) == [0, 2, 3]
    assert farthest_point_sampling(dist, 5) == [0, 2, 3, 1, 4]
    assert farthest_point_sampling(dist, 0) == []


def test_neighbours_alone_link_each_image_to_its_k_most_similar_others():
    sim = line_similarity([0, 1, 2, 10, 11, 12])  # two separate groups of three
    got = set(pairs(6, "retrieval-0-2", symmetrize=False, similarity=sim))
    assert got == {(0, 1), (0, 2), (1, 2), (3, 4), (3, 5), (4, 5)}


def test_enough_keys_or_neighbours_give_the_complete_graph():
    sim = line_similarity([0, 3, 1, 7, 2])
    complete = {(j, i) for i, j in pairs(5, "complete", symmetrize=False)}
    for graph in ("retrieval", "retrieval-20-0", "retrieval-0-10", "retrieval-5-4"):
        got = pairs(5, graph, symmetrize=False, similarity=sim)
        assert len(got) == len(set(got)) and set(got) == complete, graph


def test_no_self_pairs_and_no_pairs_for_fewer_than_two_images():
    assert pairs(1, "retrieval-20-10", similarity=np.ones((1, 1))) == []
    assert pairs(0, "retrieval-20-10", similarity=np.zeros((0, 0))) == []


def test_a_retrieval_graph_without_a_good_similarity_is_a_clear_error():
    with pytest.raises(Recon4dError, match="'retrieval-20-10' needs an image similarity"):
        make_pairs(4, "retrieval-20-10")
    with pytest.raises(Recon4dError, match="must be finite and 4x4.*shape \\(3, 3\\)"):
        make_pairs(4, "retrieval-20-10", similarity=np.eye(3))
    with pytest.raises(Recon4dError, match="must be finite"):
        make_pairs(2, "retrieval-1-1", similarity=np.array([[1.0, np.nan], [0.0, 1.0]]))
    for graph in ("retrieval-3", "retrieval-a-2", "retrieval-1-2-3"):
        with pytest.raises(Recon4dError, match="unknown pair graph"):
            make_pairs(4, graph, similarity=np.eye(4))
