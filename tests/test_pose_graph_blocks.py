"""Block-sparse pose-graph systems against dense matrices built here block by block: assembly,
products, masking, and the banded Cholesky solve against LU of the dense matrix on random SPD
systems (banded, banded with far edges, cyclic, complete, disconnected); the pose solvers give
the same poses with the banded and the dense solve."""

from __future__ import annotations

import pytest
import torch

from recon4d.align import pose_graph
from recon4d.align.block_system import BlockSystem, band_order, bandwidth
from recon4d.align.pose_graph import (
    edge_similarities,
    reduced_system,
    solve_camera_similarities,
    solve_poses,
    virtual_residuals,
)
from recon4d.align.pose_terms import pair_quadratic
from recon4d.align.smooth_term import smooth_quadratic
from recon4d.geometry.rotations import so3_exp
from recon4d.synthetic.pose_graph_problem import pose_graph_problem

F64 = torch.float64
S = 7


def window_pairs(n: int, k: int, cyclic: bool = False) -> list[tuple[int, int]]:
    """(i, j) for every i and j = i + 1 .. i + k (mod n when cyclic)."""
    return sorted({(min(i, (i + d) % n), max(i, (i + d) % n)) for i in range(n)
                   for d in range(1, k + 1) if cyclic or i + d < n})


def random_system(n: int, pairs: list[tuple[int, int]], seed: int = 0
                  ) -> tuple[BlockSystem, torch.Tensor]:
    """A Gauss-Newton-like SPD system: per pair a residual block J = (A, B) on (d_i, d_j), per
    camera a prior C; returned block-sparse (from per-side contributions) and dense (summed
    here slice by slice)."""
    gen = torch.Generator().manual_seed(seed)
    dense = torch.zeros(n * S, n * S, dtype=F64)
    rows, cols, blocks = [], [], []

    def add(i: int, j: int, block: torch.Tensor) -> None:
        dense[i * S:(i + 1) * S, j * S:(j + 1) * S] += block
        rows.append(i)
        cols.append(j)
        blocks.append(block)

    for i in range(n):
        c = torch.randn(S, S, generator=gen, dtype=F64)
        add(i, i, 0.1 * c.T @ c + 0.01 * torch.eye(S, dtype=F64))
    for i, j in pairs:
        a, b = torch.randn(2, 9, S, generator=gen, dtype=F64)
        add(i, i, a.T @ a)
        add(j, j, b.T @ b)
        add(i, j, a.T @ b)
        add(j, i, b.T @ a)
    system = BlockSystem.from_blocks(n, torch.tensor(rows), torch.tensor(cols),
                                     torch.stack(blocks))
    return system, dense


GRAPHS = {
    "banded": (40, window_pairs(40, 3)),
    "banded + far edges": (40, window_pairs(40, 3) + [(0, 9), (20, 29)]),
    "cyclic": (48, window_pairs(48, 3, cyclic=True)),
    "complete": (10, window_pairs(10, 9)),
    "disconnected": (12, [(0, 1), (1, 2), (5, 6), (9, 11)]),
    "no pairs": (5, []),
}


