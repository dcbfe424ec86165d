"""recon4d.inference: pair graphs, batched pair inference and the predictions format."""

from recon4d.inference.engine import infer_pairs
from recon4d.inference.graphs import make_pairs
from recon4d.inference.predictions import PairPredictions, ShapeGroup

__all__ = ["PairPredictions", "ShapeGroup", "infer_pairs", "make_pairs"]
