"""DPT head: reassembles four hooked token maps into a pyramid and fuses it to full resolution.

Module names follow the official checkpoints (`act_postprocess`, `scratch.layerK_rn` with its alias
`scratch.layer_rn.{K-1}`, `scratch.refinenetK`, `head`). Maps stay channels last (the token layout),
which is also the layout the CPU convolution kernels prefer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LAYER_DIMS = (96, 192, 384, 768)
FEATURES = 256
LAST_DIM = 128


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 upsampling with align_corners=True."""
    return F.interpolate(x, size=(2 * x.shape[-2], 2 * x.shape[-1]), mode="bilinear",
                         align_corners=True)


class Upsample2x(nn.Module):
    """`upsample2x` as a module (position 1 of the official `head` Sequential)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample2x(x)


def conv3x3(cin: int, cout: int, bias: bool = True, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=bias)


class ResidualConvUnit(nn.Module):
    """x + conv2(ReLU(conv1(ReLU(x))))."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(features, features)
        self.conv2 = conv3x3(features, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(F.relu(x)).relu_()).add_(x)


class FusionBlock(nn.Module):
    """out_conv(up2x(RCU2(x + RCU1(skip)))); `resConfUnit1` is unused without a skip input.

    The 1x1 `out_conv` is applied before the upsampling: bilinear weights sum to one, so both
    orders give the same map, and this one costs a quarter of the work.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = self.resConfUnit1(skip).add_(x)
        return upsample2x(self.out_conv(self.resConfUnit2(x)))


class Scratch(nn.Module):
    """Per-level 3x3 projections to `features` channels (no bias) and the four fusion blocks."""

    def __init__(self, in_dims: tuple[int, ...], features: int) -> None:
        super().__init__()
        convs = [conv3x3(d, features, bias=False) for d in in_dims]
        for k, conv in enumerate(convs, start=1):
            self.add_module(f"layer{k}_rn", conv)
        self.layer_rn = nn.ModuleList(convs)  # official alias names of the same convolutions
        for k in range(1, len(in_dims) + 1):
            self.add_module(f"refinenet{k}", FusionBlock(features))


class DPT(nn.Module):
    """Hooks [0, L*2//4, L*3//4, L] of the head input list -> B x out_channels x H x W."""

    def __init__(self, enc_dim: int, dec_dim: int, dec_depth: int, out_channels: int) -> None:
        super().__init__()
        self.hooks = (0, dec_depth * 2 // 4, dec_depth * 3 // 4, dec_depth)
        d0, d1, d2, d3 = LAYER_DIMS
        self.scratch = Scratch(LAYER_DIMS, FEATURES)
        self.head = nn.Sequential(
            conv3x3(FEATURES, LAST_DIM), Upsample2x(), conv3x3(LAST_DIM, LAST_DIM),
            nn.ReLU(inplace=True), nn.Conv2d(LAST_DIM, out_channels, kernel_size=1))
        self.act_postprocess = nn.ModuleList([
            nn.Sequential(nn.Conv2d(enc_dim, d0, 1), nn.ConvTranspose2d(d0, d0, 4, stride=4)),
            nn.Sequential(nn.Conv2d(dec_dim, d1, 1), nn.ConvTranspose2d(d1, d1, 2, stride=2)),
            nn.Sequential(nn.Conv2d(dec_dim, d2, 1)),
            nn.Sequential(nn.Conv2d(dec_dim, d3, 1), conv3x3(d3, d3, stride=2)),
        ])

    def forward(self, decout: list[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        rows, cols = image_size[0] // 16, image_size[1] // 16
        levels = []
        for hook, post, project in zip(self.hooks, self.act_postprocess, self.scratch.layer_rn,
                                       strict=True):
            tokens = decout[hook]
            grid = tokens.reshape(tokens.shape[0], rows, cols, -1).permute(0, 3, 1, 2)
            levels.append(project(post(grid)))
        l1, l2, l3, l4 = levels
        s = self.scratch
        path = s.refinenet4(l4)[:, :, : l3.shape[2], : l3.shape[3]]
        path = s.refinenet3(path, l3)
        path = s.refinenet2(path, l2)
        path = s.refinenet1(path, l1)
        return self.head(path)


class DPTHead(nn.Module):
    """DUSt3R `dpt` head: the DPT output as a channels-last raw map."""

    def __init__(self, enc_dim: int, dec_dim: int, dec_depth: int, channels: int) -> None:
        super().__init__()
        self.dpt = DPT(enc_dim, dec_dim, dec_depth, channels)

    def forward(self, decout: list[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        """Raw map B x H x W x channels."""
        return self.dpt(decout, image_size).permute(0, 2, 3, 1)
