"""Easi3R attention probes and the re-weighted (masked) pass of the pair network.

Turn probes on with `with probing(model): pred1, pred2 = model(view1, view2)`; off (the default)
the forward is unchanged and costs nothing extra. With probes on, the outputs gain:
- `pred1["cross_atten_maps_k"]` float32 B x NH2 x NW2 x (L*heads): decoder 1 (queries of view 1),
  mean over queries of the pre-softmax cross-attention logits (after RoPE) per key token of
  view 2, on view 2's token grid; channel l*heads + h (layer-major).
- `pred2["cross_atten_maps_k"]` the same for decoder 2 (keys of view 1, view 1's grid).
- `pred1["match_feature"]` / `pred2["match_feature"]` float32 B x NH x NW x enc_dim: each view's
  encoder output after `enc_norm`, on its token grid.
Independently of probing, when both views carry `atten_mask` (bool B x H x W at the view's image
size, True = dynamic pixel), every decoder-1 cross-attention zeroes, after the softmax, the
weights from static view-1 query tokens to dynamic view-2 key tokens (no renormalisation); a
token is dynamic when any pixel of its patch is. Everything is computed per batch entry, so the
results do not depend on the batch size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from recon4d.errors import InputError
from recon4d.models.attention import CrossProbe

PROBE_KEYS = ("cross_atten_maps_k", "match_feature")  # added to both pred dicts when probing


@contextlib.contextmanager
def probing(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, `model`'s forward also returns the attention probes (see module doc)."""
    if not supports_probes(model):
        raise InputError(f"{type(model).__name__} has no attention probes; they need the "
                         "DUSt3R/MASt3R pair network")
    previous = model.record_probes
    model.record_probes = True
    try:
        yield model
    finally:
        model.record_probes = previous


def supports_probes(model: object) -> bool:
    """Whether `model` is a network with attention probes and the re-weighted pass."""
    return isinstance(getattr(model, "record_probes", None), bool)


def token_grid(pos: torch.Tensor) -> tuple[int, int]:
    """(rows, cols) of the row-major token grid of positions B x N x 2, the same for the batch."""
    rows = pos[..., 0].amax(dim=1) + 1
    cols = pos[..., 1].amax(dim=1) + 1
    if bool((rows != rows[0]).any() | (cols != cols[0]).any()):
        raise InputError("attention probes and masks need one token grid per batch; this batch "
                         "mixes portrait and landscape entries")
    grid = int(rows[0]), int(cols[0])
    if grid[0] * grid[1] != pos.shape[1]:
        raise InputError(f"token positions span a {grid[0]}x{grid[1]} grid but there are "
                         f"{pos.shape[1]} tokens")
    return grid


def token_mask(atten_mask: torch.Tensor, grid: tuple[int, int], patch: int,
               name: str) -> torch.Tensor:
    """Bool B x (rows*cols): a token is dynamic when any pixel of its patch x patch block is.

    `atten_mask` bool B x H x W must cover the token grid exactly (H = rows*patch, W = cols*patch).
    """
    expected = (grid[0] * patch, grid[1] * patch)
    if atten_mask.dim() != 3 or tuple(atten_mask.shape[1:]) != expected:
        raise InputError(f"{name} must be B x H x W = B x {expected[0]} x {expected[1]} (the "
                         f"view's image size), got shape {tuple(atten_mask.shape)}")
    pooled = F.max_pool2d(atten_mask[:, None].float(), patch)
    return pooled.flatten(1) > 0.5


def decoder_probes(view1: dict, view2: dict, pos1: torch.Tensor, pos2: torch.Tensor,
                   patch: int, record: bool) -> tuple[CrossProbe | None, CrossProbe | None]:
    """The probes of decoder 1 and decoder 2 for one forward (None where nothing is asked)."""
    masked = view1.get("atten_mask") is not None and view2.get("atten_mask") is not None
    if not (record or masked):
        return None, None
    probe1 = CrossProbe(record=record)
    probe2 = CrossProbe(record=True) if record else None
    if masked:
        device = pos1.device
        dynamic1 = token_mask(torch.as_tensor(view1["atten_mask"], device=device).bool(),
                              token_grid(pos1), patch, "view1 atten_mask")
        probe1.dynamic_key = token_mask(torch.as_tensor(view2["atten_mask"], device=device).bool(),
                                        token_grid(pos2), patch, "view2 atten_mask")
        probe1.static_query = ~dynamic1
    return probe1, probe2


def probe_outputs(probe: CrossProbe, key_pos: torch.Tensor, feat: torch.Tensor,
                  pos: torch.Tensor) -> dict[str, torch.Tensor]:
    """One side's probe outputs: key maps on the key view's grid, own features on own grid.

    key_logits: L tensors B x heads x Nk -> B x NHk x NWk x (L*heads), channel l*heads + h;
    feat B x N x D -> B x NH x NW x D; both float32.
    """
    maps = torch.stack(probe.key_logits, dim=1).flatten(1, 2).transpose(1, 2)
    b = feat.shape[0]
    return {"cross_atten_maps_k": maps.reshape(b, *token_grid(key_pos), -1).contiguous(),
            "match_feature": feat.float().reshape(b, *token_grid(pos), -1)}
