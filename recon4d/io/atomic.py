"""Atomic writes: a reader never sees a half-written file or output folder.

Staging entries are named `.NAME.<host>_<pid>_<start>.<random>` + `.partial`, `.old` or `.tmp`:
the next `atomic_output_dir` of NAME removes the folders of a process that was killed outright.
Entries get the modes any file writer gives (0o666/0o777 less the umask), so others can read
results as usual.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from recon4d.errors import OutputError
from recon4d.io.os_errors import os_error_text

logger = logging.getLogger(__name__)

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:24]
_STALE_SUFFIXES = (".partial", ".old")  # what a killed atomic_output_dir leaves


def _start_ticks(pid: int) -> int | None:
    """Start time of process `pid` in clock ticks after boot (/proc), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[19])  # field 22; the name may hold spaces or ')'


@functools.lru_cache
def _owner(pid: int) -> str:
    """`<host>_<pid>_<start>` of this process: a pid alone may be reused after it exits."""
    return f"{_HOST}_{pid}_{_start_ticks(pid) or 0}"


def _owner_alive(pid: int, start: int) -> bool:
    """Whether the process that recorded (`pid`, `start`) on this host may still run."""
    if Path("/proc/self/stat").exists():
        return _start_ticks(pid) == start
    if os.name != "posix":  # no safe way to probe a process; keep its files
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True


def _new_entry(parent: Path, name: str, suffix: str, create: Callable[[Path], None]) -> Path:
    """Create `.NAME.<owner>.<random>SUFFIX` in `parent` with `create` (which fails if present)."""
    entry = parent / f".{name}.{_owner(os.getpid())}.{secrets.token_hex(4)}{suffix}"
    create(entry)
    return entry


def _create_file(path: Path) -> None:
    """Create an empty new file with the mode `open()` would give it (0o666 less the umask)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


def _create_folder(path: Path) -> None:
    """Create a new folder with the mode `mkdir` would give it (0o777 less the umask)."""
    path.mkdir(mode=0o777)


def _remove_stale_staging(out_dir: Path) -> None:
    """Remove the staging folders of `out_dir` left by dead processes of this host.

    A process killed outright (SIGKILL, power loss) runs no cleanup. Folders of live processes,
    of other hosts (a shared file system) and of unknown form are kept.
    """
    pattern = re.compile(rf"\.{re.escape(out_dir.name)}\.{re.escape(_HOST)}_(\d+)_(\d+)"
                         rf"\.[0-9a-f]+(?:{'|'.join(map(re.escape, _STALE_SUFFIXES))})")
    try:
        names = os.listdir(out_dir.parent)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match and not _owner_alive(int(match[1]), int(match[2])):
            logger.info("removing %s, left by a process that no longer runs",
                        out_dir.parent / name)
            shutil.rmtree(out_dir.parent / name, ignore_errors=True)


def _writable(folder: Path) -> bool:
    """Whether this process may create and rename entries in `folder` (effective ids)."""
    return os.access(folder, os.W_OK | os.X_OK,
                     effective_ids=os.access in os.supports_effective_ids)


def check_output_location(out_dir: str | os.PathLike) -> None:
    """Raise OutputError unless `atomic_output_dir(out_dir)` can create or replace `out_dir`.

    Meant to run before any slow work, so a bad `--out` costs nothing: an ancestor that is a
    file, a parent (or the nearest existing ancestor) that is not writable, or an existing
    folder that cannot be moved aside.
    """
    out_dir = Path(out_dir)
    if os.path.isdir(out_dir):
        if not _writable(out_dir.parent):
            raise OutputError(f"{out_dir}: cannot replace this folder: its parent folder "
                              f"{out_dir.parent} is not writable")
        if not _writable(out_dir):  # moving a folder to another parent rewrites its '..'
            raise OutputError(f"{out_dir}: cannot replace this folder: it is not writable")
        return
    if os.path.lexists(out_dir):
        raise OutputError(f"{out_dir}: output path exists and is not a folder")
    _check_creatable(out_dir, "the output folder")


def check_output_file(path: str | os.PathLike) -> None:
    """Raise OutputError unless `atomic_path(path)` can write the file `path` (checked before
    any slow work, like `check_output_location`)."""
    path = Path(path)
    if os.path.isdir(path):
        raise OutputError(f"{path}: output path is a folder, not a file")
    _check_creatable(path, "the output file")


def _check_creatable(path: Path, what: str) -> None:
    """OutputError unless the nearest existing ancestor of `path` is a writable folder."""
    ancestor = next(p for p in path.absolute().parents if os.path.exists(p))
    if not ancestor.is_dir():
        raise OutputError(f"{path}: cannot create {what}: {ancestor} is a file, not a folder")
    if not _writable(ancestor):
        raise OutputError(f"{path}: cannot create {what}: {ancestor} is not writable")


def _make_parent(path: Path) -> None:
    """Create the parent folders of `path`, or raise OutputError naming the problem."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create its folder ({os_error_text(exc)})") from exc


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, else delete it."""
    path = Path(path)
    _make_parent(path)
    try:
        tmp_path = _new_entry(path.parent, path.name, ".tmp", _create_file)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({os_error_text(exc)})") from exc
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename `staging` to `out_dir`; an existing `out_dir` is moved aside first, then deleted."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    old = _new_entry(out_dir.parent, out_dir.name, ".old", _create_folder)
    try:
        os.replace(out_dir, old / "content")
    except OSError as exc:
        old.rmdir()
        raise OutputError(f"{out_dir}: cannot replace the existing folder "
                          f"({os_error_text(exc)})") from exc
    os.replace(staging, out_dir)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_output_dir(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh staging folder; on success it replaces `out_dir`, on error it is removed.

    An existing `out_dir` is replaced only after the new content is complete, so an interrupted
    run (error, Ctrl-C, SIGTERM via `sigterm_as_interrupt`) leaves either the old folder or
    nothing, never a half-written one. Staging left by killed runs is removed first.
    """
    out_dir = Path(out_dir)
    _make_parent(out_dir)
    _remove_stale_staging(out_dir)
    try:
        staging = _new_entry(out_dir.parent, out_dir.name, ".partial", _create_folder)
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot create the output folder "
                          f"({os_error_text(exc)})") from exc
    try:
        yield staging
        _move_into_place(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
