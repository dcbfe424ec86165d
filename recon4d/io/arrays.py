"""Reading .npy/.npz files as plain arrays: never unpickled, one clear message otherwise."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from recon4d.errors import InputError
from recon4d.io.os_errors import os_error_text

NPY_MAGIC = b"\x93NUMPY"
PICKLED = ("it holds Python objects (pickles), which recon4d refuses to load because loading "
           "them could run arbitrary code; save plain numeric or string arrays instead, e.g. "
           "np.savez(path, **{name: np.asarray(value, dtype=np.float32)})")


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """The array of a .npy file; InputError naming the file when it is unreadable or pickled."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            is_npy = f.read(len(NPY_MAGIC)) == NPY_MAGIC
    except OSError as exc:
        raise InputError(f"{path}: not a readable .npy file ({os_error_text(exc, path)})") \
            from None
    if not is_npy:  # numpy would take any other bytes for a pickle
        raise InputError(f"{path}: not a readable .npy file (no .npy header)")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # numpy's words for an array of Python objects
            raise InputError(f"{path}: {PICKLED}") from None
        raise InputError(f"{path}: not a readable .npy file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy file ({os_error_text(exc, path)})") \
            from None


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of a .npz file; InputError naming the file when it is unreadable or pickled."""
    path = Path(path)
    if not zipfile.is_zipfile(path):  # numpy would take any other bytes for a pickle
        raise InputError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InputError(f"{path}: {PICKLED}") from None
        raise InputError(f"{path}: not a readable .npz file ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npz file ({os_error_text(exc, path)})") \
            from None
