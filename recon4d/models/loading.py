"""Load the official DUSt3R / MASt3R / MonST3R checkpoints safely and strictly.

A checkpoint is an official `.pth` (dict with `model` and `args`) or a Hugging Face folder, named
by a spec of `recon4d.models.specs` (a path, `file:PATH`, `hf-hub:owner/name[@revision]` or a
registry name). Nothing is unpickled beyond tensors and `argparse.Namespace`, the
constructor string is parsed (never evaluated), and every missing, unexpected or mis-shaped key is
an error, where the official loader only prints them.
"""

from __future__ import annotations

import argparse
import json
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from recon4d.errors import CheckpointError
from recon4d.models import hub
from recon4d.models.config import ModelConfig
from recon4d.models.constructor import config_from_hf, inference_rewrite, parse_constructor
from recon4d.models.network import build_model
from recon4d.models.specs import parse_spec

# checkpoint entries the network does not have and does not need (CroCo pretraining leftovers)
IGNORED_KEYS = frozenset({"enc_pos_embed", "dec_pos_embed"})
IGNORED_PREFIXES = ("prediction_head.",)
ALLOWED_GLOBALS = (argparse.Namespace,)  # the only non-tensor object of an official .pth
MAX_LISTED = 10  # keys shown per problem in an error message


@dataclass
class Checkpoint:
    """An opened checkpoint: its architecture and its named tensors, read one at a time."""

    path: Path
    config: ModelConfig
    shapes: dict[str, tuple[int, ...]]
    read: Callable[[str], torch.Tensor]


def load_model(spec: str | Path, device: str | torch.device = "cpu", *,
               as_trained: bool = False) -> nn.Module:
    """The network of checkpoint `spec` with its weights, on `device`, in eval mode.

    `as_trained` builds a `.pth` from `args.model` verbatim (training semantics) instead of the
    official loader's rewrite (`PatchEmbedDust3R`, `landscape_only=False`); a Hugging Face
    config.json is used as written either way.
    """
    return instantiate(open_checkpoint(resolve(spec), as_trained=as_trained), build_model,
                       device)


def instantiate(checkpoint: Checkpoint, build: Callable[..., nn.Module],
                device: str | torch.device) -> nn.Module:
    """The network `build(config, device="meta")` makes from `checkpoint`, with its weights on
    `device`, in eval mode; a config the builder refuses is reported with the file's path."""
    try:
        model = build(checkpoint.config, device="meta")
    except CheckpointError as exc:
        raise CheckpointError(f"{checkpoint.path}: {exc}") from None
    load_weights(model, checkpoint, device)
    return model.eval()


def resolve(spec: str | Path) -> Path:
    """Local file or folder of checkpoint `spec` (see `recon4d.models.specs`); downloads if Hub."""
    source = parse_spec(spec)
    if source.path is not None:
        return source.path
    return hub.download(source.repo_id, source.revision)


def open_checkpoint(path: Path, *, as_trained: bool = False) -> Checkpoint:
    """Open an official `.pth` file or a Hugging Face folder (or its `model.safetensors`)."""
    if path.suffix == ".safetensors":
        path = path.parent
    if path.is_dir():
        return _open_hf_folder(path)
    return _open_pth(path, as_trained)


def load_weights(model: nn.Module, checkpoint: Checkpoint, device: str | torch.device) -> None:
    """Fill `model` (built on the meta device) with the checkpoint's tensors, strictly.

    Each tensor is copied into fresh contiguous memory on `device` as it is read, so at most one
    full copy of the weights exists (the source is memory-mapped).
    """
    plan = match_keys(checkpoint, model)
    expected = model.state_dict(keep_vars=True)
    fresh: dict[str, torch.Tensor] = {}
    by_tensor: dict[int, torch.Tensor] = {}  # state-dict aliases share one parameter
    for key, ref in expected.items():
        if id(ref) not in by_tensor:
            tensor = torch.empty(ref.shape, dtype=ref.dtype, device=device)
            by_tensor[id(ref)] = tensor.copy_(checkpoint.read(plan[key]))
        fresh[key] = by_tensor[id(ref)]
    model.load_state_dict(fresh, strict=True, assign=True)
    left = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"tensors outside the state dict were left on the meta device: {left}")


