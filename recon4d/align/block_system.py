"""Symmetric block-sparse systems of the pose graph, solved without the dense matrix.

The normal equations of the pose step couple two cameras only through an edge of the pair
graph (or a video term between two frames), so they are stored as the N diagonal blocks and one
block per distinct camera pair (i < j). For video pair graphs (neighbours within a window, the
cyclic variant's wrap-around too once reordered) the cameras can be ordered so that every pair
is at most a few positions apart (reverse Cuthill-McKee): grouping `band` consecutive cameras
into a chunk makes the system block-tridiagonal in the chunks, whose Cholesky factor takes
O(N band s^2) memory instead of the dense matrix's O(N^2 s^2). A band that is a large fraction
of N (complete graphs, random far edges) is solved densely, as is a system that Cholesky finds
not positive definite (LU, the dense path's solver, still gives its solution).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

# the banded solve is used when the ordered band is at most this fraction of the cameras
BAND_FRACTION = 0.25
# cameras per chunk at least (fewer, larger Cholesky steps for narrow bands)
MIN_CHUNK = 8
SOLVERS = ("auto", "band", "dense")


@dataclass
class BlockSystem:
    """Symmetric matrix of N x N blocks of size s: `diag` (N, s, s) and the upper blocks `off`
    (E, s, s) at the distinct camera pairs `pairs` (E, 2), i < j (block (j, i) is off^T).
    `order`: the pairs' `band_order`, found on the first solve and kept by the systems derived
    with the same pairs (a Levenberg-Marquardt loop solves many)."""

    diag: Tensor
    pairs: Tensor
    off: Tensor
    order: tuple[Tensor, int] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def zeros(cls, n: int, rows: Tensor, cols: Tensor, like: Tensor) -> BlockSystem:
        """The zero system with blocks at the positions (rows, cols) (K,) and their mirrors,
        blocks of the size (last two dimensions), dtype and device of `like`."""
        apart = rows != cols
        lo = torch.minimum(rows[apart], cols[apart])
        keys = torch.unique(lo * n + torch.maximum(rows[apart], cols[apart]))
        block = like.shape[-2:]
        return cls(like.new_zeros(n, *block), torch.stack((keys // n, keys % n), dim=-1),
                   like.new_zeros(len(keys), *block))

    @classmethod
    def from_blocks(cls, n: int, rows: Tensor, cols: Tensor, blocks: Tensor) -> BlockSystem:
        """The symmetric part of the sum of the blocks (K, s, s) at block positions (rows, cols)
        (K,): give a symmetric matrix's off-diagonal contributions on both sides (block (i, j)
        and block (j, i) = its transpose); each such pair is averaged into one upper block."""
        return cls.zeros(n, rows, cols, blocks).add_(rows, cols, blocks)

    def add_(self, rows: Tensor, cols: Tensor, blocks: Tensor) -> BlockSystem:
        """Add, in place, the blocks' symmetric part as `from_blocks` does; every position must
        be one of the system's blocks."""
        on = rows == cols
        self.diag.index_add_(0, rows[on], blocks[on])
        rows, cols, blocks = rows[~on], cols[~on], blocks[~on]
        upper = rows < cols
        wanted = torch.where(upper, rows, cols) * self.n + torch.where(upper, cols, rows)
        keys = self.pairs[:, 0] * self.n + self.pairs[:, 1]
        at = torch.searchsorted(keys, wanted)
        if len(wanted) and not bool((keys[at.clamp(max=len(keys) - 1)] == wanted).all()):
            raise ValueError("block system: a block outside the system's camera pairs")
        mirrored = torch.where(upper[:, None, None], blocks, blocks.transpose(1, 2))
        self.off.index_add_(0, at, mirrored / 2)
        return self

    @property
    def n(self) -> int:
        return self.diag.shape[0]

    @property
    def size(self) -> int:
        return self.diag.shape[-1]

    def _contributions(self) -> tuple[Tensor, Tensor, Tensor]:
        """(rows, cols, blocks) of every stored block and its mirror, for `from_blocks`."""
        index = torch.arange(self.n, device=self.diag.device)
        i, j = self.pairs[:, 0], self.pairs[:, 1]
        return (torch.cat((index, i, j)), torch.cat((index, j, i)),
                torch.cat((self.diag, self.off, self.off.transpose(1, 2))))

    def __add__(self, other: BlockSystem) -> BlockSystem:
        parts = zip(self._contributions(), other._contributions(), strict=True)
        return BlockSystem.from_blocks(self.n, *(torch.cat(p) for p in parts))

    def matvec(self, x: Tensor) -> Tensor:
        """H x for x (N s,)."""
        xb = x.reshape(self.n, self.size, 1)
        i, j = self.pairs[:, 0], self.pairs[:, 1]
        out = (self.diag @ xb)[..., 0]
        out = out.index_add(0, i, (self.off @ xb[j])[..., 0])
        out = out.index_add(0, j, (self.off.transpose(1, 2) @ xb[i])[..., 0])
        return out.reshape(-1)

    def diagonal(self) -> Tensor:
        """(N s,) the matrix diagonal."""
        return torch.diagonal(self.diag, dim1=-2, dim2=-1).reshape(-1)

    def masked(self, free: Tensor) -> BlockSystem:
        """The rows and columns of the entries `free` (N s,) 0/1 kept, the others replaced by
        those of the identity (a fixed unknown's step is 0)."""
        f = free.reshape(self.n, self.size)
        i, j = self.pairs[:, 0], self.pairs[:, 1]
        diag = self.diag * f[:, :, None] * f[:, None, :] + torch.diag_embed(1 - f)
        return BlockSystem(diag, self.pairs, self.off * f[i][:, :, None] * f[j][:, None, :],
                           self.order)

    def with_diagonal(self, extra: Tensor) -> BlockSystem:
        """The matrix plus diag(extra), extra (N s,)."""
        diag = self.diag + torch.diag_embed(extra.reshape(self.n, self.size))
        return BlockSystem(diag, self.pairs, self.off, self.order)

    def dense(self) -> Tensor:
        """The (N s, N s) matrix, camera by camera."""
        n, s = self.n, self.size
        full = self.diag.new_zeros(n, n, s, s)
        rows, cols, blocks = self._contributions()
        full[rows, cols] = blocks
        return full.permute(0, 2, 1, 3).reshape(n * s, n * s)

    def solve(self, rhs: Tensor, solver: str = "auto") -> Tensor:
        """x with H x = rhs (N s,). `solver`: 'band' (block-banded Cholesky in the order of
        `band_order`), 'dense' (LU of the dense matrix) or 'auto' (band when the ordered band
        is at most BAND_FRACTION of N). The band solve falls back to the dense one when H is
        not positive definite."""
        if solver not in SOLVERS:
            raise ValueError(f"block system solver must be one of {SOLVERS}, got {solver!r}")
        if solver != "dense":
            if self.order is None:
                self.order = band_order(self.pairs, self.n)
            order, band = self.order
            if solver == "band" or band <= BAND_FRACTION * self.n:
                x = _banded_solve(self, rhs, order, band)
                if x is not None:
                    return x
        return torch.linalg.solve(self.dense(), rhs)


