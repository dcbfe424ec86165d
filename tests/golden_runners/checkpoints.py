"""Golden runners of kinds `checkpoint` (tiny official files) and `keys` (full-size key lists).

Both assert and return None. Weight checksums use a rigorous bound: float32 values and their
squares are exact in float64 (24-bit mantissas, 48-bit products); summing n float64 terms in any
order (pairwise, blocked, FMA dot products) errs by at most γ_n·Σ|x|, γ_n = n·u/(1 - n·u),
u = 2**-53 (Higham, "Accuracy and Stability of Numerical Algorithms", §3.1 and §4.2); the golden
sums are correctly rounded (error <= u·|s|). So |ours - golden| <= 2·n·u·Σ|x| for any n·u < 1/2,
whatever order torch uses; a wrong, swapped or zeroed tensor moves a sum by far more.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from recon4d.models.constructor import parse_constructor
from recon4d.models.loading import Checkpoint, load_model, match_keys, open_checkpoint
from recon4d.models.network import build_model

UNIT_ROUNDOFF = 2.0**-53


def run_checkpoint(case: dict, root: Path) -> None:
    """Load `files.pth` (and `files.hf_dir`) and compare with `files.keys` and the case fields."""
    root = Path(root)
    files = case["files"]
    listing = json.loads((root / files["keys"]).read_text())
    pth = root / files["pth"]
    inference_config = parse_constructor(case["load_model_constructor"])
    assert open_checkpoint(pth).config == inference_config
    assert open_checkpoint(pth, as_trained=True).config == parse_constructor(case["constructor"])
    model = load_model(pth)
    _check_loaded(case, listing, model)
    if "hf_dir" in files:
        hf_dir = root / files["hf_dir"]
        assert open_checkpoint(hf_dir).config == inference_config
        hf_model = load_model(hf_dir)
        _check_loaded(case, listing, hf_model)
        hf_state = hf_model.state_dict()
        for key, tensor in model.state_dict().items():
            assert torch.equal(tensor, hf_state[key]), f"{case['name']}: {key} differs in hf_dir"


def run_keys(case: dict, root: Path) -> None:
    """Build both constructors of a full-size model on the meta device; compare with `files.keys`.

    Also checks that the loader accepts, strictly, the `.pth` key set and the Hugging Face key set
    (alias keys dropped) of that architecture.
    """
    listing = json.loads((Path(root) / case["files"]["keys"]).read_text())
    expected = [(e["key"], tuple(e["shape"]), e["dtype"]) for e in listing["state_dict"]]
    expected_aliases = sorted(sorted(group) for group in listing["aliases"])
    dropped = sorted(listing["hf_safetensors_keys_dropped"])
    for text in (case["constructor"], case["load_model_constructor"]):
        config = parse_constructor(text)
        model = build_model(config, device="meta")
        state = model.state_dict(keep_vars=True)
        actual = [(k, tuple(t.shape), _dtype_name(t)) for k, t in state.items()]
        assert actual == expected, f"{case['name']}: {_first_difference(actual, expected)}"
        assert len(state) == listing["num_tensors"] == case["num_tensors"]
        assert sum(t.numel() for t in state.values()) == listing["num_params_state_dict"]
        assert _num_unique(state) == listing["num_params_unique"] == case["num_params_unique"]
        aliases = _alias_groups(state)
        assert aliases == expected_aliases, f"{case['name']}: aliases {aliases}"
        # the hub mixin keeps the lexicographically first name of each alias group
        assert sorted(k for group in aliases for k in group[1:]) == dropped
        assert len(state) - len(dropped) == listing["num_hf_safetensors_keys"]
        shapes = {k: tuple(t.shape) for k, t in state.items()}
        hf_shapes = {k: s for k, s in shapes.items() if k not in dropped}
        for key_set in (shapes, hf_shapes):
            checkpoint = Checkpoint(Path(case["name"]), config, key_set,
                                    lambda key, s=key_set: torch.zeros(s[key]))
            assert set(match_keys(checkpoint, model)) == set(shapes)


def _check_loaded(case: dict, listing: dict, model: torch.nn.Module) -> None:
    """Keys in order, shapes, dtypes, checksums and the unique parameter count of a loaded model."""
    name = case["name"]
    assert not model.training, f"{name}: model not in eval mode"
    state = model.state_dict(keep_vars=True)
    keys, expected = list(state), [e["key"] for e in listing["state_dict"]]
    assert keys == expected, f"{name}: {_first_difference(keys, expected)}"
    assert len(state) == case["num_tensors"] == listing["num_tensors"]
    assert _num_unique(state) == case["num_params_unique"] == listing["num_params_unique"]
    # the model's aliases (shared tensors) must be aliases in the file too
    file_aliases = [sorted(group) for group in listing["aliases"]]
    assert all(group in file_aliases for group in _alias_groups(state)), name
    for entry in listing["state_dict"]:
        tensor = state[entry["key"]].detach()
        assert list(tensor.shape) == entry["shape"], f"{name}: {entry['key']} shape"
        assert _dtype_name(tensor) == entry["dtype"], f"{name}: {entry['key']} dtype"
        values = tensor.to(torch.float64).flatten()
        bound = 2 * values.numel() * UNIT_ROUNDOFF
        total, squares = values.sum().item(), torch.dot(values, values).item()
        assert abs(total - entry["sum"]) <= bound * values.abs().sum().item(), (
            f"{name}: {entry['key']} sum {total!r} != {entry['sum']!r}")
        assert abs(squares - entry["sum_sq"]) <= bound * entry["sum_sq"], (
            f"{name}: {entry['key']} sum_sq {squares!r} != {entry['sum_sq']!r}")


def _alias_groups(state: dict) -> list[list[str]]:
    """Sorted groups of keys naming one tensor object (state dict taken with keep_vars=True)."""
    groups: dict[int, list[str]] = {}
    for key, tensor in state.items():
        groups.setdefault(id(tensor), []).append(key)
    return sorted(sorted(keys) for keys in groups.values() if len(keys) > 1)


def _num_unique(state: dict) -> int:
    return sum(t.numel() for t in {id(t): t for t in state.values()}.values())


def _dtype_name(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def _first_difference(actual: list, expected: list) -> str:
    shorter = min(len(actual), len(expected))
    index = next((i for i in range(shorter) if actual[i] != expected[i]), shorter)
    got = actual[index] if index < len(actual) else "nothing"
    want = expected[index] if index < len(expected) else "nothing"
    return f"{len(actual)} entries (expected {len(expected)}); entry {index}: {got} != {want}"