def _open_pth(path: Path, as_trained: bool) -> Checkpoint:
    """An official `.pth`: its state dict and the architecture of its constructor string."""
    state, constructor = read_pth(path)
    try:
        config = parse_constructor(constructor if as_trained else inference_rewrite(constructor))
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return Checkpoint(path, config, {k: tuple(v.shape) for k, v in state.items()},
                      state.__getitem__)


def read_pth(path: Path) -> tuple[Mapping[str, torch.Tensor], str]:
    """(state dict, constructor string `args.model`) of an official `.pth`, loaded safely."""
    content = torch_load_safe(path)
    state = content.get("model") if isinstance(content, Mapping) else None
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"{path}: not an official checkpoint: expected a dict with a 'model' "
            f"state dict and 'args', found {_describe(content)}")
    constructor = getattr(content.get("args"), "model", None)
    if not isinstance(constructor, str):
        raise CheckpointError(
            f"{path}: the checkpoint has no constructor string (args.model), so its architecture "
            "is unknown; official checkpoints store it in an argparse.Namespace under 'args'")
    bad = [str(k) for k, v in state.items() if not isinstance(k, str)
           or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: non-tensor entries in the state dict: {_listing(bad)}")
    return state, constructor


def torch_load_safe(path: Path) -> object:
    """`torch.load` allowing only tensors and ALLOWED_GLOBALS; errors name the file."""
    try:
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True,
                              mmap=zipfile.is_zipfile(path))
    except Exception as exc:
        blocked = _blocked_globals(path, exc)
        if blocked:
            raise CheckpointError(
                f"{path}: refused: the file's pickle needs {', '.join(blocked)}, which a safe "
                "(weights-only) load does not allow because unpickling it could run arbitrary "
                "code. Official checkpoints need only argparse.Namespace; convert trusted "
                "weights to a Hugging Face folder (config.json + model.safetensors).") from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint, damaged or of "
                              f"another kind ({_reason(exc)})") from None


def _blocked_globals(path: Path, exc: Exception) -> list[str]:
    """Globals of the pickle that the weights-only load refused (empty for other failures)."""
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint: the refused global is only named in the message
        found = re.findall(r"GLOBAL (\S+) was not an allowed global", str(exc))
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in ALLOWED_GLOBALS}
    return [name for name in found if name not in allowed]


def _reason(exc: Exception) -> str:
    """The informative line of a torch.load failure (not torch's advice to unpickle anyway)."""
    text = str(exc).split("WeightsUnpickler error:")[-1]
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return f"{type(exc).__name__}: {line[:200]}"


def _open_hf_folder(path: Path) -> Checkpoint:
    """A Hugging Face folder: architecture from config.json, tensors from model.safetensors."""
    kwargs, shapes, read = read_hf_folder(path)
    if any(k.startswith("mv_dec_blocks") for k in shapes):
        raise CheckpointError(f"{path}: a SLAM3R checkpoint (I2P or L2W), not a DUSt3R-family "
                              "one; load it with recon4d.models.slam3r.load_slam3r")
    try:
        config = config_from_hf(kwargs)
    except CheckpointError as exc:
        raise CheckpointError(f"{path / hub.HF_FILES[0]}: {exc}") from None
    return Checkpoint(path, config, shapes, read)


def read_hf_folder(
    path: Path,
) -> tuple[dict, dict[str, tuple[int, ...]], Callable[[str], torch.Tensor]]:
    """(config.json dict, tensor shapes, tensor reader) of a Hugging Face model folder."""
    config_file, weights_file = (path / name for name in hub.HF_FILES)
    for required in (config_file, weights_file):
        if not required.is_file():
            raise CheckpointError(
                f"{path}: not a Hugging Face model folder: {required.name} is missing "
                f"(expected {' and '.join(hub.HF_FILES)})")
    try:
        kwargs = json.loads(config_file.read_text(encoding="utf-8"))  # accepts bare Infinity
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{config_file}: not a readable JSON file ({exc})") from None
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{config_file}: expected a JSON object of constructor arguments")
    try:
        tensors = safe_open(str(weights_file), framework="pt", device="cpu")
        shapes = {k: tuple(tensors.get_slice(k).get_shape()) for k in tensors.keys()}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights_file}: not a readable safetensors file ({exc})") from None
    return kwargs, shapes, tensors.get_tensor


