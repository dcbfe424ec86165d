"""Uploads of the web app: check what a user sent (before any job starts) and stage it in the
job's folder. Every refusal is an InputError naming the file as the user called it."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from recon4d.errors import InputError, Recon4dError
from recon4d.io.images import IMAGE_EXTENSIONS
from recon4d.io.video import VIDEO_EXTENSIONS, is_video_name, read_video
from recon4d.options.app import AppOptions

MIN_FRAMES = 2  # every job needs a pair


@dataclass(frozen=True)
class StagedInput:
    """Frames staged for a job: a folder of images or one video file, and how many frames the
    job will use (a video is cut to the frame limit)."""

    path: Path
    frames: int
    video: bool
    note: str = ""  # what the app changed (a video cut to the frame limit)


def stage_upload(files: Sequence[str | Path], folder: Path, limits: AppOptions,
                 fps: float | None = None) -> StagedInput:
    """Check uploaded `files` (images, or one video) against `limits` and copy them into
    `folder`; InputError saying what is wrong and with which file, nothing copied then."""
    paths = [Path(f) for f in files]
    if not paths:
        raise InputError("nothing uploaded: add images or a video, or generate an example")
    size_mb = sum(p.stat().st_size for p in paths) / 1e6
    if size_mb > limits.max_upload_mb:
        raise InputError(f"the upload is {size_mb:.0f} MB; at most {limits.max_upload_mb:g} MB "
                         "is accepted (recon4d app --max-upload-mb)")
    videos = [p for p in paths if is_video_name(p)]
    if videos:
        if len(paths) > 1:
            raise InputError(f"{videos[0].name}: upload one video alone, or images only")
        return _stage_video(paths[0], folder, limits, fps)
    for path in paths:
        check_image(path, limits.max_image_side)
    if len(paths) < MIN_FRAMES:
        raise InputError(f"{paths[0].name}: one frame only; upload at least {MIN_FRAMES} images "
                         "or a video")
    if len(paths) > limits.max_frames:
        raise InputError(f"{len(paths)} images uploaded; at most {limits.max_frames} are "
                         "accepted (recon4d app --max-frames)")
    folder.mkdir(parents=True)
    for path in paths:
        shutil.copyfile(path, _free_name(folder, path.name))
    return StagedInput(folder, len(paths), video=False)


def check_image(path: Path, max_side: int) -> None:
    """An image file the jobs can read: a known image type that decodes completely, with no
    side over `max_side` pixels (checked from the header, before decoding)."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise InputError(f"{path.name}: not an image or a video (accepted: "
                         f"{', '.join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)})")
    try:
        with Image.open(path) as img:
            width, height = img.size
            if max(width, height) > max_side:
                raise InputError(f"{path.name}: {width}x{height} pixels; the longest side may "
                                 f"be at most {max_side} (recon4d app --max-image-side)")
            img.load()
    except Recon4dError:
        raise
    except Exception as exc:  # whatever Pillow raises, the file is the problem
        raise InputError(f"{path.name}: not a readable image (corrupt or of another type)") \
            from exc


def _stage_video(path: Path, folder: Path, limits: AppOptions, fps: float | None
                 ) -> StagedInput:
    """Decode the frames a job would use (corrupt or too short videos fail here), then copy."""
    try:
        frames = len(read_video(path, fps=fps, num_frames=limits.max_frames + 1).frames)
    except Recon4dError as exc:
        raise InputError(str(exc).replace(str(path), path.name)) from exc
    if frames < MIN_FRAMES:
        raise InputError(f"{path.name}: {frames} frame(s)"
                         f"{' at this fps' if fps else ''}; a job needs at least {MIN_FRAMES}")
    note = ""
    if frames > limits.max_frames:
        frames = limits.max_frames
        note = f"the video is cut to its first {frames} frames (recon4d app --max-frames)"
    folder.mkdir(parents=True)
    target = folder / path.name
    shutil.copyfile(path, target)
    return StagedInput(target, frames, video=True, note=note)


def _free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/<k>_name` when two uploads have the same name."""
    target, k = folder / name, 1
    while target.exists():
        target, k = folder / f"{k}_{name}", k + 1
    return target
