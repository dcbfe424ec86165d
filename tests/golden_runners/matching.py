"""Golden runner for `reciprocal_nn`: fast reciprocal nearest neighbours at every block size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

from recon4d.matching.reciprocal import reciprocal_nn


def run_reciprocal_nn(case: dict, root: Path) -> dict[str, np.ndarray]:
    """Matches of `desc1` -> `desc2` for each block size of the case, as `bs{bs}.xy1` etc."""
    inputs = load_file(str(Path(root) / case["files"]["inputs"]))
    params = case["params"]
    assert params.get("pixel_tol", 0) == 0, "only grid seeds (pixel_tol = 0) are specified"
    desc1, desc2 = torch.from_numpy(inputs["desc1"]), torch.from_numpy(inputs["desc2"])
    out: dict[str, np.ndarray] = {}
    for bs in params["block_sizes"]:
        res = reciprocal_nn(desc1, desc2, subsample=params["subsample_or_initxy1"],
                            dist=params["dist"], block_size=bs, device=params.get("device"))
        if "query_batches_per_call" in case:
            assert res.queries_per_call == case["query_batches_per_call"], (
                f"{case['name']} bs={bs}: seeds per search {res.queries_per_call} != "
                f"{case['query_batches_per_call']}")
        out[f"bs{bs}.xy1"] = res.xy1(desc1.shape[1]).numpy()
        out[f"bs{bs}.xy2"] = res.xy2(desc2.shape[1]).numpy()
        out[f"bs{bs}.idx1"] = res.idx1.numpy()
        out[f"bs{bs}.idx2"] = res.idx2.numpy()
    return out
