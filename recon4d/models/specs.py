"""Checkpoint specs: what a `--weights` value names, from explicit forms rather than guesses.

Accepted forms (as timm's): `hf-hub:owner/name[@revision]` (a Hugging Face Hub download),
`file:PATH` (a local file or folder, never a download), a registry name or alias (the official
repo ids are registry names too), and a path that exists. Anything else is refused with a message,
so that a mistyped local path never silently becomes a download.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from recon4d.errors import CheckpointError
from recon4d.models.registry import find_official, official_names

HUB_PREFIX = "hf-hub:"
FILE_PREFIX = "file:"
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_PATH_START = (".", "/", "~")


@dataclass(frozen=True)
class CheckpointSource:
    """Where a checkpoint comes from: a local `path`, or a Hub `repo_id` at `revision`."""

    path: Path | None = None
    repo_id: str | None = None
    revision: str | None = None


def parse_spec(spec: str | Path) -> CheckpointSource:
    """The source a checkpoint spec names, without any download; CheckpointError when unclear.

    A `Path` is always a local path. A string is one of the explicit forms of this module; a
    bare `owner/name` that is neither an existing path nor a registry name is refused (write
    `hf-hub:owner/name` to download it), and so is a string that is both.
    """
    if isinstance(spec, Path):
        return CheckpointSource(path=_existing(spec, str(spec)))
    if spec.startswith(HUB_PREFIX):
        return _hub_source(spec)
    if spec.startswith(FILE_PREFIX):
        return CheckpointSource(path=_existing(spec[len(FILE_PREFIX):], spec))
    path = Path(spec).expanduser()
    entry = find_official(spec)
    if entry is not None and path.exists():
        raise CheckpointError(
            f"{spec}: ambiguous: both a registry name and an existing path; write "
            f"{FILE_PREFIX}{spec} for the local checkpoint or {HUB_PREFIX}{entry.repo_id} for "
            "the download")
    if entry is not None:
        return CheckpointSource(repo_id=entry.repo_id)
    if path.exists():
        return CheckpointSource(path=path)
    if _looks_like_path(spec):
        raise CheckpointError(f"{spec}: no such checkpoint file or folder")
    if _REPO_ID.match(spec):
        raise CheckpointError(
            f"{spec}: no such checkpoint file or folder; to download from the Hugging Face Hub "
            f"write {HUB_PREFIX}{spec}")
    raise CheckpointError(
        f"{spec}: no such checkpoint file or folder, and not a known model name "
        f"({', '.join(official_names())})")


def _hub_source(spec: str) -> CheckpointSource:
    """`hf-hub:owner/name[@revision]` -> its repo id and revision (None: the default branch)."""
    repo_id, at, revision = spec[len(HUB_PREFIX):].partition("@")
    if not _REPO_ID.match(repo_id) or (at and not revision):
        raise CheckpointError(
            f"{spec}: not a Hugging Face Hub spec; expected {HUB_PREFIX}owner/name or "
            f"{HUB_PREFIX}owner/name@revision")
    return CheckpointSource(repo_id=repo_id, revision=revision or None)


def _existing(path: str | Path, spec: str) -> Path:
    """`path` (with ~ expanded) when it exists, else CheckpointError naming `spec`."""
    if not str(path):
        raise CheckpointError(f"{spec}: no path given; expected {FILE_PREFIX}PATH")
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{spec}: no such checkpoint file or folder")
    return path


def _looks_like_path(spec: str) -> bool:
    """Relative or absolute path syntax, a checkpoint file suffix, or more than one slash."""
    return (spec.startswith(_PATH_START) or spec.lower().endswith(WEIGHT_SUFFIXES)
            or spec.count("/") > 1 or "\\" in spec)
