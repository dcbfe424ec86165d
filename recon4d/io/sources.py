"""What the command line reads: a folder of images, a video, one image, or a list, as one source."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from recon4d.errors import InputError, Recon4dError
from recon4d.io.images import IMAGE_EXTENSIONS, is_image_name, list_image_folder
from recon4d.io.layout import frame_name
from recon4d.io.video import VIDEO_EXTENSIONS, is_video_name, read_video

logger = logging.getLogger(__name__)


@dataclass
class FrameSource:
    """Frames in order (image paths or uint8 RGB arrays, both accepted by `load_images`)."""

    input: str  # what the user gave, for messages and scene.json
    frames: list[Path | np.ndarray | Image.Image]
    names: list[str]  # one per frame: the file name, or frame_NNNNNN (source frame index)
    timestamps: np.ndarray | None = None  # float64 seconds, videos only
    fps: float | None = None  # the video's own frame rate, videos only

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def ordered(self) -> bool:
        """Whether the frames are a time sequence: a video, or files numbered as frames are
        (`is_frame_sequence`). Unordered image sets keep the static path of `reconstruct`."""
        return self.timestamps is not None or is_frame_sequence(self.names)

    def require(self, count: int, purpose: str = "image pairs") -> None:
        """Raise InputError unless there are at least `count` frames (e.g. 2 to make pairs)."""
        if len(self) < count:
            raise InputError(f"{self.input}: {len(self)} frame(s) found, at least {count} "
                             f"needed for {purpose}")


def is_frame_sequence(names: Sequence[str]) -> bool:
    """Whether file names look like the frames of one video: at least two, every stem ends with
    a number, the numbers are distinct, and the stems differ only in that number
    (`frame_0001.png`, `00017.jpg`, `img-3.png`; not `IMG_2041.jpg` beside `DSC_0001.jpg`)."""
    if len(names) < 2:
        return False
    parts = [re.fullmatch(r"(.*?)([0-9]+)", Path(name).stem) for name in names]
    if not all(parts):
        return False
    prefixes = {m.group(1) for m in parts}
    numbers = [int(m.group(2)) for m in parts]
    return len(prefixes) == 1 and len(set(numbers)) == len(numbers)


def _image_file(path: Path) -> Path:
    """`path` if it is an existing file with an image extension, else InputError saying why."""
    if not is_image_name(path):
        raise InputError(f"{path}: unsupported file type {path.suffix!r}; expected images "
                         f"({', '.join(IMAGE_EXTENSIONS)}), a folder of them, or one video "
                         f"({', '.join(VIDEO_EXTENSIONS)})")
    if not path.is_file():
        raise InputError(f"{path}: {'is a folder' if path.is_dir() else 'file not found'}")
    return path


def _from_path(path: Path, fps: float | None, num_frames: int | None) -> FrameSource:
    """A folder (natural order), a video file or a single image."""
    if is_video_name(path) and path.is_file():
        video = read_video(path, fps=fps, num_frames=num_frames)
        return FrameSource(str(path), video.frames, [frame_name(i) for i in video.indices],
                           video.timestamps, video.fps)
    if path.is_dir():
        paths = list_image_folder(path)
        if not paths:
            raise InputError(f"{path}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder; "
                             "a video must be given as its file")
    elif not path.exists():
        raise InputError(f"{path}: no such file or folder")
    else:
        paths = [_image_file(path)]
    return _images(str(path), paths, fps, num_frames)


def _images(what: str, frames: list, fps: float | None, num_frames: int | None) -> FrameSource:
    """A FrameSource of still images (paths or in-memory frames), capped to `num_frames`."""
    if fps is not None:
        logger.warning("%s: --fps applies to videos only; all images are used", what)
    frames = frames[:num_frames] if num_frames is not None else frames
    names = [f.name if isinstance(f, Path) else frame_name(k) for k, f in enumerate(frames)]
    return FrameSource(what, frames, names)


def collect_frames(input: str | os.PathLike | Sequence, fps: float | None = None,
                   num_frames: int | None = None) -> FrameSource:
    """Gather the frames to reconstruct from a folder, a video, an image, or a list of them.

    A list holds image paths and/or in-memory frames (a one-element list may also be a folder or
    a video). `fps` subsamples videos by timestamps; `num_frames` keeps the first frames.
    """
    if num_frames is not None and num_frames < 1:
        raise Recon4dError(f"num_frames must be at least 1, got {num_frames}")
    if isinstance(input, (str, os.PathLike)):
        return _from_path(Path(input), fps, num_frames)
    items = list(input)
    if not items:
        raise InputError("no input given: expected images, a folder of images or a video")
    if len(items) == 1 and isinstance(items[0], (str, os.PathLike)):
        return _from_path(Path(items[0]), fps, num_frames)
    frames = [_image_file(Path(f)) if isinstance(f, (str, os.PathLike)) else f for f in items]
    return _images(f"the list of {len(items)} inputs", frames, fps, num_frames)