def bandwidth(pairs: Tensor, position: Tensor | None = None) -> int:
    """max |pos_i - pos_j| over the pairs (0 without pairs), cameras at `position` (N,)."""
    if len(pairs) == 0:
        return 0
    at = pairs if position is None else position[pairs]
    return int((at[:, 0] - at[:, 1]).abs().max())


def band_order(pairs: Tensor, n: int) -> tuple[Tensor, int]:
    """(order, band): the camera order (N,) (position k holds camera order[k]), the natural
    one or reverse Cuthill-McKee's, whichever has the smaller band, and that band."""
    natural = torch.arange(n, device=pairs.device)
    band = bandwidth(pairs)
    if band <= 1:
        return natural, band
    order = torch.tensor(_reverse_cuthill_mckee(pairs.tolist(), n), device=pairs.device)
    position = torch.empty_like(order)
    position[order] = natural
    rcm_band = bandwidth(pairs, position)
    return (order, rcm_band) if rcm_band < band else (natural, band)


def _reverse_cuthill_mckee(pairs: list[list[int]], n: int) -> list[int]:
    """Breadth-first order from a least-connected camera, neighbours by increasing degree,
    every connected component in turn; reversed."""
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for i, j in pairs:
        neighbours[i].append(j)
        neighbours[j].append(i)
    degree = [len(nb) for nb in neighbours]
    for nb in neighbours:
        nb.sort(key=lambda v: (degree[v], v))
    seen = [False] * n
    order: list[int] = []
    for start in sorted(range(n), key=lambda v: (degree[v], v)):
        if seen[start]:
            continue
        seen[start] = True
        head = len(order)
        order.append(start)
        while head < len(order):
            for v in neighbours[order[head]]:
                if not seen[v]:
                    seen[v] = True
                    order.append(v)
            head += 1
    return order[::-1]


