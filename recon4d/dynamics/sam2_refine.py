"""SAM 2 refinement of motion masks (spec §8.1 item 11, §2.4 step 5): the masks prompt SAM 2's
video predictor, and a pixel moves where the initial mask OR SAM 2's mask says so.

Prompting, as both originals run it: SAM 2 passes the given mask through unchanged on a frame it
is prompted on, so each frame's SAM 2 mask comes from its neighbours' prompts; pass A prompts the
odd frames (object id 1), propagates forward from frame 0 and keeps the even frames; pass B
prompts the even frames and keeps the odd ones. Logits > 0 are the mask. Frames are fed in [0, 1]
resized bicubic to the model's square size (1024 for the released models) with ImageNet mean and
std, made one at a time when SAM 2 asks (no N x 3 x 1024 x 1024 stack). fp32 on the CPU, bf16
autocast on CUDA. The inference state is built here from the frames in memory (SAM 2's
`init_state` reads only JPEG folders and MP4 files), mirroring `init_state` of the supported
package versions.

Conventions: N frames at model resolution; `frames` (N, H, W, 3) uint8 RGB; masks (N, H, W) bool,
True = moving. Needs the package `sam2` (extra `sam2`) and a local checkpoint; nothing is
downloaded.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.resources
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recon4d.errors import CheckpointError, InputError, OptionError, Recon4dError

SUPPORTED_VERSIONS = ("1.1.0",)  # sam2 releases whose inference state `_inference_state` mirrors
DEFAULT_CONFIG = "configs/sam2.1/sam2.1_hiera_l.yaml"  # the originals' SAM 2.1 Hiera-L
OBJECT_ID = 1  # the prompts' object id
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# released checkpoint names -> config: sam2.1_hiera_tiny.pt -> configs/sam2.1/sam2.1_hiera_t.yaml
RELEASED_NAME = re.compile(r"(sam2(?:\.1)?)_hiera_(tiny|small|base_plus|large)")
SIZE_LETTERS = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}
SHOWN_KEYS = 5  # mismatched checkpoint keys listed in an error


@dataclass(frozen=True)
class Sam2Refiner:
    """A SAM 2 video predictor with a checkpoint's weights, ready to refine masks."""

    predictor: Any  # sam2.sam2_video_predictor.SAM2VideoPredictor, eval mode, on `device`
    checkpoint: Path
    config: str  # hydra config name inside the sam2 package
    device: torch.device

    def record(self) -> dict[str, Any]:
        """What scene.json says about the refinement."""
        return {"checkpoint": str(self.checkpoint), "config": self.config,
                "image_size": int(self.predictor.image_size), "prompting": "alternate"}


def config_for(checkpoint: str | os.PathLike) -> str:
    """The config of a released checkpoint name (sam2[.1]_hiera_{tiny,small,base_plus,large}),
    else DEFAULT_CONFIG."""
    match = RELEASED_NAME.fullmatch(Path(checkpoint).stem)
    if match is None:
        return DEFAULT_CONFIG
    version, size = match.groups()
    return f"configs/{version}/{version}_hiera_{SIZE_LETTERS[size]}.yaml"


def check_sam2(checkpoint: str | os.PathLike, config: str | None = None) -> str:
    """The config `load_sam2` will use; refuses, before any slow work, a missing checkpoint
    file, a missing or unsupported sam2 package and a config the package lacks."""
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(f"{path}: SAM 2 checkpoint not found")
    _import_sam2()
    config = config or config_for(path)
    _check_config(config)
    return config


def load_sam2(checkpoint: str | os.PathLike, config: str | None = None,
              device: str | torch.device = "cpu", *, image_size: int | None = None) -> Sam2Refiner:
    """SAM 2 from a local `.pt` file ({"model": state_dict}) and a config name of the sam2
    package (default: from the file name, see `config_for`); `image_size` overrides the
    config's (tests only: the released weights need their own). Errors name the file."""
    path = Path(checkpoint)
    config = check_sam2(path, config)
    build_sam = _import_sam2()
    state = _read_state_dict(path)
    overrides = [] if image_size is None else [f"++model.image_size={int(image_size)}"]
    device = torch.device(device)
    predictor = build_sam.build_sam2_video_predictor(config, None, device=str(device),
                                                     hydra_overrides_extra=overrides)
    if not _has_cuda_extension():
        predictor.fill_hole_area = 0  # its hole filling needs sam2's CUDA kernel: skip it quietly
    if not _uses_autocast(device):
        predictor.memory_attention.register_forward_pre_hook(_memory_in_fp32, with_kwargs=True)
    try:
        missing, unexpected = predictor.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes that do not match the config
        raise CheckpointError(f"{path}: does not match SAM 2 config {config}: "
                              f"{str(exc).splitlines()[-1].strip()}") from None
    if missing or unexpected:
        found = [_key_list("missing", missing), _key_list("unexpected", unexpected)]
        raise CheckpointError(f"{path}: does not match SAM 2 config {config} (choose another "
                              f"with --sam2-config): {'; '.join(k for k in found if k)}")
    return Sam2Refiner(predictor.eval(), path, config, device)


