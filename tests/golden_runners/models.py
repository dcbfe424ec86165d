"""Golden runner of kind `model_forward`: the pair network on stored inputs and tiny checkpoints.

Everything (checkpoint, shapes, views, call style) comes from the case. `call == "inference"`
replays the reference's batch inference: the batch is split into pairs and collated back (img
concatenated, true_shape as an int32 tensor, idx/instance as lists) before one `model(view1,
view2)` call; `"direct"` calls the model on the stored batch dicts. Both run in eval mode without
gradients.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

from recon4d.models.constructor import parse_constructor
from recon4d.models.loading import load_model


def _views(case: dict, root: Path) -> tuple[dict, dict]:
    """The stored batch dicts of both sides."""
    tensors = load_file(str(root / case["files"]["inputs"]))
    lists = json.loads((root / case["files"]["views"]).read_text())
    assert lists["view1"] == case["views"]["view1"] and lists["view2"] == case["views"]["view2"]
    return tuple(
        {"img": torch.from_numpy(tensors[f"{side}.img"]),
         "true_shape": torch.from_numpy(tensors[f"{side}.true_shape"]),
         "idx": list(lists[side]["idx"]), "instance": list(lists[side]["instance"])}
        for side in ("view1", "view2"))


def _recollate(view: dict) -> dict:
    """Split a batch dict into single-pair views and collate them back as the reference does."""
    singles = [{"img": view["img"][k:k + 1], "true_shape": view["true_shape"][k:k + 1].numpy(),
                "idx": view["idx"][k], "instance": view["instance"][k]}
               for k in range(view["img"].shape[0])]
    return {"img": torch.cat([s["img"] for s in singles]),
            "true_shape": torch.from_numpy(np.concatenate([s["true_shape"] for s in singles])),
            "idx": [s["idx"] for s in singles], "instance": [s["instance"] for s in singles]}


def _forward(model: torch.nn.Module, views: tuple[dict, dict], call: str) -> dict[str, np.ndarray]:
    if call == "inference":
        views = tuple(_recollate(v) for v in views)
    elif call != "direct":
        raise AssertionError(f"unknown model_forward call {call!r}")
    with torch.no_grad():
        pred1, pred2 = model(*views)
    return {f"{side}.{key}": value.numpy() for side, pred in (("pred1", pred1), ("pred2", pred2))
            for key, value in pred.items()}


def run_model_forward(case: dict, root: Path) -> dict[str, np.ndarray]:
    """Outputs of the checkpoint's network on the case inputs (also from `hf_checkpoint`).

    The Hugging Face folder stores the inference construction (`landscape_only=False`), so it is
    compared only for cases built the official loader's way (`model.build == "load_model"`).
    """
    root = Path(root)
    files = case["files"]
    as_trained = {"load_model": False, "constructor_verbatim": True}[case["model"]["build"]]
    expected_config = parse_constructor(case["model"]["constructor"])
    views = _views(case, root)
    model = load_model(root / files["checkpoint"], as_trained=as_trained)
    assert model.config == expected_config, f"{case['name']}: built {model.config}"
    actual = _forward(model, views, case["call"])
    if "hf_checkpoint" in files and not as_trained:
        hf_model = load_model(root / files["hf_checkpoint"])
        assert hf_model.config == expected_config, f"{case['name']}: HF built {hf_model.config}"
        hf_actual = _forward(hf_model, views, case["call"])
        for name, value in actual.items():
            assert np.array_equal(value, hf_actual[name]), f"{case['name']}: HF {name} differs"
    return actual