def _banded_solve(system: BlockSystem, rhs: Tensor, order: Tensor, band: int) -> Tensor | None:
    """Block-tridiagonal Cholesky solve over chunks of at least `band` consecutive cameras in
    `order` (every pair then lies within a chunk or between neighbouring chunks); None if the
    matrix is not positive definite."""
    n, s = system.n, system.size
    g = min(max(band, MIN_CHUNK), n)
    chunks = -(-n // g)
    position = torch.empty_like(order)
    position[order] = torch.arange(n, device=order.device)
    # per chunk: its diagonal block and its block to the left of the diagonal (chunk k, k - 1),
    # as (chunk, frame, frame, s, s) before the (chunk, frame s, frame s) reshape
    d = system.diag.new_zeros(chunks, g, g, s, s)
    left = system.diag.new_zeros(chunks, g, g, s, s)
    pad = torch.arange(n, chunks * g, device=order.device)
    d[pad // g, pad % g, pad % g] = torch.eye(s, dtype=d.dtype, device=d.device)
    d[position // g, position % g, position % g] = system.diag
    pi, pj = position[system.pairs[:, 0]], position[system.pairs[:, 1]]
    swap = pi < pj  # keep (later, earlier) positions: the lower block H[later, earlier]
    later, earlier = torch.where(swap, pj, pi), torch.where(swap, pi, pj)
    lower = torch.where(swap[:, None, None], system.off.transpose(1, 2), system.off)
    same = later // g == earlier // g
    rows, cols = later % g, earlier % g
    d.index_put_((later[same] // g, rows[same], cols[same]), lower[same], accumulate=True)
    d.index_put_((later[same] // g, cols[same], rows[same]), lower[same].transpose(1, 2),
                 accumulate=True)
    left.index_put_((later[~same] // g, rows[~same], cols[~same]), lower[~same], accumulate=True)
    m = g * s
    d = d.permute(0, 1, 3, 2, 4).reshape(chunks, m, m)
    left = left.permute(0, 1, 3, 2, 4).reshape(chunks, m, m)
    b = rhs.new_zeros(chunks * g, s)
    b[position] = rhs.reshape(n, s)
    b = b.reshape(chunks, m, 1)
    # factor and forward substitution: L_k L_k^T = D_k - C_k C_k^T, C_k = left_k L_{k-1}^-T
    factors, couplings, ys, infos = [], [], [], []
    for k in range(chunks):
        dk, bk = d[k], b[k]
        if k:
            ck = torch.linalg.solve_triangular(factors[-1], left[k].T, upper=False).T
            dk, bk = dk - ck @ ck.T, bk - ck @ ys[-1]
            couplings.append(ck)
        lk, info = torch.linalg.cholesky_ex(dk)
        factors.append(lk)
        infos.append(info)
        ys.append(torch.linalg.solve_triangular(lk, bk, upper=False))
    if bool(torch.stack(infos).any()):
        return None
    # back substitution: L_k^T x_k = y_k - C_{k+1}^T x_{k+1}
    xs = [torch.linalg.solve_triangular(factors[-1].T, ys[-1], upper=True)]
    for k in range(chunks - 2, -1, -1):
        yk = ys[k] - couplings[k].T @ xs[-1]
        xs.append(torch.linalg.solve_triangular(factors[k].T, yk, upper=True))
    x = torch.cat(xs[::-1]).reshape(chunks * g, s)
    return x[position].reshape(-1)
