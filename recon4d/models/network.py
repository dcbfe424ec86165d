"""The DUSt3R/MASt3R/MonST3R pair network: ViT encoder, two cross-attending decoders, two heads.

`build_model(cfg)` gives a module whose state_dict names and shapes are those of the official
checkpoints and whose `forward(view1, view2)` returns the reference's `pred1, pred2` dicts.
Easi3R's attention probes and masked pass are described in `recon4d.models.probes`.
"""

from __future__ import annotations

import contextlib
import re

import numpy as np
import torch
from torch import nn

from recon4d.errors import CheckpointError, InputError
from recon4d.models.attention import CrossProbe
from recon4d.models.blocks import DecoderBlock, EncoderBlock, layer_norm
from recon4d.models.config import ModelConfig
from recon4d.models.heads import make_head
from recon4d.models.patch_embed import ManyARPatchEmbed, PatchEmbedDust3R
from recon4d.models.postprocess import check_modes, postprocess
from recon4d.models.probes import decoder_probes, probe_outputs
from recon4d.models.rope import RoPE2D

ARCHS = ("AsymmetricCroCo3DStereo", "AsymmetricMASt3R")
PATCH_EMBEDS = {"PatchEmbedDust3R": PatchEmbedDust3R, "ManyAR_PatchEmbed": ManyARPatchEmbed}


def rope_base(pos_embed: str) -> float:
    """Base of a 'RoPE<base>' position embedding; anything else is unsupported."""
    try:
        if pos_embed.startswith("RoPE"):
            return float(pos_embed[4:])
    except ValueError:
        pass
    raise CheckpointError(f"unsupported pos_embed {pos_embed!r} (only 'RoPE<base>', e.g. RoPE100)")


