"""Golden `easi3r_aggregation` cases: stored attention maps through `recon4d.dynamics`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

from recon4d.dynamics.aggregation import (
    aggregate_attention,
    dynamic_map,
    fuse_channels,
    minmax_normalize,
)

# golden tensor stem -> AttentionStats field (the reference calls the standard deviation "var")
STATS = {
    "cross_att_k_i_mean": "k_i_mean",
    "cross_att_k_i_var": "k_i_std",
    "cross_att_k_j_mean": "k_j_mean",
    "cross_att_k_j_var": "k_j_std",
}


def run_easi3r_aggregation(case: dict, root: Path) -> dict[str, np.ndarray]:
    """Aggregated, normalized and fused statistics and the dynamic map of the case's clip."""
    inputs = load_file(str(Path(root) / case["files"]["inputs"]))
    stats = aggregate_attention(torch.from_numpy(inputs["edges"]),
                                torch.from_numpy(inputs["pairs.pred1.cross_atten_maps_k"]),
                                torch.from_numpy(inputs["pairs.pred2.cross_atten_maps_k"]),
                                n_frames=inputs["frames.img"].shape[0])
    out = {"dynamic_map": dynamic_map(stats).numpy()}
    for stem, field in STATS.items():
        stat = getattr(stats, field)
        out[f"aggregated.{stem}"] = stat.numpy()
        out[f"normalized.{stem}"] = minmax_normalize(stat).numpy()
        out[f"fused.{stem}"] = fuse_channels(stat).numpy()
    return out