def match_keys(checkpoint: Checkpoint, model: nn.Module) -> dict[str, str]:
    """Model state-dict key -> checkpoint key holding its value; CheckpointError lists problems.

    Strips a `module.` prefix (on every key), drops IGNORED_* entries the model lacks, copies
    `dec_blocks.*` to `dec_blocks2.*` when no `dec_blocks2` key exists, and lets either name of a
    model alias group (one shared tensor) supply the value (if several do, they must be equal).
    """
    expected = model.state_dict(keep_vars=True)  # keep_vars: aliases are the same object
    names = list(checkpoint.shapes)
    cut = len("module.") if names and all(k.startswith("module.") for k in names) else 0
    source = {k[cut:]: k for k in names}
    source = {k: s for k, s in source.items() if k in expected or not _ignored(k)}
    if not any(k.startswith("dec_blocks2.") for k in source):
        source.update({"dec_blocks2." + k[len("dec_blocks."):]: s
                       for k, s in source.items() if k.startswith("dec_blocks.")})
    unequal = []
    for group in _alias_groups(expected):
        present = [k for k in group if k in source]
        if present:
            first = checkpoint.read(source[present[0]])
            unequal += [f"{present[0]} != {k}" for k in present[1:]
                        if not torch.equal(first, checkpoint.read(source[k]))]
            source.update({k: source[present[0]] for k in group if k not in source})
    missing = [k for k in expected if k not in source]
    unexpected = [k for k in source if k not in expected]
    mis_shaped = [f"{k} (checkpoint {_shape(checkpoint.shapes[source[k]])}, model "
                  f"{_shape(tuple(expected[k].shape))})" for k in expected
                  if k in source and checkpoint.shapes[source[k]] != tuple(expected[k].shape)]
    problems = [(f"missing keys ({len(missing)})", missing),
                (f"unexpected keys ({len(unexpected)})", unexpected),
                (f"shape mismatches ({len(mis_shaped)})", mis_shaped),
                (f"aliases of one tensor holding different values ({len(unequal)})", unequal)]
    if any(items for _, items in problems):
        lines = "\n".join(f"  {label}: {_listing(items)}" for label, items in problems if items)
        raise CheckpointError(
            f"{checkpoint.path}: the weights do not match the architecture "
            f"{_architecture(checkpoint.config)}:\n{lines}")
    return {k: source[k] for k in expected}


def _alias_groups(expected: Mapping[str, torch.Tensor]) -> list[list[str]]:
    """Groups of state-dict keys naming one tensor (the DPT `layerK_rn` / `layer_rn.K-1`)."""
    groups: dict[int, list[str]] = {}
    for key, tensor in expected.items():
        groups.setdefault(id(tensor), []).append(key)
    return [keys for keys in groups.values() if len(keys) > 1]


def _ignored(key: str) -> bool:
    return key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES)


def _listing(items: list[str]) -> str:
    """The first MAX_LISTED items, then how many more there are."""
    more = len(items) - MAX_LISTED
    return ", ".join(items[:MAX_LISTED]) + (f", ... and {more} more" if more > 0 else "")


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "scalar"


def _architecture(config: ModelConfig) -> str:
    return (f"{config.arch} (head {config.head_type!r}, encoder {config.enc_embed_dim}x"
            f"{config.enc_depth}, decoder {config.dec_embed_dim}x{config.dec_depth})")


def _describe(content: object) -> str:
    if isinstance(content, Mapping):
        return f"a dict with keys {_listing([str(k) for k in content])}"
    return f"a {type(content).__name__}"
