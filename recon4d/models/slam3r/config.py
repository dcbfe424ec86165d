"""SLAM3R's architecture description: the pair network's keywords plus SLAM3R's own.

`Image2PointsModel` (I2P) and `Local2WorldModel` (L2W) take the DUSt3R constructor keywords and
`need_encoder`, `enc_minibatch`, `mv_dec1`/`mv_dec2`, `input_type`; I2P also `corr_depth`. The
class defaults are the reference's (not the official sizes, which the constructor strings give).
Light module: no torch import.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from recon4d.errors import CheckpointError
from recon4d.models.config import ModelConfig
from recon4d.models.constructor import KWARGS, hf_kwargs, parse_call

I2P = "Image2PointsModel"
L2W = "Local2WorldModel"
SLAM3R_ARCHS = (I2P, L2W)
MULTIVIEW_BLOCKS = ("MultiviewDecoderBlock_max",)
_MAST3R_ONLY = {"desc_mode", "two_confs", "desc_conf_mode"}
L2W_KWARGS = (KWARGS - _MAST3R_ONLY) | {"need_encoder", "enc_minibatch", "mv_dec1", "mv_dec2",
                                        "input_type"}
I2P_KWARGS = L2W_KWARGS | {"corr_depth"}


@dataclass(frozen=True)
class Slam3rConfig(ModelConfig):
    """Constructor arguments of SLAM3R's I2P / L2W classes (official keyword names and defaults)."""

    arch: str = I2P
    need_encoder: bool = True  # False: no encoder blocks, the network takes cached tokens only
    enc_minibatch: int = 4  # views per encoder batch (memory only, no numerical meaning)
    mv_dec1: str = MULTIVIEW_BLOCKS[0]
    mv_dec2: str = MULTIVIEW_BLOCKS[0]
    input_type: str = "img"
    corr_depth: int = 2  # I2P: decoder depth the correlation head reads

    @property
    def is_i2p(self) -> bool:
        return self.arch == I2P


def allowed_kwargs(arch: str) -> set[str]:
    """Constructor keywords class `arch` accepts."""
    return I2P_KWARGS if arch == I2P else L2W_KWARGS


def parse_slam3r_constructor(text: str) -> Slam3rConfig:
    """Slam3rConfig from a constructor string such as `Image2PointsModel(enc_depth=24, ...)`,
    parsed safely (never evaluated); CheckpointError for another class or keyword."""
    arch, kwargs = parse_call(text, SLAM3R_ARCHS, I2P_KWARGS)
    unknown = sorted(set(kwargs) - allowed_kwargs(arch))
    if unknown:
        raise CheckpointError(f"model constructor: {arch} takes no argument {unknown[0]!r}")
    return Slam3rConfig(arch=arch, **kwargs)


def slam3r_config_from_hf(d: dict, arch: str) -> Slam3rConfig:
    """Slam3rConfig of class `arch` from a Hugging Face config.json dict (other keys in `extra`)."""
    kwargs, extra = hf_kwargs(d, allowed_kwargs(arch))
    return Slam3rConfig(arch=arch, extra=extra, **kwargs)


def with_encoder(config: Slam3rConfig, need_encoder: bool) -> Slam3rConfig:
    """The same architecture with or without its own encoder blocks."""
    return dataclasses.replace(config, need_encoder=need_encoder)
