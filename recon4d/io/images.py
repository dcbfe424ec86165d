"""Model input images: the reference DUSt3R loader, bit for bit, for files, folders and frames.

Decoding, resizing and cropping follow the reference loader exactly (Pillow filters, half-to-even
rounding, patch-multiple crops; docs/formats.md, "Preprocessing"), so views match the official
`load_images` on the same Pillow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from recon4d.errors import InputError
from recon4d.io.os_errors import os_error_text

logger = logging.getLogger(__name__)

try:  # HEIC/HEIF photos, as in the reference, only when the optional plugin is installed
    from pillow_heif import register_heif_opener
except ImportError:
    IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")
else:
    register_heif_opener()
    IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".heic", ".heif")

Frame = Image.Image | np.ndarray
ImageInput = str | os.PathLike | Frame


def is_image_name(name: str | os.PathLike) -> bool:
    """Whether a file name has an extension the loader accepts (case-insensitive)."""
    return os.fspath(name).lower().endswith(IMAGE_EXTENSIONS)


def natural_key(name: str) -> tuple:
    """Sort key ordering digit runs by value: 'frame_2' < 'frame_10'; ties broken by the name."""
    parts = re.split(r"([0-9]+)", name)
    parts[1::2] = [int(p) for p in parts[1::2]]
    return (parts, name)


def list_image_folder(folder: str | os.PathLike) -> list[Path]:
    """Image files of `folder` in natural order; other names are skipped (logged at debug level)."""
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except OSError as exc:
        raise InputError(f"{folder}: cannot list folder ({os_error_text(exc, folder)})") from exc
    images = []
    for name in sorted(names, key=natural_key):
        if is_image_name(name):
            images.append(folder / name)
        else:
            logger.debug("skipping %s: not a %s file", folder / name, "/".join(IMAGE_EXTENSIONS))
    return images


@contextlib.contextmanager
def _strict_decoding() -> Iterator[None]:
    """Make Pillow raise on truncated data even if another library enabled lenient loading."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _to_rgb(img: Image.Image, label: str) -> Image.Image:
    """Apply the EXIF orientation and convert to RGB (alpha dropped, gray replicated)."""
    img = ImageOps.exif_transpose(img)
    if img.mode.startswith(("I", "F")) and img.getextrema()[1] > 255:
        logger.warning("%s: %s grayscale values above 255 are clipped to white (Pillow's RGB "
                       "conversion, as in the reference loader)", label, img.mode)
    return img.convert("RGB")


def _decode_file(path: Path) -> Image.Image:
    """Decode an image file completely, or raise InputError naming the file and the problem."""
    try:
        with _strict_decoding(), Image.open(path) as img:
            img.load()
            return _to_rgb(img, str(path))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except PermissionError as exc:
        raise InputError(f"{path}: permission denied") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a folder, not an image file") from exc
    except UnidentifiedImageError as exc:
        problem = ("file is empty (0 bytes)" if path.stat().st_size == 0
                   else "not a recognised image (wrong extension or corrupt header)")
        raise InputError(f"{path}: {problem}") from exc
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path}: {exc}") from exc
    except Exception as exc:  # whatever a Pillow decoder raises, the file is the problem
        raise InputError(f"{path}: cannot decode image, truncated or corrupt "
                         f"({os_error_text(exc, path)})") from exc


