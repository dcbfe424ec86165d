"""`scene.json`: what a run did (command, options, version) and every file it wrote."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from recon4d import __version__
from recon4d.errors import OutputError
from recon4d.io.atomic import atomic_write_text, check_output_location
from recon4d.io.layout import SCENE_JSON

SCENE_JSON_FORMAT = 1


def write_scene_json(out_dir: str | os.PathLike, command: str, options: dict[str, Any],
                     extra: dict[str, Any] | None = None) -> Path:
    """Write `out_dir/scene.json`, listing every file under `out_dir` (relative, sorted)."""
    out_dir = Path(out_dir)
    files = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*")
                   if p.is_file() and p.name != SCENE_JSON)
    doc = {
        "format": SCENE_JSON_FORMAT,
        "recon4d_version": __version__,
        "command": command,
        "options": options,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        **(extra or {}),
        "files": files + [SCENE_JSON],
    }
    path = out_dir / SCENE_JSON
    atomic_write_text(path, json.dumps(doc, indent=2, default=str) + "\n")
    return path


def read_scene_json(out_dir: str | os.PathLike) -> dict[str, Any]:
    """Read `out_dir/scene.json`."""
    return json.loads((Path(out_dir) / SCENE_JSON).read_text())


def check_output_folder(out: str | os.PathLike, command: str) -> None:
    """Refuse an unwritable `out`, or a non-empty folder that `recon4d <command>` did not write.

    Both raise OutputError (see `check_output_location` for the first). A folder is recognised by
    its scene.json's `command`, so a run never replaces its own input (a synthetic scene, an
    infer folder) or unrelated files. Checked before any work, so a bad `--out` costs nothing.
    """
    out = Path(out)
    check_output_location(out)
    if not out.is_dir() or not any(out.iterdir()):
        return
    try:
        doc = read_scene_json(out)
        previous = doc.get("command") if isinstance(doc, dict) else None
    except (OSError, ValueError):
        previous = None
    if previous == command:
        return
    what = (f"the output of `recon4d {previous}`" if isinstance(previous, str)
            else "not a recon4d output (no readable scene.json)")
    raise OutputError(f"{out}: output folder is not empty and is {what}; only a previous "
                     f"`recon4d {command}` output is replaced (choose a new or empty folder)")
