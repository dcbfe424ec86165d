"""Golden runners of kinds `slam3r_i2p`, `slam3r_l2w` and `slam3r_corr`: SLAM3R's networks on
stored inputs and tiny checkpoints.

Everything comes from the case: the architecture (`model.constructor`, `model.kwargs`), the
checkpoints, the number of views, reference ids, depths and the tensors present per view. The
`.pth` and the Hugging Face folder must give identical outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

from recon4d.models.slam3r import select_scene_frames
from recon4d.models.slam3r.config import parse_slam3r_constructor, slam3r_config_from_hf
from recon4d.models.slam3r.loading import load_slam3r

Outputs = dict[str, np.ndarray]


def _image(u8: np.ndarray) -> torch.Tensor:
    """The network input of a stored uint8 image: (u8/255 - 0.5)/0.5 in float32."""
    return (torch.from_numpy(u8).float() / 255 - 0.5) / 0.5


def _views(case: dict, root: Path, n_views: int) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The case's view dicts (all stored keys; images only for `input_kind` img) and inputs."""
    tensors = load_file(str(root / case["files"]["inputs"]))
    views = []
    for k in range(n_views):
        prefix = f"view{k}."
        view = {name[len(prefix):]: torch.from_numpy(value) for name, value in tensors.items()
                if name.startswith(prefix) and name != f"{prefix}img_uint8"}
        if case["input_kind"] == "img":
            view["img"] = _image(tensors[f"{prefix}img_uint8"])
        views.append(view)
    known = {f"view{k}" for k in range(n_views)}
    extra = sorted(n for n in tensors if n.split(".")[0] not in known)
    assert not extra, f"{case['name']}: inputs that belong to none of {n_views} views: {extra}"
    return views, tensors


def _models(case: dict, root: Path) -> list[torch.nn.Module]:
    """The case's network loaded from `files.checkpoint` and from `files.hf_checkpoint`."""
    spec = case["model"]
    expected = parse_slam3r_constructor(spec["constructor"])
    assert slam3r_config_from_hf(spec["kwargs"], expected.arch) == expected, case["name"]
    models = []
    for key in ("checkpoint", "hf_checkpoint"):
        if key in case["files"]:
            model = load_slam3r(root / case["files"][key], expect=expected.arch,
                                need_encoder=expected.need_encoder)
            assert model.config == expected, f"{case['name']}: {key} built {model.config}"
            models.append(model)
    return models


def _run(case: dict, root: Path, forward: Callable[[torch.nn.Module], Outputs]) -> Outputs:
    """Outputs of the first checkpoint; the others must agree bit for bit."""
    with torch.no_grad():
        outputs = [forward(model) for model in _models(case, Path(root))]
    for other in outputs[1:]:
        for name, value in outputs[0].items():
            assert np.array_equal(value, other[name]), f"{case['name']}: {name} differs by file"
    return outputs[0]


def _flatten(preds: list[dict]) -> Outputs:
    return {f"pred{k}.{key}": value.numpy() for k, pred in enumerate(preds)
            for key, value in pred.items()}


def run_slam3r_i2p(case: dict, root: Path) -> Outputs:
    """`model(views, ref_id[, return_corr_score])`; token cases also the pre-norm encoder."""
    views, tensors = _views(case, Path(root), case["n_views"])

    def forward(model: torch.nn.Module) -> Outputs:
        out = _flatten(model(views, ref_id=case["ref_id"],
                             return_corr_score=case["return_corr_score"]))
        if case["input_kind"] == "img_tokens":
            for k in range(case["n_views"]):
                tokens, pos = model.encode_frames(_image(tensors[f"view{k}.img_uint8"]))
                out[f"encoder.view{k}.img_tokens"] = tokens.numpy()
                out[f"encoder.view{k}.img_pos"] = pos.numpy()
        return out

    return _run(case, root, forward)


def run_slam3r_l2w(case: dict, root: Path) -> Outputs:
    """`model(views, ref_ids)` with the stored points (either layout) and patch masks."""
    views, _ = _views(case, Path(root), case["n_views"])
    assert case["src_ids"] == [k for k in range(case["n_views"]) if k not in case["ref_ids"]]
    return _run(case, root, lambda model: _flatten(model(views, ref_ids=case["ref_ids"])))


def run_slam3r_corr(case: dict, root: Path) -> Outputs:
    """`get_corr_score(views, ref_id=0, depth)` on [sources] + candidates, then the selection."""
    views, _ = _views(case, Path(root), case["n_candidates"] + 1)

    def forward(model: torch.nn.Module) -> Outputs:
        scores = model.get_corr_score(views, ref_id=0, depth=case["depth"])
        view_scores, sel_ids = select_scene_frames(scores, case["sel_num"])
        return {"corr.patch_scores": scores.numpy(), "corr.view_scores": view_scores.numpy(),
                "corr.sel_ids": sel_ids.numpy()}

    return _run(case, root, forward)