def validate_config(cfg: ModelConfig, archs: tuple[str, ...] = ARCHS) -> None:
    """Raise CheckpointError naming the first setting this network (class one of `archs`)
    cannot build."""
    rope_base(cfg.pos_embed)
    problems = []
    if cfg.arch not in archs:
        problems.append(f"architecture {cfg.arch!r} is not one of {archs}")
    if cfg.patch_embed_cls not in PATCH_EMBEDS:
        problems.append(f"patch_embed_cls {cfg.patch_embed_cls!r} is not one of "
                        f"{tuple(PATCH_EMBEDS)}")
    for side in ("enc", "dec"):
        dim, heads = getattr(cfg, f"{side}_embed_dim"), getattr(cfg, f"{side}_num_heads")
        if dim <= 0 or heads <= 0 or dim % heads or (dim // heads) % 4:
            problems.append(f"{side}_embed_dim={dim} with {side}_num_heads={heads} does not give "
                            "a head dimension divisible by 4 (needed by 2D RoPE)")
    if cfg.is_mast3r:
        desc = re.fullmatch(r"pts3d\+desc([1-9]\d*)", str(cfg.output_mode))
        if cfg.head_type != "catmlp+dpt" or desc is None:
            problems.append("AsymmetricMASt3R needs head_type='catmlp+dpt' and "
                            f"output_mode='pts3d+desc<D>', got {cfg.head_type!r}, "
                            f"{cfg.output_mode!r}")
        if cfg.conf_mode is None and not cfg.two_confs:
            problems.append("AsymmetricMASt3R without conf_mode needs two_confs=True")
    elif cfg.head_type not in ("linear", "dpt") or cfg.output_mode != "pts3d":
        problems.append(f"{cfg.arch} needs head_type 'linear' or 'dpt' and "
                        f"output_mode 'pts3d', got {cfg.head_type!r}, {cfg.output_mode!r}")
    if "dpt" in cfg.head_type and (cfg.dec_depth <= 9 or cfg.patch_size != 16):
        problems.append(f"DPT heads need dec_depth > 9 and patch_size 16, got {cfg.dec_depth}, "
                        f"{cfg.patch_size}")
    try:
        check_modes(cfg.depth_mode, cfg.conf_mode, cfg.desc_mode if cfg.is_mast3r else None,
                    cfg.desc_conf_mode)
    except (ValueError, TypeError, IndexError) as exc:
        problems.append(str(exc))
    if problems:
        raise CheckpointError("unsupported model configuration: " + "; ".join(problems))


def is_symmetrized(view1: dict, view2: dict) -> bool:
    """True for a batch of pairs (a,b),(b,a),(c,d),(d,c)... judged by the `instance` labels only."""
    a, b = view1.get("instance"), view2.get("instance")
    if a is None or b is None or len(a) != len(b) or len(a) < 2 or len(a) % 2:
        return False
    return all(a[i] == b[i + 1] and a[i + 1] == b[i] for i in range(0, len(a), 2))


def interleave(t1: torch.Tensor, t2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """([t1_0, t2_0, t1_1, t2_1, ...], [t2_0, t1_0, t2_1, t1_1, ...]) along dim 0."""
    return (torch.stack((t1, t2), dim=1).flatten(0, 1),
            torch.stack((t2, t1), dim=1).flatten(0, 1))


def view_true_shape(view: dict) -> torch.Tensor:
    """The view's B x 2 (H, W) `true_shape` as a tensor; the image size when absent."""
    shape, img = view.get("true_shape"), view.get("img")
    if shape is None:
        if img is None:
            raise InputError("a view needs `true_shape` or `img`")
        return torch.tensor(img.shape[-2:]).repeat(img.shape[0], 1)
    shape = torch.as_tensor(np.asarray(shape) if not torch.is_tensor(shape) else shape)
    rows = shape.shape[0] if img is None else img.shape[0]
    if shape.shape != (rows, 2):
        raise InputError(f"true_shape must be B x 2 with B={rows}, got {tuple(shape.shape)}")
    return shape


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """Context disabling autocast on `device_type` (heads always run in float32)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def _transposed(pred: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Swap the H and W axes of every output map."""
    return {k: v.transpose(1, 2) for k, v in pred.items()}


class EncoderHeadsMixin:
    """The encoder trunk and the head runner shared by the pair network and the SLAM3R networks.

    Needs `config`, `rope`, `patch_embed`, `enc_blocks` and `downstream_head{1,2}` attributes.
    """

    def encoder_tokens(
        self, img: torch.Tensor, true_shape: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens after the last encoder block, before `enc_norm` (B x T x enc_dim), positions."""
        x, pos = self.patch_embed(img, true_shape)
        rope = self.rope.coefs(pos, self.config.enc_embed_dim // self.config.enc_num_heads)
        for block in self.enc_blocks:
            x = block(x, rope)
        return x, pos

    def _run_head(
        self, head: nn.Module, decout: list[torch.Tensor], size: tuple[int, int]
    ) -> dict[str, torch.Tensor]:
        """One head at image size (H, W), post-processed into the output dict."""
        p = self.config.patch_size
        n = decout[-1].shape[1]
        if size[0] % p or size[1] % p or (size[0] // p) * (size[1] // p) != n:
            raise InputError(f"true_shape {size} does not match the {n} image tokens "
                             f"(H/{p} x W/{p} must equal the token count)")
        cfg = self.config
        return postprocess(head(decout, size), cfg.depth_mode, cfg.conf_mode, cfg.desc_dim,
                           cfg.two_confs, cfg.desc_conf_mode)

    def _landscape_head(
        self, head: nn.Module, decout: list[torch.Tensor], true_shape: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """landscape_only=True: portrait entries run at (W, H) and come back transposed."""
        h, w = int(true_shape.min()), int(true_shape.max())
        portrait = true_shape[:, 0] > true_shape[:, 1]
        if not bool(portrait.any()):
            return self._run_head(head, decout, (h, w))
        if bool(portrait.all()):
            return _transposed(self._run_head(head, decout, (w, h)))
        sel = portrait.to(decout[-1].device)
        land = self._run_head(head, [d[~sel] for d in decout], (h, w))
        port = _transposed(self._run_head(head, [d[sel] for d in decout], (w, h)))
        out = {}
        for key, value in land.items():
            merged = value.new_empty((len(sel), *value.shape[1:]))
            merged[~sel], merged[sel] = value, port[key]
            out[key] = merged
        return out

    def _downstream_head(
        self, head_num: int, decout: list[torch.Tensor], img_shape: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Head 1 or 2 on its side's list, in float32 with autocast off; `img_shape` B x 2."""
        head = getattr(self, f"downstream_head{head_num}")
        decout = [t.float() for t in decout]
        img_shape = torch.as_tensor(img_shape)
        with _autocast_off(decout[-1].device.type):
            if self.config.landscape_only:
                return self._landscape_head(head, decout, img_shape)
            return self._run_head(head, decout, (int(img_shape[0, 0]), int(img_shape[0, 1])))


class Dust3rNetwork(EncoderHeadsMixin, nn.Module):
    """AsymmetricCroCo3DStereo / AsymmetricMASt3R with the official module and parameter names."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        validate_config(cfg)
        self.config = cfg
        self.record_probes = False  # set by `recon4d.models.probes.probing`
        enc, dec = cfg.enc_embed_dim, cfg.dec_embed_dim
        self.rope = RoPE2D(rope_base(cfg.pos_embed))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec))  # unused, kept for the state dict
        self.patch_embed = PATCH_EMBEDS[cfg.patch_embed_cls](enc, cfg.patch_size)
        self.enc_blocks = nn.ModuleList(
            EncoderBlock(enc, cfg.enc_num_heads, cfg.mlp_ratio) for _ in range(cfg.enc_depth))
        self.enc_norm = layer_norm(enc)
        self.decoder_embed = nn.Linear(enc, dec)
        self.dec_blocks = self._decoder_blocks(cfg)
        self.dec_norm = layer_norm(dec)
        self.dec_blocks2 = self._decoder_blocks(cfg)
        self.downstream_head1 = make_head(cfg)
        self.downstream_head2 = make_head(cfg)

    @staticmethod
    def _decoder_blocks(cfg: ModelConfig) -> nn.ModuleList:
        return nn.ModuleList(
            DecoderBlock(cfg.dec_embed_dim, cfg.dec_num_heads, cfg.mlp_ratio, cfg.norm_im2_in_dec)
            for _ in range(cfg.dec_depth))

    def encode(
        self, img: torch.Tensor, true_shape: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder tokens B x T x enc_dim (after enc_norm) and positions B x T x 2 of B images.

        Each image is encoded on its own (no attention across the batch), so tokens can be
        computed once per image and reused by every pair it belongs to (`decode`).
        """
        x, pos = self.encoder_tokens(img, true_shape)
        return self.enc_norm(x), pos

    def _encode_image_pairs(
        self, img1: torch.Tensor, img2: torch.Tensor, true_shape1: torch.Tensor,
        true_shape2: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(feat1, feat2, pos1, pos2); equal-size views go through the encoder as one batch."""
        if img1.shape[-2:] == img2.shape[-2:]:
            shape = torch.cat((torch.as_tensor(true_shape1), torch.as_tensor(true_shape2)))
            feat, pos = self.encode(torch.cat((img1, img2)), shape)
            feat1, feat2 = feat.chunk(2)
            pos1, pos2 = pos.chunk(2)
            return feat1, feat2, pos1, pos2
        feat1, pos1 = self.encode(img1, true_shape1)
        feat2, pos2 = self.encode(img2, true_shape2)
        return feat1, feat2, pos1, pos2

    def _decoder(
        self, f1: torch.Tensor, pos1: torch.Tensor, f2: torch.Tensor, pos2: torch.Tensor,
        probe1: CrossProbe | None = None, probe2: CrossProbe | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Head input lists [encoder output, layer 1, ..., dec_norm(layer L)] of both sides.

        Both sides advance in lock-step: layer l of each side reads layer l-1 of both. Each
        side's cross-attention gets that side's probe in every layer.
        """
        head_dim = self.config.dec_embed_dim // self.config.dec_num_heads
        rope1, rope2 = self.rope.coefs(pos1, head_dim), self.rope.coefs(pos2, head_dim)
        dec1, dec2 = [f1], [f2]
        x, y = self.decoder_embed(f1), self.decoder_embed(f2)
        for block1, block2 in zip(self.dec_blocks, self.dec_blocks2, strict=True):
            x, y = block1(x, y, rope1, rope2, probe1), block2(y, x, rope2, rope1, probe2)
            dec1.append(x)
            dec2.append(y)
        dec1[-1], dec2[-1] = self.dec_norm(x), self.dec_norm(y)
        return dec1, dec2

    def forward(self, view1: dict, view2: dict) -> tuple[dict, dict]:
        """pred1 (`pts3d`, `conf`[, `desc`, `desc_conf`]) and pred2 (`pts3d_in_other_view`, ...).

        `encode` then `decode`; a symmetrized batch encodes each image once. Probe outputs are
        added while `probing(self)` is active; both views' `atten_mask` re-weight decoder 1's
        cross-attention (`recon4d.models.probes`).
        """
        shape1, shape2 = view_true_shape(view1), view_true_shape(view2)
        img1, img2 = view1["img"], view2["img"]
        if is_symmetrized(view1, view2):
            f1, f2, p1, p2 = self._encode_image_pairs(img1[::2], img2[::2], shape1[::2],
                                                      shape2[::2])
            (f1, f2), (p1, p2) = interleave(f1, f2), interleave(p1, p2)
        else:
            f1, f2, p1, p2 = self._encode_image_pairs(img1, img2, shape1, shape2)
        return self.decode(view1, view2, f1, p1, f2, p2)

    def decode(
        self, view1: dict, view2: dict, feat1: torch.Tensor, pos1: torch.Tensor,
        feat2: torch.Tensor, pos2: torch.Tensor, *, heads: bool = True,
    ) -> tuple[dict, dict]:
        """Decoders (and heads when `heads`) on encoder outputs of `encode`, B x T x enc_dim.

        The views give `true_shape` (else their `img` size) and optional `atten_mask`; their
        images are not read when `true_shape` is given. Without heads the decoders run only for
        the probes: the preds hold the probe outputs alone (empty dicts when not probing).
        """
        shape1, shape2 = view_true_shape(view1), view_true_shape(view2)
        if feat1.shape[0] != shape1.shape[0] or feat2.shape[0] != shape2.shape[0]:
            raise InputError(f"decode got {feat1.shape[0]} and {feat2.shape[0]} token rows for "
                             f"{shape1.shape[0]} and {shape2.shape[0]} views")
        probe1, probe2 = decoder_probes(view1, view2, pos1, pos2, self.config.patch_size,
                                        self.record_probes)
        dec1, dec2 = self._decoder(feat1, pos1, feat2, pos2, probe1, probe2)
        pred1: dict[str, torch.Tensor] = {}
        pred2: dict[str, torch.Tensor] = {}
        if heads:
            pred1 = self._downstream_head(1, dec1, shape1)
            pred2 = self._downstream_head(2, dec2, shape2)
            pred2["pts3d_in_other_view"] = pred2.pop("pts3d")
        if self.record_probes:
            pred1.update(probe_outputs(probe1, pos2, feat1, pos1))
            pred2.update(probe_outputs(probe2, pos1, feat2, pos2))
        return pred1, pred2

def build_model(cfg: ModelConfig, device: str | torch.device | None = None) -> Dust3rNetwork:
    """The network for `cfg` in eval mode, parameters created directly on `device`.

    `device="meta"` allocates nothing (key/shape checks of full-size models, or building before
    `load_state_dict(..., assign=True)`).
    """
    ctx = torch.device(device) if device is not None else contextlib.nullcontext()
    with ctx:
        model = Dust3rNetwork(cfg)
    return model.eval()
