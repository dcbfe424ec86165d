"""Architecture description shared by the network builder and the checkpoint loaders."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ModeTuple = tuple  # (name, vmin, vmax), e.g. ("exp", -inf, inf)


@dataclass(frozen=True)
class ModelConfig:
    """Constructor arguments of the official AsymmetricCroCo3DStereo / AsymmetricMASt3R classes.

    Field names and defaults are the official keyword names and class defaults, so a parsed
    constructor string or a Hugging Face `config.json` maps onto it one to one.
    """

    arch: str = "AsymmetricCroCo3DStereo"  # or "AsymmetricMASt3R"
    enc_embed_dim: int = 768
    enc_depth: int = 12
    enc_num_heads: int = 12
    dec_embed_dim: int = 512
    dec_depth: int = 8
    dec_num_heads: int = 16
    mlp_ratio: float = 4.0
    patch_size: int = 16
    img_size: tuple = (224, 224)
    pos_embed: str = "RoPE100"
    norm_im2_in_dec: bool = True
    head_type: str = "linear"  # "linear" | "dpt" | "catmlp+dpt"
    output_mode: str = "pts3d"  # "pts3d" | "pts3d+descD"
    depth_mode: ModeTuple = ("exp", -math.inf, math.inf)
    conf_mode: ModeTuple = ("exp", 1, math.inf)
    patch_embed_cls: str = "PatchEmbedDust3R"  # or "ManyAR_PatchEmbed"
    landscape_only: bool = True
    freeze: str = "none"
    # MASt3R only
    desc_mode: str = "norm"
    two_confs: bool = False
    desc_conf_mode: ModeTuple | None = None
    extra: dict = field(default_factory=dict, compare=False)  # tolerated unknown keys

    @property
    def is_mast3r(self) -> bool:
        return self.arch == "AsymmetricMASt3R"

    @property
    def desc_dim(self) -> int:
        """Descriptor dimension D of `output_mode='pts3d+descD'`, 0 without descriptors."""
        prefix = "pts3d+desc"
        return int(self.output_mode[len(prefix):]) if self.output_mode.startswith(prefix) else 0
