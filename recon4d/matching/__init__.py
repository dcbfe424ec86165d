"""recon4d.matching: MASt3R dense matching (fast reciprocal nearest neighbours), optionally
restricted to foreground masks, with matches in original-image pixels, relative pose and 3D
points. See docs/algorithms.md, "Matching"."""

from recon4d.matching.coords import LoaderGeometry, loader_geometry
from recon4d.matching.export import save_matches
from recon4d.matching.masks import mask_to_model, mask_to_original, read_mask
from recon4d.matching.pipeline import (
    MatchOptions,
    PairMatches,
    match_descriptors,
    match_graph,
    match_pair,
    match_predictions,
    prepare_images,
)
from recon4d.matching.reciprocal import ReciprocalResult, nearest_neighbours, reciprocal_nn
from recon4d.matching.two_view import TwoView, two_view_geometry
from recon4d.matching.visualize import draw_matches, match_picture

__all__ = [
    "LoaderGeometry", "MatchOptions", "PairMatches", "ReciprocalResult", "TwoView",
    "draw_matches", "loader_geometry", "mask_to_model", "mask_to_original", "match_descriptors",
    "match_graph", "match_pair", "match_picture", "match_predictions", "nearest_neighbours",
    "prepare_images", "read_mask", "reciprocal_nn", "save_matches", "two_view_geometry",
]
