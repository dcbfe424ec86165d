"""recon4d: dense 3D/4D reconstruction with the DUSt3R model family."""

__version__ = "0.1.0"
