"""Video decoding with PyAV: RGB frames with their timestamps, optionally subsampled in time."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon4d.errors import InputError, Recon4dError
from recon4d.io.os_errors import os_error_text

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v")


@dataclass
class VideoFrames:
    """Decoded frames (uint8 H×W×3 RGB, display rotation applied) and where they come from."""

    path: Path
    frames: list[np.ndarray]
    timestamps: np.ndarray  # float64 seconds from the first frame of the video stream
    indices: np.ndarray  # int64 position of each frame among all decoded frames of the stream
    fps: float  # the stream's average frame rate (nan when the container does not say)

    def __len__(self) -> int:
        return len(self.frames)


def is_video_name(name: str | os.PathLike) -> bool:
    """Whether a file name has a video extension read by `read_video` (case-insensitive)."""
    return os.fspath(name).lower().endswith(VIDEO_EXTENSIONS)


def _import_av():
    """The PyAV module, or an InputError saying how to install it."""
    try:
        import av
    except ImportError as exc:
        raise InputError("reading videos needs PyAV: pip install 'recon4d[video]'") from exc
    return av


def _check_options(fps: float | None, num_frames: int | None, start: float) -> None:
    """Reject sampling options that cannot select any frame."""
    if fps is not None and not fps > 0:
        raise Recon4dError(f"fps must be positive, got {fps}")
    if num_frames is not None and num_frames < 1:
        raise Recon4dError(f"num_frames must be at least 1, got {num_frames}")
    if not start >= 0:
        raise Recon4dError(f"start must be >= 0 seconds, got {start}")


def _rgb(frame) -> np.ndarray:
    """A decoded PyAV frame as uint8 H×W×3 RGB, rotated as the container asks players to show it."""
    rgb = frame.to_ndarray(format="rgb24")
    # counter-clockwise degrees, the np.rot90 direction; older PyAV releases do not report it
    quarter_turns = round(getattr(frame, "rotation", 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, quarter_turns)) if quarter_turns else rgb


def read_video(path: str | os.PathLike, fps: float | None = None, num_frames: int | None = None,
               start: float = 0.0) -> VideoFrames:
    """Decode frames from `start` seconds on, at most `fps` per second and `num_frames` in all.

    Subsampling follows timestamps (the first frame at or after each 1/fps step), so it holds for
    variable frame rates and rates that do not divide the source rate.
    """
    _check_options(fps, num_frames, start)
    av = _import_av()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {'is a folder' if path.is_dir() else 'file not found'}")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (0 bytes)")
    frames, times, indices = [], [], []
    try:
        with av.open(os.fspath(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: contains no video stream")
            if container.format.name == "image2" or container.format.name.endswith("_pipe"):
                raise InputError(f"{path}: is a still image, not a video")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            tick = float(stream.time_base) if stream.time_base else 1e-6
            tol = 0.5 * tick + 1e-9  # timestamps are rounded to the stream's time base
            origin = None  # time of the first decoded frame = t 0
            rate = float(stream.average_rate or stream.guessed_rate or math.nan)
            grid_t0, step = None, 0
            for index, frame in enumerate(container.decode(stream)):
                if frame.time is not None:
                    if origin is None:
                        origin = frame.time
                    t = frame.time - origin
                else:  # no timestamp: assume a constant rate
                    t = index / rate if rate > 0 else float(index)
                if t < start - tol:
                    continue
                if fps is not None:
                    if grid_t0 is None:
                        grid_t0 = t
                    if t < grid_t0 + step / fps - tol:
                        continue
                    step = math.floor((t - grid_t0 + tol) * fps) + 1
                frames.append(_rgb(frame))
                times.append(t)
                indices.append(index)
                if num_frames is not None and len(frames) >= num_frames:
                    break
    except InputError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read video ({os_error_text(exc, path)})") from exc
    if not frames:
        after = f" at or after {start} s" if start > 0 else ""
        raise InputError(f"{path}: no video frames could be decoded{after}")
    return VideoFrames(path, frames, np.asarray(times, dtype=np.float64),
                       np.asarray(indices, dtype=np.int64), rate)
