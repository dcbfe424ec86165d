"""Pair graphs: the reference pair order (docs/algorithms.md, "Pair graphs"), hand-derived from
the graph definitions."""

from __future__ import annotations

import numpy as np
import pytest

from recon4d.errors import Recon4dError
from recon4d.inference.graphs import make_pairs

# docs/algorithms.md, "Pair graphs": n=6, swin-2 (cyclic), in the reference's set iteration order
SPEC_SWIN2_N6 = [(0, 1), (2, 4), (1, 2), (0, 4), (3, 4), (1, 5), (2, 3), (0, 2), (4, 5), (0, 5),
                 (1, 3), (3, 5)]


def pairs(*args, **kwargs) -> list[tuple[int, int]]:
    edges = make_pairs(*args, **kwargs)
    assert edges.dtype == np.int64 and edges.ndim == 2 and edges.shape[1] == 2
    return [tuple(e) for e in edges.tolist()]


def swapped(edges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(j, i) for i, j in edges]


def test_swin_matches_the_spec_example_and_symmetrize_appends_swapped_copies():
    assert pairs(6, "swin-2", symmetrize=False) == SPEC_SWIN2_N6
    assert pairs(6, "swin-2") == SPEC_SWIN2_N6 + swapped(SPEC_SWIN2_N6)


def test_noncyclic_swin_drops_the_wrapped_pairs_and_keeps_the_order():
    wrapped = {(0, 4), (0, 5), (1, 5)}  # i + d >= 6 for d <= 2
    expected = [p for p in SPEC_SWIN2_N6 if p not in wrapped]
    assert pairs(6, "swin-2-noncyclic", symmetrize=False) == expected


def test_logwin_offsets_are_powers_of_two_both_ways():
    # offsets ±1, ±2 on 6 images give the same set as swin-2, hence the same set order
    assert pairs(6, "logwin-2", symmetrize=False) == SPEC_SWIN2_N6
    # offsets 1, 2, 4 without wrapping on 8 images: every pair at distance 1, 2 or 4
    expected = {(i, j) for i in range(8) for j in range(i + 1, 8) if j - i in (1, 2, 4)}
    got = pairs(8, "logwin-3-noncyclic", symmetrize=False)
    assert len(got) == len(expected) and set(got) == expected


def test_logwin_cyclic_never_pairs_an_image_with_itself():
    # n=4, offsets ±1, ±2, ±4: 4 wraps to i itself and is skipped
    got = pairs(4, "logwin-3", symmetrize=False)
    assert set(got) == {(i, j) for i in range(4) for j in range(i + 1, 4)}


def test_cyclic_swin_wider_than_the_set_yields_self_pairs_like_the_reference():
    got = pairs(3, "swin-3", symmetrize=False)
    assert set(got) == {(0, 1), (0, 2), (1, 2), (0, 0), (1, 1), (2, 2)}


def test_swin_window_defaults_to_three():
    assert pairs(9, "swin") == pairs(9, "swin-3")
    assert pairs(9, "swin-noncyclic") == pairs(9, "swin-3-noncyclic")


def test_complete_order():
    assert pairs(4, "complete", symmetrize=False) == [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1),
                                                      (3, 2)]
    assert pairs(1, "complete") == []


def test_oneref():
    assert pairs(4, "oneref-2") == [(2, 0), (2, 1), (2, 3), (0, 2), (1, 2), (3, 2)]
    assert pairs(3, "oneref", symmetrize=False) == [(0, 1), (0, 2)]


def test_prefilters_keep_order_and_use_circular_distance_for_cyc():
    # complete on 4 images, symmetrized: (1,0),(2,0),(2,1),(3,0),(3,1),(3,2) + swapped copies
    assert pairs(4, "complete", prefilter="seq1") == [(1, 0), (2, 1), (3, 2), (0, 1), (1, 2),
                                                      (2, 3)]
    assert pairs(4, "complete", prefilter="cyc1") == [(1, 0), (2, 1), (3, 0), (3, 2), (0, 1),
                                                      (1, 2), (0, 3), (2, 3)]


def test_number_of_images_may_be_given_as_a_list_of_views():
    views = [{"idx": i} for i in range(5)]
    assert pairs(views, "swin-1") == pairs(5, "swin-1")


@pytest.mark.parametrize("graph", ["star", "swin-x", "swin-2-cyclic", "oneref-a", "complete-3"])
def test_unknown_graph_lists_the_valid_ones(graph):
    with pytest.raises(Recon4dError, match=r"unknown pair graph.*complete.*swin-K.*logwin-K"):
        make_pairs(5, graph)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(Recon4dError, match="reference image 7 does not exist"):
        make_pairs(4, "oneref-7")
    with pytest.raises(Recon4dError, match="window size must be >= 1"):
        make_pairs(4, "swin-0")
    with pytest.raises(Recon4dError, match="unknown pair prefilter 'near3'.*seqN"):
        make_pairs(4, "complete", prefilter="near3")
