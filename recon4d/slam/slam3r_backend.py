"""What the SLAM3R stream asks of its networks (`Slam3rBackend`), and the backend that answers
with the published I2P and L2W networks (`NetworkBackend`).

The stream never touches tensors of the networks directly: it keeps one opaque code per frame
(`encode`) and passes codes back, so the real networks (cached encoder tokens) and the oracle of
`recon4d.synthetic.slam3r_oracle` (frame indices) plug in the same way. Points are
H x W x 3 in the layout the stream uses; every call may batch several windows or sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from recon4d.errors import InputError
from recon4d.models.slam3r.loading import load_slam3r

CORR_DEPTH = 2  # retrieval reads the correlation head after 2 decoder layers, whatever the config


class Slam3rBackend(Protocol):
    """Encode / I2P / L2W / correlation, batched; codes are whatever `encode` returns."""

    def encode(self, frame: dict) -> Any:
        """The code of one frame (a view dict with `img` 1 x 3 x H x W)."""

    def i2p(self, windows: list[list[Any]], ref_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Points V x B x H x W x 3 (every view in the camera of view `ref_id` of its window) and
        confidences V x B x H x W of B windows of V frames each."""

    def l2w(self, scene: list[Any], scene_points: torch.Tensor, sources: list[Any],
            source_points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World points M x H x W x 3 and confidences M x H x W of M sources given in their own
        camera (`source_points` M x H x W x 3), registered to R scene frames whose world points
        are `scene_points` R x H x W x 3."""

    def corr(self, sources: list[Any], candidates: list[Any]) -> torch.Tensor:
        """Retrieval scores C x B x S (>= 1, higher = more overlap) of C candidates against B
        sources, per patch."""


@dataclass
class FrameTokens:
    """A frame's encoder tokens before enc_norm (1 x S x D), positions (1 x S x 2), (H, W)."""

    tokens: torch.Tensor
    pos: torch.Tensor
    shape: torch.Tensor  # (2,) int64


class NetworkBackend:
    """`Slam3rBackend` over an `I2PNetwork` and an `L2WNetwork`: tokens computed once per frame
    by the I2P encoder and shared by both networks (docs/slam3r.md, "The token cache")."""

    def __init__(self, i2p: torch.nn.Module, l2w: torch.nn.Module) -> None:
        for net, role, arch in ((i2p, "I2P", "Image2PointsModel"),
                                (l2w, "L2W", "Local2WorldModel")):
            if getattr(getattr(net, "config", None), "arch", None) != arch:
                raise InputError(f"the {role} network must be a SLAM3R {arch}, got "
                                 f"{type(net).__name__}")
        self.i2p_net, self.l2w_net = i2p, l2w
        self.device = next(i2p.parameters()).device

    @torch.no_grad()
    def encode(self, frame: dict) -> FrameTokens:
        img = frame["img"].to(self.device)
        shape = torch.tensor(img.shape[-2:], device=self.device)
        tokens, pos = self.i2p_net.encode_frames(img, shape[None])
        return FrameTokens(tokens, pos, shape)

    @staticmethod
    def _stack(views: list[list[FrameTokens]]) -> tuple[torch.Tensor, ...]:
        """View-major stacks V x B x ... of B windows of V views."""
        per_view = list(zip(*views, strict=True))
        tokens = torch.stack([torch.cat([f.tokens for f in v]) for v in per_view])
        pos = torch.stack([torch.cat([f.pos for f in v]) for v in per_view])
        shape = torch.stack([torch.stack([f.shape for f in v]) for v in per_view])
        return tokens, pos, shape

    @torch.no_grad()
    def i2p(self, windows: list[list[FrameTokens]],
            ref_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, pos, shape = self._stack(windows)
        preds = self.i2p_net.predict(tokens, pos, shape, ref_id)
        points = torch.stack([p["pts3d" if k == ref_id else "pts3d_in_other_view"]
                              for k, p in enumerate(preds)])
        return points.float(), torch.stack([p["conf"] for p in preds]).float()

    @torch.no_grad()
    def l2w(self, scene: list[FrameTokens], scene_points: torch.Tensor,
            sources: list[FrameTokens],
            source_points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, pos, shape = self._stack([scene + sources])
        points = torch.cat([scene_points, source_points]).to(self.device)[:, None]
        preds = self.l2w_net.predict(tokens, pos, shape, points, list(range(len(scene))))
        out = preds[len(scene):]
        return (torch.cat([p["pts3d_in_other_view"] for p in out]).float(),
                torch.cat([p["conf"] for p in out]).float())

    @torch.no_grad()
    def corr(self, sources: list[FrameTokens], candidates: list[FrameTokens]) -> torch.Tensor:
        tokens, pos, _ = self._stack([[src, *candidates] for src in sources])
        return self.i2p_net.corr_scores(tokens, pos, ref_id=0, depth=CORR_DEPTH).float()


def load_backend(i2p: str, l2w: str, device: str | torch.device = "cpu") -> NetworkBackend:
    """`NetworkBackend` of two checkpoints (paths, hub specs or registry names); a checkpoint
    of the wrong class (an L2W given as I2P) is refused before anything runs. The L2W is built
    without encoder blocks: it only reads the I2P's cached tokens."""
    return NetworkBackend(load_slam3r(i2p, device, expect="Image2PointsModel"),
                          load_slam3r(l2w, device, expect="Local2WorldModel",
                                      need_encoder=False))