@pytest.mark.parametrize("name", GRAPHS)
def test_assembly_and_products_match_the_dense_matrix(name):
    n, pairs = GRAPHS[name]
    system, dense = random_system(n, pairs)
    torch.testing.assert_close(system.dense(), dense, rtol=1e-12, atol=1e-12)
    x = torch.randn(n * S, dtype=F64)
    torch.testing.assert_close(system.matvec(x), dense @ x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(system.diagonal(), torch.diagonal(dense))
    extra = torch.rand(n * S, dtype=F64)
    torch.testing.assert_close(system.with_diagonal(extra).dense(), dense + torch.diag(extra))
    other, other_dense = random_system(n, pairs[::2] + [(0, n - 1)] if n > 1 else [], seed=1)
    torch.testing.assert_close((system + other).dense(), dense + other_dense,
                               rtol=1e-12, atol=1e-12)
    free = (torch.rand(n * S) > 0.3).to(F64)
    want = dense * free[:, None] * free[None, :] + torch.diag(1 - free)
    torch.testing.assert_close(system.masked(free).dense(), want)


@pytest.mark.parametrize("name", GRAPHS)
@pytest.mark.parametrize("solver", ["auto", "band"])
def test_solve_matches_lu_of_the_dense_matrix(name, solver):
    n, pairs = GRAPHS[name]
    system, dense = random_system(n, pairs, seed=2)
    rhs = torch.randn(n * S, dtype=F64)
    want = torch.linalg.solve(dense, rhs)
    got = system.solve(rhs, solver)
    assert float((got - want).norm() / want.norm()) < 1e-9
    assert float((dense @ got - rhs).norm() / rhs.norm()) < 1e-10


def test_orders_keep_window_graphs_narrow():
    for n, k in ((48, 3), (200, 5)):
        pairs = torch.tensor(window_pairs(n, k, cyclic=True))
        assert bandwidth(pairs) == n - 1  # the wrap-around pairs
        order, band = band_order(pairs, n)
        assert sorted(order.tolist()) == list(range(n))
        position = torch.empty_like(order)
        position[order] = torch.arange(n)
        assert band == bandwidth(pairs, position) <= 3 * k
        open_pairs = torch.tensor(window_pairs(n, k))
        assert band_order(open_pairs, n)[1] == k


def test_solve_falls_back_to_lu_on_an_indefinite_matrix():
    n, pairs = GRAPHS["banded"]
    system, dense = random_system(n, pairs, seed=3)
    shift = torch.zeros(n * S, dtype=F64)
    shift[5 * S + 2] = -1e3  # one large negative diagonal entry: indefinite, still invertible
    rhs = torch.randn(n * S, dtype=F64)
    want = torch.linalg.solve(dense + torch.diag(shift), rhs)
    got = system.with_diagonal(shift).solve(rhs, "band")
    assert float((got - want).norm() / want.norm()) < 1e-9


def test_solve_rejects_an_unknown_solver_and_adding_outside_the_pattern():
    system, _ = random_system(3, [(0, 1)])
    with pytest.raises(ValueError, match="'sparse'"):
        system.solve(torch.zeros(3 * S, dtype=F64), "sparse")
    with pytest.raises(ValueError, match="outside"):
        system.add_(torch.tensor([0]), torch.tensor([2]), torch.zeros(1, S, S, dtype=F64))


def test_pair_quadratic_hessian_is_the_relative_pose_model():
    """Blocks M at (a, a) and (b, b), -M at (a, b) and (b, a) per pair, for d_b - d_a."""
    n = 6
    pairs = torch.tensor([[0, 1], [1, 2], [4, 1], [2, 5], [0, 1]])
    gen = torch.Generator().manual_seed(4)
    jac = torch.randn(len(pairs), 4, 6, generator=gen, dtype=F64)
    moment = jac.transpose(1, 2) @ jac
    rot = so3_exp(0.2 * torch.randn(n, 3, generator=gen, dtype=F64))
    model = pair_quadratic(pairs, moment, torch.zeros(len(pairs), 6, dtype=F64),
                           torch.zeros((), dtype=F64), rot, torch.zeros(n, 3, dtype=F64))
    want = torch.zeros(6 * n, 6 * n, dtype=F64)
    for (a, b), m in zip(pairs.tolist(), moment, strict=True):
        sa, sb = slice(6 * a, 6 * a + 6), slice(6 * b, 6 * b + 6)
        want[sa, sa] += m
        want[sb, sb] += m
        want[sa, sb] -= m
        want[sb, sa] -= m
    torch.testing.assert_close(model.hess.dense(), want, rtol=1e-12, atol=1e-12)


def assert_relative_close(got: torch.Tensor, want: torch.Tensor) -> None:
    assert float((got - want).norm() / want.norm()) < 1e-8


@pytest.mark.parametrize("graph", ["swin-3-noncyclic", "swin-3"])
def test_solve_poses_is_the_same_with_the_banded_solve(graph):
    moments, edges, rot, trans, fixed = pose_graph_problem(40, graph).solver_args()
    smooth = smooth_quadratic(rot, trans, 1.0, 0.5, 1e-3)
    for extra in ((), (smooth,)):
        results = [solve_poses(moments, edges, rot, trans, fixed, scale_pull=0.1, extra=extra,
                               solver=solver) for solver in ("dense", "band")]
        (dense_rot, dense_trans, dense_sim), (band_rot, band_trans, band_sim) = results
        assert float((dense_rot - rot).norm()) > 1e-3  # the poses moved
        assert_relative_close(band_rot, dense_rot)
        assert_relative_close(band_trans, dense_trans)
        assert_relative_close(band_sim[0], dense_sim[0])


def test_camera_similarities_are_the_same_with_the_banded_solve():
    moments, edges, rot, trans, fixed = pose_graph_problem(40, "swin-3").solver_args()
    dense = solve_camera_similarities(moments, edges, rot, trans, fixed, scale_pull=0.1,
                                      solver="dense")
    band = solve_camera_similarities(moments, edges, rot, trans, fixed, scale_pull=0.1,
                                     solver="band")
    for got, want in zip(band[:3], dense[:3], strict=True):
        assert_relative_close(got, want)


def test_reduced_system_does_not_depend_on_the_edge_batches(monkeypatch):
    moments, edges, rot, trans, fixed = pose_graph_problem(12, "swin-3").solver_args()
    sim = edge_similarities(moments, edges, rot, trans)
    v = virtual_residuals(moments)
    whole = reduced_system(v, edges, 12, rot, trans, sim, 0.1, camera_scale=True)
    monkeypatch.setattr(pose_graph, "EDGE_CHUNK", 7)  # 72 edges in 11 batches
    batched = reduced_system(v, edges, 12, rot, trans, sim, 0.1, camera_scale=True)
    torch.testing.assert_close(batched[0].dense(), whole[0].dense(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(batched[1], whole[1], rtol=1e-12, atol=1e-12)
