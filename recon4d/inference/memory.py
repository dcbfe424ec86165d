"""Automatic batch size: a per-pair activation estimate against the memory that is free.

The estimate counts the largest live tensors of one pair's forward pass without gradients (two
images through the encoder, both decoder sides, the float32 heads, the outputs) with a safety
factor; it is deliberately pessimistic (attention scores counted as if materialised).
"""

from __future__ import annotations

import os

import torch

from recon4d.models.config import ModelConfig

# ViT-Large encoder, base decoder, DPT head: the official checkpoints (the largest case)
DEFAULT_CONFIG = ModelConfig(enc_embed_dim=1024, enc_depth=24, enc_num_heads=16,
                             dec_embed_dim=768, dec_depth=12, dec_num_heads=12, head_type="dpt")
SAFETY_FACTOR = 1.5
BUDGET_FRACTION = {"cuda": 0.8, "cpu": 0.5}  # share of the free memory a batch may use
MAX_BATCH = {"cuda": 64, "cpu": 16}  # beyond this, larger batches gain nothing
FALLBACK_FREE_BYTES = 4 << 30  # when free memory cannot be read


def pair_activation_bytes(height: int, width: int, config: ModelConfig | None = None,
                          trunk_bytes: int = 4) -> int:
    """Estimated peak bytes of one H×W pair's forward pass (trunk in `trunk_bytes` per value)."""
    cfg = config or DEFAULT_CONFIG
    tokens = (height // cfg.patch_size) * (width // cfg.patch_size)
    pixels = height * width
    widest = 2 + cfg.mlp_ratio  # residual stream, normed copy, MLP hidden layer
    encoder = 2 * tokens * (cfg.enc_embed_dim * widest + cfg.enc_num_heads * tokens)
    decoder = 2 * tokens * (cfg.dec_embed_dim * widest + cfg.dec_num_heads * tokens)
    head_inputs = 2 * tokens * (cfg.enc_embed_dim + cfg.dec_depth * cfg.dec_embed_dim)
    trunk = (head_inputs + max(encoder, decoder)) * trunk_bytes
    heads = (head_inputs + _head_values(cfg, pixels, tokens)) * 4  # heads run in float32
    outputs = 2 * pixels * (4 + cfg.desc_dim + bool(cfg.desc_dim)) * 4  # xyz, conf, desc
    return int(SAFETY_FACTOR * (trunk + heads + outputs))


def _head_values(cfg: ModelConfig, pixels: int, tokens: int) -> int:
    """Largest live tensors of one side's head (the sides run one after the other)."""
    if cfg.head_type == "linear":
        return 8 * pixels  # projection output and its pixel-shuffled copy
    dpt = 256 * pixels // 4 * 3 + 128 * pixels * 2  # last fusion level, upsampled head convs
    if cfg.desc_dim:
        dims = cfg.enc_embed_dim + cfg.dec_embed_dim
        dpt += tokens * dims * 5 + (cfg.desc_dim + 2) * pixels  # local-feature MLP
    return dpt


def free_memory_bytes(device: torch.device) -> int:
    """Bytes available for activations: free CUDA memory (+ allocator cache), or free RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return FALLBACK_FREE_BYTES


def auto_batch_size(height: int, width: int, config: ModelConfig | None, device: torch.device,
                    trunk_bytes: int = 4) -> int:
    """Pairs per batch that fit the free memory of `device` (at least 1, at most MAX_BATCH)."""
    kind = "cuda" if device.type == "cuda" else "cpu"
    budget = free_memory_bytes(device) * BUDGET_FRACTION[kind]
    per_pair = pair_activation_bytes(height, width, config, trunk_bytes)
    return int(max(1, min(MAX_BATCH[kind], budget // per_pair)))
