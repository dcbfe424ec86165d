"""Golden runners of kinds `easi3r_attention` and `easi3r_masked_forward`.

Both load the case's checkpoint the inference way (Easi3R's loader builds the same network),
check the built configuration against the case's constructor, and run the stored pairs one per
forward (batch size 1, as the reference does) with the attention probes on; every tensor of each
forward is stacked over the pairs. Views carry `atten_mask` when the inputs hold one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

from recon4d.models.constructor import parse_constructor
from recon4d.models.loading import load_model
from recon4d.models.probes import probing

VIEW_TENSORS = ("img", "true_shape", "atten_mask")


def _pair_views(case: dict, root: Path) -> list[tuple[dict, dict]]:
    """(view1, view2) batch-of-one dicts of every stored pair, in order."""
    tensors = load_file(str(root / case["files"]["inputs"]))
    labels = case["views"]
    num = tensors["view1.img"].shape[0]
    pairs = []
    for k in range(num):
        sides = []
        for side in ("view1", "view2"):
            view = {name: torch.from_numpy(tensors[f"{side}.{name}"][k:k + 1])
                    for name in VIEW_TENSORS if f"{side}.{name}" in tensors}
            view.update(idx=[labels[side]["idx"][k]], instance=[labels[side]["instance"][k]])
            sides.append(view)
        pairs.append(tuple(sides))
    return pairs


def _probed_outputs(case: dict, root: Path) -> dict[str, np.ndarray]:
    """All outputs of the probed network, one forward per pair, stacked over the pairs."""
    root = Path(root)
    assert case["model"]["build"] == "easi3r_load_model", case["model"]["build"]
    model = load_model(root / case["files"]["checkpoint"])
    assert model.config == parse_constructor(case["model"]["constructor"]), (
        f"{case['name']}: built {model.config}")
    outputs: dict[str, list[np.ndarray]] = {}
    with torch.no_grad(), probing(model):
        for view1, view2 in _pair_views(case, root):
            pred1, pred2 = model(view1, view2)
            for side, pred in (("pred1", pred1), ("pred2", pred2)):
                for key, value in pred.items():
                    outputs.setdefault(f"{side}.{key}", []).append(value.numpy())
    return {name: np.concatenate(values) for name, values in outputs.items()}


def run_easi3r_attention(case: dict, root: Path) -> dict[str, np.ndarray]:
    """Cross-attention key maps and view-1 encoder features of every pair."""
    layers_heads = case["model"]["dec_depth"] * case["model"]["dec_num_heads"]
    out = _probed_outputs(case, root)
    for side in ("pred1", "pred2"):
        channels = out[f"{side}.cross_atten_maps_k"].shape[-1]
        assert channels == layers_heads, f"{case['name']}: {side} has {channels} channels"
    return out


def run_easi3r_masked_forward(case: dict, root: Path) -> dict[str, np.ndarray]:
    """Every output of the re-weighted forward (both views carry `atten_mask`)."""
    inputs = case["input_tensors"]
    assert "view1.atten_mask" in inputs and "view2.atten_mask" in inputs, case["name"]
    return _probed_outputs(case, root)
