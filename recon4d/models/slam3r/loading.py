"""Load SLAM3R's I2P and L2W checkpoints safely and strictly.

The `.pth` files (keys `model`, `args`, `epoch`) and the Hugging Face folders (`config.json` +
`model.safetensors`) are read with the pair network's safe readers (tensors and
`argparse.Namespace` only, constructor parsed, never evaluated). A Hugging Face config.json does
not name its class, so the weights decide: `corr_score_*` keys make an I2P, `ponit_embedder`
an L2W. A network built without encoder blocks ignores the file's `enc_blocks.*`; an L2W file
without them is built without encoder. Every other missing or unexpected key is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from recon4d.errors import CheckpointError
from recon4d.models.loading import (
    Checkpoint,
    instantiate,
    read_hf_folder,
    read_pth,
    resolve,
)
from recon4d.models.slam3r.config import (
    I2P,
    L2W,
    Slam3rConfig,
    parse_slam3r_constructor,
    slam3r_config_from_hf,
    with_encoder,
)
from recon4d.models.slam3r.network import I2PNetwork, L2WNetwork, build_slam3r

ENCODER_PREFIX = "enc_blocks."
# a key only one class has, telling the class of a config.json that does not name it
CLASS_MARKERS = {I2P: "corr_score_proj.fc1.weight", L2W: "ponit_embedder.weight"}
ROLES = {I2P: "I2P (Image2PointsModel)", L2W: "L2W (Local2WorldModel)"}


def load_slam3r(spec: str | Path, device: str | torch.device = "cpu", *,
                expect: str | None = None,
                need_encoder: bool | None = None) -> I2PNetwork | L2WNetwork:
    """The SLAM3R network of checkpoint `spec` (path, `file:`/`hf-hub:` spec or registry name
    `slam3r-i2p` / `slam3r-l2w`) with its weights, on `device`, in eval mode.

    `expect` ("Image2PointsModel" or "Local2WorldModel") refuses the other class;
    `need_encoder` overrides whether the encoder blocks are built (False: tokens only).
    """
    checkpoint = open_slam3r_checkpoint(resolve(spec), need_encoder=need_encoder)
    arch = checkpoint.config.arch
    if expect is not None and arch != expect:
        raise CheckpointError(f"{checkpoint.path}: an {ROLES[arch]} checkpoint, but an "
                              f"{ROLES.get(expect, expect)} checkpoint is needed here")
    return instantiate(checkpoint, build_slam3r, device)


def open_slam3r_checkpoint(path: Path, *, need_encoder: bool | None = None) -> Checkpoint:
    """Architecture and tensors of a SLAM3R `.pth` or Hugging Face folder (or its
    model.safetensors); `enc_blocks.*` hidden when the network is built without encoder."""
    if path.suffix == ".safetensors":
        path = path.parent
    if path.is_dir():
        kwargs, shapes, read = read_hf_folder(path)
        arch = _class_from_keys(path, shapes)
        config = _prefixed(path, lambda: slam3r_config_from_hf(kwargs, arch))
    else:
        state, constructor = read_pth(path)
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        read = state.__getitem__
        config = _prefixed(path, lambda: parse_slam3r_constructor(constructor))
    has_encoder = any(k.startswith(ENCODER_PREFIX) for k in shapes)
    if need_encoder is None and config.arch == L2W and not has_encoder:
        need_encoder = False
    if need_encoder is not None:
        config = with_encoder(config, need_encoder)
    if not config.need_encoder:
        shapes = {k: s for k, s in shapes.items() if not k.startswith(ENCODER_PREFIX)}
    return Checkpoint(path, config, shapes, read)


def _class_from_keys(path: Path, shapes: dict[str, tuple[int, ...]]) -> str:
    """I2P or L2W from the key set of a Hugging Face folder; CheckpointError for neither."""
    found = [arch for arch, key in CLASS_MARKERS.items() if key in shapes]
    if len(found) != 1:
        what = ("a DUSt3R-family checkpoint (no mv_dec_blocks keys)"
                if not any(k.startswith("mv_dec_blocks") for k in shapes)
                else f"keys of {' and '.join(found) or 'neither class'}")
        raise CheckpointError(
            f"{path}: not a SLAM3R I2P or L2W checkpoint: {what}; expected exactly one of "
            f"{', '.join(CLASS_MARKERS.values())}")
    return found[0]


def _prefixed(path: Path, make: Callable[[], Slam3rConfig]) -> Slam3rConfig:
    """`make()`, with a CheckpointError's message prefixed by the file."""
    try:
        return make()
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
