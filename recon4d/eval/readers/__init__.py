"""Readers of ground-truth benchmark folders; each module offers detect, sequences and load."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from types import ModuleType

from recon4d.errors import InputError
from recon4d.eval.readers.base import ALL_FRAMES, FrameSelection, GroundTruth
from recon4d.io.layout import POSES_FILE
from recon4d.options.choices import GT_FORMATS

# One module per format, tried in GT_FORMATS order (Bonn folders are also valid TUM folders).
READERS: dict[str, ModuleType] = {name: import_module(f"recon4d.eval.readers.{name}")
                                  for name in GT_FORMATS}

__all__ = ["ALL_FRAMES", "GT_FORMATS", "FrameSelection", "GroundTruth", "detect_format",
           "list_sequences", "load_sequence"]


def detect_format(root: Path) -> str:
    """The benchmark layout of `root`, or InputError listing what was looked for."""
    if not root.is_dir():
        raise InputError(f"{root}: ground-truth folder not found")
    for name, reader in READERS.items():
        if reader.detect(root):
            return name
    raise InputError(f"{root}: not a known ground-truth layout (looked for a synthetic scene "
                     f"with {POSES_FILE}, Sintel training/depth or camdata_left, DAVIS "
                     "JPEGImages + Annotations, TUM/Bonn rgb.txt)")


def list_sequences(root: Path, fmt: str = "auto") -> tuple[str, dict[str, Path]]:
    """(format, {sequence name: path}) of a ground-truth folder."""
    fmt = detect_format(root) if fmt == "auto" else fmt
    if fmt not in READERS:
        raise InputError(f"unknown ground-truth format {fmt!r}; choose one of {GT_FORMATS}")
    found = READERS[fmt].sequences(root)
    if not found:
        raise InputError(f"{root}: no {fmt} sequence found")
    return fmt, found


def load_sequence(fmt: str, path: Path, selection: FrameSelection = ALL_FRAMES) -> GroundTruth:
    """Load one sequence listed by `list_sequences`."""
    return READERS[fmt].load(path, selection)
