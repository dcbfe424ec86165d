"""The official pretrained checkpoints: names, short aliases, Hugging Face repos and architectures.

The keyword arguments are those of each repository's `config.json` (the architecture the official
loader builds: `PatchEmbedDust3R`, `landscape_only=False`), so `registry_config` gives the model
`load_model` builds for that name, e.g. to benchmark full-size random-weight models. The SLAM3R
entries give the recon.py constructions (the L2W without encoder blocks), loaded by
`recon4d.models.slam3r.load_slam3r`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from recon4d.errors import CheckpointError
from recon4d.models.config import ModelConfig
from recon4d.models.slam3r.config import I2P, L2W, SLAM3R_ARCHS, Slam3rConfig

_VIT_LARGE_BASE_DECODER = dict(
    enc_embed_dim=1024, enc_depth=24, enc_num_heads=16,
    dec_embed_dim=768, dec_depth=12, dec_num_heads=12,
    pos_embed="RoPE100", patch_embed_cls="PatchEmbedDust3R", landscape_only=False,
    output_mode="pts3d", depth_mode=("exp", -math.inf, math.inf), conf_mode=("exp", 1, math.inf),
)

# SLAM3R's published constructor strings (recon.py defaults); their class defaults otherwise
_SLAM3R_VIT_LARGE = dict(
    enc_embed_dim=1024, enc_depth=24, enc_num_heads=16,
    dec_embed_dim=768, dec_depth=12, dec_num_heads=12, pos_embed="RoPE100",
    img_size=(224, 224), head_type="linear", output_mode="pts3d",
    depth_mode=("exp", -math.inf, math.inf), conf_mode=("exp", 1, math.inf), enc_minibatch=11,
)


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One published checkpoint: official name, Hugging Face repo id, aliases, architecture."""

    name: str
    repo_id: str
    aliases: tuple[str, ...]
    arch: str
    kwargs: dict

    def config(self) -> ModelConfig:
        """The architecture of this checkpoint as built for inference."""
        if self.arch in SLAM3R_ARCHS:
            return Slam3rConfig(arch=self.arch, **{**_SLAM3R_VIT_LARGE, **self.kwargs})
        return ModelConfig(arch=self.arch, **{**_VIT_LARGE_BASE_DECODER, **self.kwargs})


OFFICIAL: tuple[OfficialCheckpoint, ...] = (
    OfficialCheckpoint(
        "DUSt3R_ViTLarge_BaseDecoder_224_linear", "naver/DUSt3R_ViTLarge_BaseDecoder_224_linear",
        ("dust3r-224-linear", "dust3r-224"), "AsymmetricCroCo3DStereo",
        dict(img_size=(224, 224), head_type="linear")),
    OfficialCheckpoint(
        "DUSt3R_ViTLarge_BaseDecoder_512_linear", "naver/DUSt3R_ViTLarge_BaseDecoder_512_linear",
        ("dust3r-512-linear",), "AsymmetricCroCo3DStereo",
        dict(img_size=(512, 512), head_type="linear")),
    OfficialCheckpoint(
        "DUSt3R_ViTLarge_BaseDecoder_512_dpt", "naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt",
        ("dust3r-512-dpt", "dust3r"), "AsymmetricCroCo3DStereo",
        dict(img_size=(512, 512), head_type="dpt")),
    OfficialCheckpoint(
        "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric",
        "naver/MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric",
        ("mast3r", "mast3r-512-metric"), "AsymmetricMASt3R",
        dict(img_size=(512, 512), head_type="catmlp+dpt", output_mode="pts3d+desc24",
             two_confs=True, desc_conf_mode=("exp", 0, math.inf))),
    OfficialCheckpoint(
        "MonST3R_PO-TA-S-W_ViTLarge_BaseDecoder_512_dpt",
        "Junyi42/MonST3R_PO-TA-S-W_ViTLarge_BaseDecoder_512_dpt",
        ("monst3r", "monst3r-512-dpt"), "AsymmetricCroCo3DStereo",
        dict(img_size=(512, 512), head_type="dpt", freeze="encoder")),
    OfficialCheckpoint("slam3r_i2p", "siyan824/slam3r_i2p", ("slam3r-i2p",), I2P, {}),
    OfficialCheckpoint("slam3r_l2w", "siyan824/slam3r_l2w", ("slam3r-l2w",), L2W,
                       dict(need_encoder=False)),
)


def find_official(name: str) -> OfficialCheckpoint | None:
    """The checkpoint called `name` (official name, alias or repo id, any case), else None."""
    wanted = name.strip().lower()
    for entry in OFFICIAL:
        if wanted in (entry.name.lower(), entry.repo_id.lower(), *entry.aliases):
            return entry
    return None


def official_names() -> list[str]:
    """Every accepted short alias, then every official name (for help texts and errors)."""
    return [alias for entry in OFFICIAL for alias in entry.aliases] + [e.name for e in OFFICIAL]


def registry_config(name: str) -> ModelConfig:
    """Architecture of the official checkpoint `name`; CheckpointError for an unknown name."""
    entry = find_official(name)
    if entry is None:
        raise CheckpointError(
            f"unknown model name {name!r}; known names: {', '.join(official_names())}")
    return entry.config()
