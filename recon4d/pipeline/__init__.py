"""recon4d.pipeline: end-to-end runs (frames or predictions -> aligned scene or motion masks ->
output files)."""

from recon4d.pipeline.reconstruct import (
    ReconstructOptions,
    ReconstructResult,
    reconstruct,
    summary_line,
)

__all__ = ["ReconstructOptions", "ReconstructResult", "reconstruct", "summary_line"]
