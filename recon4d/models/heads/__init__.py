"""Downstream heads (`linear`, `dpt`, MASt3R `catmlp+dpt`); each returns a raw channels-last map."""

from __future__ import annotations

from torch import nn

from recon4d.models.config import ModelConfig
from recon4d.models.heads.dpt import DPTHead
from recon4d.models.heads.linear import LinearHead
from recon4d.models.heads.mast3r import MASt3RHead


def make_head(cfg: ModelConfig) -> nn.Module:
    """One head (the network holds two with separate weights) for a validated config."""
    channels = 3 + (cfg.conf_mode is not None)
    if cfg.head_type == "linear":
        return LinearHead(cfg.dec_embed_dim, channels, cfg.patch_size)
    if cfg.head_type == "dpt":
        return DPTHead(cfg.enc_embed_dim, cfg.dec_embed_dim, cfg.dec_depth, channels)
    return MASt3RHead(cfg.enc_embed_dim, cfg.dec_embed_dim, cfg.dec_depth, channels,
                      cfg.desc_dim + int(cfg.two_confs), cfg.patch_size)