def _frame_to_pil(frame: Frame, label: str) -> Image.Image:
    """An in-memory frame (PIL image or uint8 H×W, H×W×3, H×W×4 array) as an RGB PIL image."""
    if isinstance(frame, Image.Image):
        try:
            with _strict_decoding():
                frame.load()  # an image from Image.open is decoded only now
            return _to_rgb(frame, label)
        except Exception as exc:  # whatever a Pillow decoder raises, the frame is the problem
            raise InputError(f"{label}: cannot decode image ({os_error_text(exc)})") from exc
    arr = np.asarray(frame)
    if arr.dtype != np.uint8 or arr.size == 0 or not (
            arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise InputError(f"{label}: expected a non-empty uint8 array of shape H×W×3 (or H×W, "
                         f"H×W×4), got shape {arr.shape} dtype {arr.dtype}")
    return Image.fromarray(arr).convert("RGB")


class CropGeometry(NamedTuple):
    """Where a source image goes: Pillow resize to `resized` (W, H), then crop `box` of it."""

    resized: tuple[int, int]
    box: tuple[int, int, int, int]
    lanczos: bool  # LANCZOS when shrinking, BICUBIC when enlarging (or same size)


_ROTATED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def upright_size(source: ImageInput) -> tuple[int, int]:
    """(width, height) of an input as the loader sees it (EXIF rotation applied), no decoding."""
    if isinstance(source, np.ndarray):
        return int(source.shape[1]), int(source.shape[0])
    if isinstance(source, Image.Image):
        width, height = source.size
        orientation = source.getexif().get(0x0112)
    else:
        try:
            with Image.open(source) as img:
                width, height = img.size
                orientation = img.getexif().get(0x0112)
        except (OSError, UnidentifiedImageError) as exc:
            reason = os_error_text(exc, source)
            raise InputError(f"{source}: cannot read image ({reason})") from None
    return (height, width) if orientation in _ROTATED_ORIENTATIONS else (width, height)


def crop_geometry(width: int, height: int, size: int = 512, square_ok: bool = False,
                  patch_size: int = 16) -> CropGeometry:
    """The reference loader's resize and centre crop of a `width`×`height` image (docs/formats.md,
    "Preprocessing").

    Useful to map model-input pixels back to the original image: x_orig = (x + box[0]) * W / W'.
    """
    if size == 224:  # short side to 224
        long_edge = round(size * max(width / height, height / width))
    else:
        long_edge = size
    s = max(width, height)
    w, h = (int(round(x * long_edge / s)) for x in (width, height))
    cx, cy = w // 2, h // 2
    if size == 224:
        halfw = halfh = min(cx, cy)
    else:
        halfw = ((2 * cx) // patch_size) * patch_size / 2
        halfh = ((2 * cy) // patch_size) * patch_size / 2
        if w == h and not square_ok:
            halfh = 3 * halfw / 4
    box = (cx - halfw, cy - halfh, cx + halfw, cy + halfh)
    # Pillow rounds float crop boxes with Python round; done here so the box is exact integers
    return CropGeometry((w, h), tuple(round(v) for v in box), s > long_edge)


def resize_and_crop(img: Image.Image, size: int = 512, square_ok: bool = False,
                    patch_size: int = 16) -> Image.Image:
    """Resize and centre-crop a PIL image exactly as the reference loader (see crop_geometry)."""
    geo = crop_geometry(*img.size, size=size, square_ok=square_ok, patch_size=patch_size)
    filt = Image.Resampling.LANCZOS if geo.lanczos else Image.Resampling.BICUBIC
    return img.resize(geo.resized, filt).crop(geo.box)


def _to_view(img: Image.Image, idx: int) -> dict:
    """The reference view dict of a cropped RGB image: img in [-1, 1], true_shape, idx, instance."""
    chw = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    tensor = chw.float().div_(255).sub_(0.5).div_(0.5)  # (u8/255 - 0.5)/0.5 in float32
    true_shape = np.array([[img.height, img.width]], dtype=np.int32)
    return dict(img=tensor[None], true_shape=true_shape, idx=idx, instance=str(idx))


def _expand_inputs(inputs: ImageInput | Iterable[ImageInput]) -> tuple[str, list]:
    """(description for messages, list of paths and frames) of what `load_images` was given."""
    if isinstance(inputs, (str, os.PathLike)):
        path = Path(inputs)
        if path.is_dir():
            return f"folder {path}", list_image_folder(path)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        return str(path), [path]
    if isinstance(inputs, Image.Image) or (isinstance(inputs, np.ndarray) and inputs.ndim < 4):
        return "the given frame", [inputs]
    items = list(inputs)  # an iterable of paths/frames, or a 4-D array = stack of frames
    return f"the given list of {len(items)} inputs", items


def load_images(inputs: ImageInput | Iterable[ImageInput], size: int = 512,
                square_ok: bool = False, patch_size: int = 16,
                verbose: bool = False) -> list[dict]:
    """Load images (a folder, paths, PIL images or uint8 arrays) as reference model-input views.

    A folder is read in natural order (frame_2 before frame_10). Names without an image extension
    are skipped and consume no index. Each view: `img` float32 1×3×H×W in [-1, 1], `true_shape`
    int32 [[H, W]], `idx` (position in the result) and `instance` = str(idx).
    """
    if size < patch_size or patch_size < 1:
        raise ValueError(f"size ({size}) must be >= patch_size ({patch_size}) >= 1")
    what, items = _expand_inputs(inputs)
    report = print if verbose else logger.debug
    report(f"Loading {what} ({len(items)} entries)")
    views: list[dict] = []
    for pos, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            if not is_image_name(item):
                logger.debug("skipping %s: not a %s file", item, "/".join(IMAGE_EXTENSIONS))
                continue
            label, img = os.fspath(item), _decode_file(Path(item))
        else:
            label = f"frame {pos}"
            img = _frame_to_pil(item, label)
        cropped = resize_and_crop(img, size, square_ok, patch_size)
        if 0 in cropped.size:
            raise InputError(f"{label}: image {img.size[0]}x{img.size[1]} is too elongated for "
                             f"size {size}: the {patch_size}-pixel crop would be empty")
        report(f" - adding {label} with resolution {img.size[0]}x{img.size[1]} --> "
               f"{cropped.size[0]}x{cropped.size[1]}")
        views.append(_to_view(cropped, len(views)))
    if not views:
        raise InputError(f"{what}: no images found (expected {', '.join(IMAGE_EXTENSIONS)} "
                         "files or in-memory frames)")
    report(f" (Found {len(views)} images)")
    return views
