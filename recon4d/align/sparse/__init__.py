"""MASt3R's sparse alignment (sparse GA): cameras from descriptor matches, then dense depth.

`recon4d.align.global_align(predictions, method="sparse", matcher=...)` runs it; the stages
live in small modules: matches (computed once, optional content-hash cache), canonical views,
anchors, kinematic tree, parameters, losses, the Procrustes chain start and the two stages.
See docs/sparse.md.
"""

from recon4d.align.sparse.matches import Correspondences, MatchCache, Matcher
from recon4d.align.sparse.run import LEVELS, SparseSettings, SparseSolution, solve_sparse
from recon4d.align.sparse.solve import SCHEDULES

__all__ = ["LEVELS", "SCHEDULES", "Correspondences", "MatchCache", "Matcher", "SparseSettings",
           "SparseSolution", "solve_sparse"]