def refine_masks(refiner: Sam2Refiner, frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool: `masks` OR SAM 2's masks prompted by them (module docstring)."""
    return np.asarray(masks, dtype=bool) | sam2_masks(refiner, frames, masks)


def sam2_masks(refiner: Sam2Refiner, frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool: SAM 2's own masks, each frame's from the prompts of the frames of the
    other parity (pass A prompts odd frames and keeps even ones, pass B the reverse)."""
    frames, masks = _check_inputs(frames, masks)
    predictor, device = refiner.predictor, refiner.device
    video = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2)
    out = np.zeros_like(masks)
    with torch.inference_mode(), _autocast(device):
        for prompted in (1, 0):
            state = _inference_state(_ModelFrames(video, predictor.image_size), device)
            for index in range(prompted, len(masks), 2):
                predictor.add_new_mask(state, frame_idx=index, obj_id=OBJECT_ID,
                                       mask=torch.from_numpy(masks[index]))
            for index, _, logits in predictor.propagate_in_video(state, start_frame_idx=0):
                if index % 2 != prompted:
                    out[index] = (logits[0, 0] > 0).cpu().numpy()
    return out


class _ModelFrames:
    """The frames as SAM 2 reads `state["images"][i]`: (3, S, S) float, [0, 1] resized bicubic
    to S x S, ImageNet-normalised, made when asked."""

    def __init__(self, video: torch.Tensor, size: int) -> None:
        self.video = video  # (N, 3, H, W) uint8
        self.size = int(size)
        shape = (1, 3, 1, 1)
        self.mean = torch.tensor(IMAGENET_MEAN, device=video.device).view(shape)
        self.std = torch.tensor(IMAGENET_STD, device=video.device).view(shape)

    def __len__(self) -> int:
        return len(self.video)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.video[index:index + 1].float() / 255.0
        image = F.interpolate(image, size=(self.size, self.size), mode="bicubic",
                              align_corners=False)
        return ((image - self.mean) / self.std)[0]


def _inference_state(images: _ModelFrames, device: torch.device) -> dict[str, Any]:
    """What `SAM2VideoPredictor.init_state` builds (sam2 SUPPORTED_VERSIONS), from frames in
    memory: outputs at the frames' own resolution, everything kept on `device`."""
    height, width = images.video.shape[-2:]
    return {"images": images, "num_frames": len(images), "offload_video_to_cpu": False,
            "offload_state_to_cpu": False, "video_height": int(height),
            "video_width": int(width), "device": device, "storage_device": device,
            "point_inputs_per_obj": {}, "mask_inputs_per_obj": {}, "cached_features": {},
            "constants": {}, "obj_id_to_idx": OrderedDict(), "obj_idx_to_id": OrderedDict(),
            "obj_ids": [], "output_dict_per_obj": {}, "temp_output_dict_per_obj": {},
            "frames_tracked_per_obj": {}}


def _check_inputs(frames: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated (N, H, W, 3) uint8 frames and (N, H, W) bool masks, N >= 2."""
    frames = np.ascontiguousarray(frames)
    masks = np.ascontiguousarray(masks, dtype=bool)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputError(f"SAM 2 refinement: frames must be uint8 (N, H, W, 3), got "
                         f"{frames.dtype} {frames.shape}")
    if masks.shape != frames.shape[:3]:
        raise InputError(f"SAM 2 refinement: masks {masks.shape} do not match the frames "
                         f"{frames.shape[:3]}")
    if len(frames) < 2:
        raise InputError("SAM 2 refinement needs at least 2 frames (each frame is refined from "
                         "its neighbours' prompts)")
    return frames, masks


def _import_sam2() -> ModuleType:
    """`sam2.build_sam`, or a Recon4dError naming the extra; refuses unsupported versions."""
    try:
        build_sam = importlib.import_module("sam2.build_sam")
    except ImportError as exc:
        raise Recon4dError(f"SAM 2 refinement needs the package 'sam2' ({exc}): install the "
                           "extra with `scripts/setup sam2`") from None
    try:
        version = importlib.metadata.version("sam2")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    if version not in SUPPORTED_VERSIONS:
        raise Recon4dError(f"sam2 {version} is not supported (its video predictor state may "
                           f"differ); install sam2 {' or '.join(SUPPORTED_VERSIONS)} with "
                           "`scripts/setup sam2`")
    return build_sam


def _check_config(config: str) -> None:
    """OptionError unless `config` names a config file of the sam2 package."""
    root = importlib.resources.files("sam2")
    if not root.joinpath(config).is_file():
        names = sorted(f"configs/{folder.name}/{item.name}"
                       for folder in root.joinpath("configs").iterdir() if folder.is_dir()
                       for item in folder.iterdir() if item.name.endswith(".yaml"))
        raise OptionError(f"--sam2-config {config!r} is not a config of the sam2 package; "
                          f"choose one of {', '.join(names)}")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The `model` state dict of an official SAM 2 checkpoint file (weights only)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file it cannot read
        raise CheckpointError(f"{path}: not a SAM 2 checkpoint (unreadable: "
                              f"{str(exc).splitlines()[0]})") from None
    state = payload.get("model") if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise CheckpointError(f"{path}: not a SAM 2 checkpoint (expected a dict with a 'model' "
                              "state dict)")
    return state


def _key_list(kind: str, keys: list[str]) -> str:
    """`kind` keys, the first SHOWN_KEYS of them, for an error message."""
    if not keys:
        return ""
    more = f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else ""
    return f"{len(keys)} {kind} keys ({', '.join(keys[:SHOWN_KEYS])}{more})"


def _has_cuda_extension() -> bool:
    """Whether sam2's optional CUDA kernel (hole filling) is built."""
    try:
        importlib.import_module("sam2._C")
    except (ImportError, OSError):
        return False
    return True


def _uses_autocast(device: torch.device) -> bool:
    """bf16 autocast on a CUDA device that has it (as the originals), else fp32."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of `_uses_autocast`."""
    if _uses_autocast(device):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _memory_in_fp32(module: torch.nn.Module, args: tuple,
                    kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    """Forward pre-hook of SAM 2's memory attention without autocast: sam2 stores the memory
    features in bf16 (made for CUDA autocast), so attend to them in fp32."""
    return args, {**kwargs, "memory": kwargs["memory"].float(),
                  "memory_pos": kwargs["memory_pos"].float()}
