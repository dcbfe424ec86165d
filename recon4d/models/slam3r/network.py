"""SLAM3R's two networks, I2P (`Image2PointsModel`) and L2W (`Local2WorldModel`).

Both are the DUSt3R encoder, one shared `decoder_embed`, two stacks of multi-view decoder blocks
(`mv_dec_blocks1` for the reference views / scene frames, `mv_dec_blocks2` for the others,
advancing in lock-step) and two linear heads, with the official parameter names. I2P adds the
correlation head that scores retrieval candidates; L2W adds point tokens (a 16x16 conv of 3-D
points) to every decoder block's input.

Encoder tokens are computed once per frame (`encode_frames`, before `enc_norm`) and can feed both
networks: each applies its own `enc_norm`. The tensor API (`predict`, `corr_scores`) takes views
stacked view-major (V x B x ...: view k of B windows); `forward` and `get_corr_score` take the
reference's list of view dicts.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from recon4d.errors import CheckpointError, InputError
from recon4d.models.blocks import EncoderBlock, Mlp, layer_norm
from recon4d.models.heads import make_head
from recon4d.models.network import (
    PATCH_EMBEDS,
    EncoderHeadsMixin,
    rope_base,
    validate_config,
    view_true_shape,
)
from recon4d.models.postprocess import conf_map
from recon4d.models.rope import RoPE2D, RopeCoefs
from recon4d.models.slam3r.blocks import MultiviewDecoderBlock
from recon4d.models.slam3r.config import I2P, MULTIVIEW_BLOCKS, SLAM3R_ARCHS, Slam3rConfig

CORR_LN_EPS = 1e-5  # the correlation head's LayerNorm uses PyTorch's default eps


def validate_slam3r_config(cfg: Slam3rConfig) -> None:
    """Raise CheckpointError naming the first setting the SLAM3R networks cannot build."""
    validate_config(cfg, SLAM3R_ARCHS)
    problems = [f"{name}={getattr(cfg, name)!r} is not one of {MULTIVIEW_BLOCKS}"
                for name in ("mv_dec1", "mv_dec2") if getattr(cfg, name) not in MULTIVIEW_BLOCKS]
    if cfg.is_i2p and not 1 <= cfg.corr_depth <= cfg.dec_depth:
        problems.append(f"corr_depth={cfg.corr_depth} is outside 1..dec_depth={cfg.dec_depth}")
    if cfg.enc_minibatch < 1:
        problems.append(f"enc_minibatch={cfg.enc_minibatch} must be at least 1")
    if problems:
        raise CheckpointError("unsupported model configuration: " + "; ".join(problems))


class Slam3rNetwork(EncoderHeadsMixin, nn.Module):
    """What I2P and L2W share: encoder, multi-view decoder, heads (official names and order)."""

    def __init__(self, cfg: Slam3rConfig) -> None:
        super().__init__()
        validate_slam3r_config(cfg)
        self.config = cfg
        enc, dec = cfg.enc_embed_dim, cfg.dec_embed_dim
        self.rope = RoPE2D(rope_base(cfg.pos_embed))
        self.patch_embed = PATCH_EMBEDS[cfg.patch_embed_cls](enc, cfg.patch_size)
        self.enc_blocks = nn.ModuleList(
            EncoderBlock(enc, cfg.enc_num_heads, cfg.mlp_ratio)
            for _ in range(cfg.enc_depth if cfg.need_encoder else 0))
        self.enc_norm = layer_norm(enc)
        self.decoder_embed = nn.Linear(enc, dec)
        self.mv_dec_blocks1 = self._decoder_blocks(cfg)
        self.mv_dec_blocks2 = self._decoder_blocks(cfg)
        self.dec_norm = layer_norm(dec)
        self.downstream_head1 = make_head(cfg)
        self.downstream_head2 = make_head(cfg)

    @staticmethod
    def _decoder_blocks(cfg: Slam3rConfig) -> nn.ModuleList:
        return nn.ModuleList(
            MultiviewDecoderBlock(cfg.dec_embed_dim, cfg.dec_num_heads, cfg.mlp_ratio,
                                  cfg.norm_im2_in_dec) for _ in range(cfg.dec_depth))

    # ------------------------------------------------------------------ encoder

    def encode_frames(
        self, img: torch.Tensor, true_shape: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens before `enc_norm` (N x S x enc_dim) and positions (N x S x 2) of N frames.

        These are what a token cache stores: computed once per frame, then given to both
        networks (each applies its own `enc_norm`). Frames go through the encoder
        `enc_minibatch` at a time.
        """
        if not self.config.need_encoder:
            raise InputError(f"this {self.config.arch} was built without encoder blocks "
                             "(need_encoder=False): it takes cached encoder tokens only")
        step = self.config.enc_minibatch
        shape = None if true_shape is None else torch.as_tensor(true_shape)
        parts = [self.encoder_tokens(img[i:i + step], None if shape is None else shape[i:i + step])
                 for i in range(0, len(img), step)]
        return torch.cat([t for t, _ in parts]), torch.cat([p for _, p in parts])

    def _stack_views(self, views: list[dict]) -> tuple[torch.Tensor, ...]:
        """(pre-norm tokens V x B x S x D_e, positions V x B x S x 2, true_shape V x B x 2) of
        the reference's view dicts: cached `img_tokens` + `img_pos` if the first view has them
        (then every view must), else images (all of one H x W)."""
        if len(views) < 2:
            raise InputError(f"SLAM3R networks need at least 2 views, got {len(views)}")
        if "img_tokens" in views[0]:
            missing = [k for k, v in enumerate(views) if "img_tokens" not in v or "img_pos" not in v
                       or "true_shape" not in v]
            if missing:
                raise InputError(f"views {missing} lack img_tokens, img_pos or true_shape (the "
                                 "first view carries cached tokens, so every view must)")
            tokens = _stack([v["img_tokens"] for v in views], "img_tokens")
            pos = _stack([v["img_pos"] for v in views], "img_pos")
            shapes = _stack([torch.as_tensor(v["true_shape"]) for v in views], "true_shape")
            return tokens, pos, shapes
        key = self.config.input_type if self.config.input_type in views[0] else "img"
        images = _stack([v[key] for v in views], key)
        shapes = torch.stack([view_true_shape({"img": v[key], "true_shape": v.get("true_shape")})
                              for v in views])
        tokens, pos = self.encode_frames(images.flatten(0, 1), shapes.flatten(0, 1))
        return tokens.unflatten(0, images.shape[:2]), pos.unflatten(0, images.shape[:2]), shapes

    # ------------------------------------------------------------------ decoder

    def _rope(self, pos: torch.Tensor) -> RopeCoefs:
        """Decoder RoPE coefficients of stacked positions V x B x S x 2."""
        return self.rope.coefs(pos.flatten(0, 1),
                               self.config.dec_embed_dim // self.config.dec_num_heads)

    def _lockstep(
        self, tokens: torch.Tensor, pos: torch.Tensor, ref_ids: list[int],
        points: torch.Tensor | None = None, layers: int | None = None,
        ref_layers: int | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Decoder outputs [X^1, ..., X^r] (reference side) and [Y^1, ..., Y^l] (other side).

        `tokens` V x B x S x D_e are normalised encoder tokens, `points` optional point tokens
        V x B x S x D_d added to every block's input. Layer l of each side reads layer l - 1 of
        both. `layers` (default: all) and `ref_layers` (default: `layers`) count the layers run.
        """
        src_ids = [k for k in range(tokens.shape[0]) if k not in ref_ids]
        layers = self.config.dec_depth if layers is None else layers
        ref_layers = layers if ref_layers is None else ref_layers
        rope_x, rope_y = self._rope(pos[ref_ids]), self._rope(pos[src_ids])
        x, y = self.decoder_embed(tokens[ref_ids]), self.decoder_embed(tokens[src_ids])
        pts_x, pts_y = (0, 0) if points is None else (points[ref_ids], points[src_ids])
        xs, ys = [], []
        for layer in range(layers):
            x_in, y_in = x + pts_x, y + pts_y
            if layer < ref_layers:
                x = self.mv_dec_blocks1[layer](x_in, y_in, rope_x, rope_y)
                xs.append(x)
            y = self.mv_dec_blocks2[layer](y_in, x_in, rope_y, rope_x)
            ys.append(y)
        return xs, ys

    def _decode(
        self, tokens: torch.Tensor, pos: torch.Tensor, true_shape: torch.Tensor,
        ref_ids: list[int], points: torch.Tensor | None = None,
    ) -> tuple[list[dict], list[torch.Tensor]]:
        """Per-view predictions (input order) and the other side's head input list.

        Reference views get `pts3d`, the others `pts3d_in_other_view` (in the reference or
        world frame), all `conf`; heads run in float32 on [encoder, layer 1, ...,
        dec_norm(last layer)] of their side.
        """
        v = tokens.shape[0]
        if len(set(ref_ids)) != len(ref_ids) or not all(0 <= r < v for r in ref_ids):
            raise InputError(f"reference ids {ref_ids} must be distinct view indices 0..{v - 1}")
        if len(ref_ids) >= v:
            raise InputError(f"{v} views with {len(ref_ids)} reference views leave no other view")
        src_ids = [k for k in range(v) if k not in ref_ids]
        tokens = self.enc_norm(tokens)
        xs, ys = self._lockstep(tokens, pos, ref_ids, points)
        ref_list = [tokens[ref_ids], *xs[:-1], self.dec_norm(xs[-1])]
        src_list = [tokens[src_ids], *ys[:-1], self.dec_norm(ys[-1])]
        preds: list[dict] = [{} for _ in range(v)]
        for head, ids, decout in ((1, ref_ids, ref_list), (2, src_ids, src_list)):
            pred = self._downstream_head(head, [d.flatten(0, 1) for d in decout],
                                         true_shape[ids].reshape(-1, 2))
            for rank, k in enumerate(ids):
                preds[k] = {key: value.unflatten(0, (len(ids), -1))[rank]
                            for key, value in pred.items()}
        for k in src_ids:
            preds[k]["pts3d_in_other_view"] = preds[k].pop("pts3d")
        return preds, src_list


class I2PNetwork(Slam3rNetwork):
    """Image2Points: a keyframe's pointmap from a window (1 reference + supporting views)."""

    def __init__(self, cfg: Slam3rConfig) -> None:
        super().__init__(cfg)
        self.corr_score_norm = nn.LayerNorm(cfg.dec_embed_dim, eps=CORR_LN_EPS)
        self.corr_score_proj = Mlp(cfg.dec_embed_dim, cfg.dec_embed_dim, 1)

    def _corr_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Raw correlation score per token (... x S) of decoder tokens (... x S x D_d)."""
        return self.corr_score_proj(self.corr_score_norm(tokens))[..., 0]

    def predict(self, tokens: torch.Tensor, pos: torch.Tensor, true_shape: torch.Tensor,
                ref_id: int = 0, corr_score: bool = False) -> list[dict]:
        """Predictions of V views of B windows: tokens V x B x S x D_e (before enc_norm), positions
        V x B x S x 2, true_shape V x B x 2 (H, W).

        View `ref_id` gets `pts3d` (its camera frame) and `conf`; every other view
        `pts3d_in_other_view` (reference camera frame), `conf` and, with `corr_score`,
        `pseudo_conf` B x S (raw correlation logits at depth `corr_depth`).
        """
        preds, src_decout = self._decode(tokens, pos, true_shape, [ref_id])
        if corr_score:
            logits = self._corr_logits(src_decout[self.config.corr_depth])
            src_ids = [k for k in range(tokens.shape[0]) if k != ref_id]
            for rank, k in enumerate(src_ids):
                preds[k]["pseudo_conf"] = logits[rank].float()
        return preds

    def corr_scores(self, tokens: torch.Tensor, pos: torch.Tensor, ref_id: int = 0,
                    depth: int = -1) -> torch.Tensor:
        """Retrieval scores 1 + exp(s) of every non-reference view, (V - 1) x B x S.

        Only `depth` decoder layers run (the reference side one fewer), without dec_norm;
        depth < 0 means `corr_depth`. Inputs as in `predict`.
        """
        depth = self.config.corr_depth if depth < 0 else depth
        if not 1 <= depth <= self.config.dec_depth:
            raise InputError(f"correlation depth {depth} is outside 1..{self.config.dec_depth}")
        if not 0 <= ref_id < tokens.shape[0]:
            raise InputError(f"ref_id {ref_id} is not a view index 0..{tokens.shape[0] - 1}")
        _, ys = self._lockstep(self.enc_norm(tokens), pos, [ref_id], layers=depth,
                               ref_layers=depth - 1)
        return conf_map(self._corr_logits(ys[-1]).float(), self.config.conf_mode)

    def forward(self, views: list[dict], ref_id: int = 0,
                return_corr_score: bool = False) -> list[dict]:
        """The reference's call: view dicts with `img` (or cached `img_tokens` + `img_pos`) and
        `true_shape`; returns one prediction dict per view (see `predict`)."""
        tokens, pos, shapes = self._stack_views(views)
        return self.predict(tokens, pos, shapes, ref_id, return_corr_score)

    def get_corr_score(self, views: list[dict], ref_id: int = 0, depth: int = -1) -> torch.Tensor:
        """The reference's retrieval call on view dicts (see `corr_scores`)."""
        tokens, pos, _ = self._stack_views(views)
        return self.corr_scores(tokens, pos, ref_id, depth)


class L2WNetwork(Slam3rNetwork):
    """Local2World: registers local pointmaps (sources) into the world of the scene frames."""

    def __init__(self, cfg: Slam3rConfig) -> None:
        super().__init__(cfg)
        dec, patch = cfg.dec_embed_dim, cfg.patch_size
        self.void_pe_token = nn.Parameter(torch.zeros(1, 1, dec))
        self.ponit_embedder = nn.Conv2d(3, dec, kernel_size=patch, stride=patch)  # sic

    def point_tokens(self, points: torch.Tensor,
                     patch_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Point tokens N x S x D_d of N pointmaps (N x H x W x 3 or N x 3 x H x W); patches
        where `patch_mask` (N x h x w or N x S) is True get `void_pe_token` instead."""
        if points.dim() != 4 or 3 not in (points.shape[1], points.shape[-1]):
            raise InputError(f"points must be N x H x W x 3 or N x 3 x H x W, "
                             f"got {tuple(points.shape)}")
        if points.shape[-1] == 3:
            points = points.permute(0, 3, 1, 2)
        pe = self.ponit_embedder(points).flatten(2).transpose(1, 2)
        if patch_mask is None:
            return pe
        mask = patch_mask.reshape(pe.shape[0], -1, 1).to(pe.device)
        return torch.where(mask, self.void_pe_token.to(pe.dtype), pe)

    def predict(self, tokens: torch.Tensor, pos: torch.Tensor, true_shape: torch.Tensor,
                points: torch.Tensor, ref_ids: list[int],
                patch_mask: torch.Tensor | None = None) -> list[dict]:
        """Register V views of B windows: scene frames `ref_ids` (in that order) carry world
        points, the others points in their own camera frame; `points` V x B x H x W x 3 (or
        V x B x 3 x H x W), `patch_mask` V x B x h x w (or V x B x S) bool or None; tokens,
        positions and true_shape as in `I2PNetwork.predict`.

        Scene frames get `pts3d` (refined world points), the others `pts3d_in_other_view` (in
        the world frame); all `conf`.
        """
        if points.shape[:2] != tokens.shape[:2]:
            raise InputError(f"points {tuple(points.shape)} do not match tokens "
                             f"{tuple(tokens.shape)} (V x B first)")
        flat_mask = None if patch_mask is None else patch_mask.flatten(0, 1)
        pe = self.point_tokens(points.flatten(0, 1), flat_mask).unflatten(0, points.shape[:2])
        return self._decode(tokens, pos, true_shape, list(ref_ids), pe)[0]

    def forward(self, views: list[dict], ref_ids: int | list[int] = 0) -> list[dict]:
        """The reference's call: view dicts with images or cached tokens (as I2P), `true_shape`,
        `pts3d_world` (scene frames) or `pts3d_cam` (others) and optional `patch_mask`."""
        ref_ids = [ref_ids] if isinstance(ref_ids, int) else list(ref_ids)
        tokens, pos, shapes = self._stack_views(views)
        points = []
        for k, view in enumerate(views):
            key = "pts3d_world" if k in ref_ids else "pts3d_cam"
            if key not in view:
                raise InputError(f"view {k} has no {key} (needed by a "
                                 f"{'scene frame' if k in ref_ids else 'source view'})")
            p = torch.as_tensor(view[key])
            points.append(p.permute(0, 3, 1, 2) if p.shape[-1] == 3 else p)
        masks = None
        if any("patch_mask" in v for v in views):
            rows, s = tokens.shape[1], tokens.shape[2]
            masks = torch.stack([
                torch.as_tensor(v["patch_mask"]).reshape(rows, s) if "patch_mask" in v
                else torch.zeros(rows, s, dtype=torch.bool) for v in views])
        return self.predict(tokens, pos, shapes, _stack(points, "points"), ref_ids, masks)


def _stack(tensors: list[torch.Tensor], name: str) -> torch.Tensor:
    """Stack per-view tensors; InputError when the views' shapes differ."""
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise InputError(f"all views of one call must have the same {name} shape (same image "
                         f"size and batch), got {sorted(shapes)}")
    return torch.stack([torch.as_tensor(t) for t in tensors])


def build_slam3r(cfg: Slam3rConfig,
                 device: str | torch.device | None = None) -> I2PNetwork | L2WNetwork:
    """The I2P or L2W network of `cfg` in eval mode, parameters created on `device` ("meta":
    nothing allocated, e.g. before loading weights)."""
    ctx = torch.device(device) if device is not None else contextlib.nullcontext()
    with ctx:
        model = (I2PNetwork if cfg.arch == I2P else L2WNetwork)(cfg)
    return model.eval()
