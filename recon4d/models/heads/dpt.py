"""DPT head: reassembles four hooked token maps into a pyramid and fuses it to full resolution.

Module names follow the official checkpoints (`act_postprocess`, `scratch.layerK_rn` with its alias
`scratch.layer_rn.{K-1}`, `scratch.refinenetK`, `head`). Maps stay channels last (the token layout),
which is also the layout the CPU convolution kernels prefer. The two full-resolution stages
(upsample x2 then 3x3 conv, twice) run in bands of rows, so their large intermediates never exist
whole.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

LAYER_DIMS = (96, 192, 384, 768)
FEATURES = 256
LAST_DIM = 128
BAND_VALUES = 1 << 21  # channels x rows x width of one band of the upsampled input (8 MB fp32)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 upsampling with align_corners=True."""
    return F.interpolate(x, size=(2 * x.shape[-2], 2 * x.shape[-1]), mode="bilinear",
                         align_corners=True)


def upsample2x_rows(x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Rows lo..hi-1 of `upsample2x(x)`, computed from the input rows they need only.

    Output row i samples input row i*(h-1)/(2h-1) (align_corners=True): the two input rows are
    blended first, then each blended row is upsampled along the width. Channels-last in and out.
    """
    h, w = x.shape[-2:]
    src = torch.arange(lo, hi, device=x.device, dtype=torch.float32) * ((h - 1) / (2 * h - 1))
    top = src.long()
    bottom = (top + 1).clamp_(max=h - 1)
    rows = x.permute(0, 2, 3, 1)  # B x h x w x C view of the channels-last map
    blended = torch.lerp(rows[:, top], rows[:, bottom], (src - top).view(1, -1, 1, 1))
    return F.interpolate(blended.permute(0, 3, 1, 2), size=(hi - lo, 2 * w), mode="bilinear",
                         align_corners=True)


def upconv_in_bands(x: torch.Tensor, conv: nn.Conv2d,
                    post: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """post(conv(upsample2x(x))) for a 3x3, stride-1, padding-1 `conv`, one band of rows at a time.

    Each band upsamples only the rows its conv reads (one more above and below), so the upsampled
    map and the conv output are never held whole; the result is channels last.
    """
    b, _, h, w = x.shape
    height, width = 2 * h, 2 * w
    step = max(1, BAND_VALUES // (conv.in_channels * width))
    out = None
    for r0 in range(0, height, step):
        r1 = min(r0 + step, height)
        band = upsample2x_rows(x, max(r0 - 1, 0), min(r1 + 1, height))
        band = F.pad(band, (0, 0, int(r0 == 0), int(r1 == height)))  # zero rows at the edges
        band = F.conv2d(band, conv.weight, conv.bias, padding=(0, 1))
        if post is not None:
            band = post(band)
        if out is None:
            out = torch.empty((b, band.shape[1], height, width), dtype=band.dtype,
                              device=band.device, memory_format=torch.channels_last)
        out[:, :, r0:r1] = band
    return out


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
    orders give the same map, and this one costs a quarter of the work. `upsample=False` returns
    the map before the upsampling (the caller upsamples it band by band).
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None,
                upsample: bool = True) -> torch.Tensor:
        if skip is not None:
            x = self.resConfUnit1(skip).add_(x)
        x = self.out_conv(self.resConfUnit2(x))
        return upsample2x(x) if upsample else x


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
    """Hooks [0, L*2//4, L*3//4, L] of the head input list -> B x out_channels x H x W.

    `head` is the official Sequential (conv, upsample, conv, ReLU, 1x1 conv); `forward` evaluates
    it with `upconv_in_bands`, which gives the same map with far less memory.
    """

    def __init__(self, enc_dim: int, dec_dim: int, dec_depth: int, out_channels: int) -> None:
        super().__init__()
        self.hooks = (0, dec_depth * 2 // 4, dec_depth * 3 // 4, dec_depth)
        d0, d1, d2, d3 = LAYER_DIMS
        self.scratch = Scratch(LAYER_DIMS, FEATURES)
        self.head = nn.Sequential(
            conv3x3(FEATURES, LAST_DIM),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            conv3x3(LAST_DIM, LAST_DIM), nn.ReLU(inplace=True),
            nn.Conv2d(LAST_DIM, out_channels, kernel_size=1))
        self.act_postprocess = nn.ModuleList([
            nn.Sequential(nn.Conv2d(enc_dim, d0, 1), nn.ConvTranspose2d(d0, d0, 4, stride=4)),
            nn.Sequential(nn.Conv2d(dec_dim, d1, 1), nn.ConvTranspose2d(d1, d1, 2, stride=2)),
            nn.Sequential(nn.Conv2d(dec_dim, d2, 1)),
            nn.Sequential(nn.Conv2d(dec_dim, d3, 1), conv3x3(d3, d3, stride=2)),
        ])

    def fused(self, decout: list[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        """refinenet1's map before its final upsampling: B x FEATURES x H/4 x W/4."""
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
        return s.refinenet1(path, l1, upsample=False)

    def forward(self, decout: list[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        head = self.head
        x = upconv_in_bands(self.fused(decout, image_size), head[0])
        return upconv_in_bands(x, head[2], lambda t: head[4](head[3](t)))


class DPTHead(nn.Module):
    """DUSt3R `dpt` head: the DPT output as a channels-last raw map."""

    def __init__(self, enc_dim: int, dec_dim: int, dec_depth: int, channels: int) -> None:
        super().__init__()
        self.dpt = DPT(enc_dim, dec_dim, dec_depth, channels)

    def forward(self, decout: list[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        """Raw map B x H x W x channels."""
        return self.dpt(decout, image_size).permute(0, 2, 3, 1)
