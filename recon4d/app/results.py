"""What the page shows of a finished job's output folder, and the folder as a zip download."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from recon4d.errors import InputError
from recon4d.eval.report import format_table
from recon4d.io.atomic import atomic_path
from recon4d.io.layout import (
    CONF_VIDEO_STEM,
    DEPTH_VIDEO_STEM,
    DYNAMIC_CLOUD_DIR,
    DYNAMIC_MASK_VIDEO_STEM,
    GLB_FILE,
    METRICS_FILE,
    MOTION_OVERLAY_VIDEO,
    RENDER_VIDEO,
    SCENE_JSON,
    STATIC_CLOUD_FILE,
)
from recon4d.io.scene_json import read_scene_json

VIDEOS = (  # (file, label), in the order the page shows them
    (RENDER_VIDEO, "4D cloud, virtual camera"),
    (f"{DEPTH_VIDEO_STEM}.mp4", "depth"),
    (f"{DYNAMIC_MASK_VIDEO_STEM}.mp4", "motion masks"),
    (MOTION_OVERLAY_VIDEO, "motion masks"),
    (f"{CONF_VIDEO_STEM}.mp4", "confidence"),
)


@dataclass
class ResultView:
    """A finished job's output folder as the page shows it."""

    folder: Path
    glb: Path | None = None
    videos: list[tuple[Path, str]] = field(default_factory=list)
    pictures: list[Path] = field(default_factory=list)  # matches drawn on the images
    four_d: bool = False  # a static cloud and per-frame moving clouds: the 4D viewer can open it
    summary: str = ""  # Markdown


def read_result(folder: Path, lines: list[str], note: str = "") -> ResultView:
    """The view of output `folder`; `lines` are the job's own result lines, `note` a remark
    (a metrics failure, a cut video)."""
    glb = folder / GLB_FILE
    view = ResultView(folder, glb if glb.is_file() else None)
    view.videos = [(folder / name, label) for name, label in VIDEOS if (folder / name).is_file()]
    view.pictures = sorted(folder.glob("matches_*.png"))
    view.four_d = (folder / STATIC_CLOUD_FILE).is_file() and (folder / DYNAMIC_CLOUD_DIR).is_dir()
    view.summary = summary_markdown(folder, lines, note)
    return view


def summary_markdown(folder: Path, lines: list[str], note: str = "") -> str:
    """The job's result lines, its size and timings (scene.json), and the metrics against the
    ground truth when `recon4d eval` wrote them."""
    doc = read_scene_json(folder)
    parts = [f"**{doc['command']}** finished: `{folder.parent.name}`"]
    parts += [f"- {line}" for line in lines]
    if note:
        parts.append(f"- note: {note}")
    if doc.get("timing"):
        timing = ", ".join(f"{k} {v:.1f} s" for k, v in doc["timing"].items())
        parts.append(f"- timing: {timing}")
    metrics = folder / METRICS_FILE
    if metrics.is_file():
        parts.append("\n**Metrics against the ground truth** (`recon4d eval`):\n\n```text\n"
                     f"{format_table(json.loads(metrics.read_text()))}\n```")
    return "\n".join(parts)


def zip_folder(folder: Path, archive: Path) -> Path:
    """Write `folder`'s files (scene.json at the top of the archive) to `archive` atomically,
    once: an existing archive is returned as it is."""
    if not archive.is_file():
        if not (folder / SCENE_JSON).is_file():
            raise InputError(f"{folder}: not a complete output folder (no {SCENE_JSON})")
        with atomic_path(archive) as partial, zipfile.ZipFile(partial, "w",
                                                               zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(folder).as_posix())
    return archive
