"""PLY reading for the evaluation: re-exported from `recon4d.io.ply`, where it lives."""

from recon4d.io.ply import parse_header, read_ply_points

__all__ = ["parse_header", "read_ply_points"]
