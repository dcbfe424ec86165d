"""SLAM3R's frame loader: its own file selection and order, the DUSt3R loader's pixels.

SLAM3R numbers every entry by the digits just before its extension and sorts numerically (ties by
name), drops folder names containing `depth`, then slices (`start_idx`, `img_freq`, `img_num`)
before skipping non-image names, so a skipped file can take a slot. Pixels are those of
`recon4d.io.images.load_images` (224: short side to 224, centred square crop). Each view also
carries `label`: the bare file name (folder) or the string as given (list).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from recon4d.errors import InputError
from recon4d.io.images import is_image_name, load_images
from recon4d.io.os_errors import os_error_text

DIGITS = "0123456789"


def frame_number(name: str, suffix_len: int) -> float:
    """The number formed by the digits just before the last `suffix_len` characters of `name`
    (as the reference reads it: the scan stops at index 1, so one leading non-digit is kept);
    InputError when they do not form a number."""
    end = len(name) - suffix_len
    i = end - 1
    while i >= 1 and name[i] in DIGITS:
        i -= 1
    digits = name[i + 1 if i >= 1 else 0:end]
    try:
        return float(digits)
    except ValueError:
        raise InputError(f"{name}: SLAM3R orders frames by the number just before the extension, "
                         "and this name has none (expected names like frame_000123.jpg)") from None


def order_frames(names: Sequence[str], postfix: str | None = None) -> list[str]:
    """`names` in SLAM3R's order: by frame number, ties by name. The suffix length is that of
    `postfix`, else of the first name's extension (dot included)."""
    if not names:
        return []
    if postfix:
        suffix_len = len(postfix)
    else:
        first = os.path.basename(names[0])
        if "." not in first:
            raise InputError(f"{names[0]}: no file extension, so SLAM3R's frame numbering "
                             "cannot be applied")
        suffix_len = len(first) - first.rindex(".")
    return sorted(names, key=lambda n: (frame_number(n, suffix_len), n))


def select_frames(source: str | os.PathLike | Sequence[str], *, img_num: int = 0,
                  img_freq: int = 0, postfix: str | None = None,
                  start_idx: int = 0) -> list[tuple[str, Path]]:
    """(label, path) of the images SLAM3R loads from a folder or a list of paths, in order.

    Folder: names without `depth` (ending with `postfix` if given); list: every entry. Then
    numeric order, `[start_idx:]`, `[::img_freq]`, `[:img_num]` (each when > 0), then only
    .jpg/.jpeg/.png (.heic/.heif with pillow-heif) names are kept.
    """
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        if not folder.is_dir():
            raise InputError(f"{folder}: not a folder (give a folder of frames or a list of "
                             "image paths)")
        try:
            names = [n for n in os.listdir(folder) if "depth" not in n]
        except OSError as exc:
            raise InputError(f"{folder}: cannot list folder ({os_error_text(exc, folder)})"
                             ) from exc
        if postfix:
            names = [n for n in names if n.endswith(postfix)]
        entries = [(n, folder / n) for n in order_frames(names, postfix)]
    else:
        entries = [(str(n), Path(n)) for n in order_frames([str(n) for n in source], postfix)]
    if start_idx > 0:
        entries = entries[start_idx:]
    if img_freq > 0:
        entries = entries[::img_freq]
    if img_num > 0:
        entries = entries[:img_num]
    return [(label, path) for label, path in entries if is_image_name(label)]


def load_slam3r_images(source: str | os.PathLike | Sequence[str], size: int = 224, *,
                       img_num: int = 0, img_freq: int = 0, postfix: str | None = None,
                       start_idx: int = 0, verbose: bool = False) -> list[dict]:
    """SLAM3R's `load_images`: views (`img`, `true_shape`, `idx`, `instance`, `label`) of the
    frames `select_frames` picks, resized and cropped as the DUSt3R loader at `size`.
    Relative list entries are read from the working directory, as in the reference."""
    for name, value in (("img_num", img_num), ("img_freq", img_freq), ("start_idx", start_idx)):
        if value < 0:
            raise InputError(f"{name} must be >= 0 (0: no limit), got {value}")
    selected = select_frames(source, img_num=img_num, img_freq=img_freq, postfix=postfix,
                             start_idx=start_idx)
    if not selected:
        raise InputError(f"{source}: no image selected (start_idx={start_idx}, "
                         f"img_freq={img_freq}, img_num={img_num}, postfix={postfix!r})")
    views = load_images([path for _, path in selected], size=size, verbose=verbose)
    for view, (label, _) in zip(views, selected, strict=True):
        view["label"] = label
    return views
