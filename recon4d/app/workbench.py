"""The web app's actions without the page: submit, cancel, list, show, zip and delete jobs, and
render examples. The page (`recon4d.app.ui`) calls these; tests can too."""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from recon4d.app.examples import EXAMPLES_DIR, example_frames, make_example
from recon4d.app.jobs import (
    INPUT_DIR,
    ORACLE,
    OUTPUT_DIR,
    Job,
    JobSettings,
    check_model,
    command_lines,
    new_job_id,
)
from recon4d.app.results import ResultView, read_result, zip_folder
from recon4d.app.uploads import check_image, stage_upload
from recon4d.app.viewers import Viewers
from recon4d.errors import InputError
from recon4d.io.layout import SCENE_JSON
from recon4d.options import SynthOptions
from recon4d.options.app import AppOptions

_JOB_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[a-z0-9]+-[0-9a-f]{6}")
MASKS_DIR = "masks"  # inside a job folder: the match job's uploaded masks


class Workbench:
    """Jobs under `options.runs_dir`, one folder each (`<id>/input`, `<id>/output`, the zip),
    the job each browser session runs, and the 4D viewers."""

    def __init__(self, options: AppOptions) -> None:
        self.options = options
        self.runs_dir = Path(options.runs_dir).resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.viewers = Viewers(options.host)
        self._active: dict[str, Job] = {}  # session -> its running job
        self._cancel_asked: dict[str, float] = {}  # session -> when it last pressed cancel
        self._lock = threading.Lock()

    def example(self, frames: int, movers: int, seed: int, width: int = 128,
                height: int = 96) -> Path:
        """The synthetic scene folder of these settings (rendered once, then reused)."""
        if not 2 <= frames <= self.options.max_frames:
            raise InputError(f"an example needs 2 to {self.options.max_frames} frames, got "
                             f"{frames}")
        options = SynthOptions(frames=frames, width=width, height=height, movers=movers,
                               seed=seed)
        return make_example(self.runs_dir, options)

    def submit(self, session: str, settings: JobSettings, files: Sequence[str] | None,
               example: Path | None, masks: Sequence[str] | None = None) -> Job:
        """Check and stage the inputs, check the model, then start the job (InputError or
        CheckpointError before anything runs, and no folder stays behind). Uploaded files win
        over an example."""
        asked = time.monotonic()
        oracle_scene = None if files else example
        job_id = new_job_id(settings.kind)
        folder = self.runs_dir / job_id
        try:
            source, note = self._stage(folder, settings, files, example)
            check_model(settings, oracle_scene)
            if note:  # a video longer than the frame limit: the job reads the first frames
                cap = self.options.max_frames
                settings = dataclasses.replace(settings, num_frames=min(settings.num_frames or cap,
                                                                        cap))
            mask_paths = self._stage_masks(folder, masks, source)
            commands = command_lines(settings, folder / OUTPUT_DIR, source, oracle_scene,
                                     mask_paths)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        folder.mkdir(exist_ok=True)
        job = Job(job_id, folder, commands)
        job.note = note
        with self._lock:
            self._active[session] = job
            if self._cancel_asked.get(session, -math.inf) >= asked:  # cancelled while staging
                job.cancel()
        return job.start()

    def _stage(self, folder: Path, settings: JobSettings, files: Sequence[str] | None,
               example: Path | None) -> tuple[Path | None, str]:
        """The frames of the job (uploaded and staged, or an example's) and a note."""
        if files:
            staged = stage_upload(files, folder / INPUT_DIR, self.options,
                                               settings.fps)
            return staged.path, staged.note
        if example is None:
            raise InputError("nothing to run on: upload images or a video, or generate an "
                             "example")
        return (None if settings.model == ORACLE else example_frames(example)), ""

    def _stage_masks(self, folder: Path, masks: Sequence[str] | None,
                     source: Path | None) -> list[Path] | None:
        """The match job's masks, checked and copied, one per image in the images' order."""
        if not masks:
            return None
        paths = [Path(m) for m in masks]
        images = sorted(source.iterdir()) if source is not None and source.is_dir() else []
        if len(paths) != len(images):
            raise InputError(f"{len(paths)} masks for {len(images)} images: upload one mask per "
                             "image (white = may match), named in the images' order")
        staged = []
        for index, path in enumerate(sorted(paths, key=lambda p: p.name)):
            check_image(path, self.options.max_image_side)
            target = folder / MASKS_DIR / f"{index:06d}{path.suffix.lower()}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            staged.append(target)
        return staged

    def cancel(self, session: str) -> Job | None:
        """Cancel the job of `session` (if it runs, or as soon as it is submitted when its inputs
        are being staged) and wait until its folder is gone."""
        with self._lock:
            self._cancel_asked[session] = time.monotonic()
            job = self._active.get(session)
        if job is None or job.state not in ("waiting", "running"):
            return None
        job.cancel()
        job.wait()
        return job

    def finished(self, job: Job) -> None:
        """Forget `job` as its session's running job."""
        with self._lock:
            for session, active in list(self._active.items()):
                if active is job:
                    del self._active[session]

    def result(self, job: Job) -> ResultView:
        """What the page shows of a job that is done."""
        return read_result(job.out, job.summary, job.note)

    def job_ids(self) -> list[str]:
        """The finished jobs whose folders are kept, newest first."""
        found = [p.name for p in self.runs_dir.iterdir()
                 if _JOB_ID.fullmatch(p.name) and (p / OUTPUT_DIR / SCENE_JSON).is_file()]
        return sorted(found, reverse=True)

    def show(self, job_id: str) -> ResultView:
        """What the page shows of a kept job."""
        return read_result(self._output(job_id), [])

    def archive(self, job_id: str) -> Path:
        """The job's output folder as a zip (made on first request)."""
        return zip_folder(self._output(job_id), self.runs_dir / job_id / f"{job_id}.zip")

    def viewer_port(self, job_id: str) -> int:
        """The port of a 4D viewer serving the job's output folder."""
        return self.viewers.port(self._output(job_id))

    def delete(self, job_id: str) -> None:
        """Remove a finished job's folder (its viewer stopped first)."""
        out = self._output(job_id)
        self.viewers.stop(out)
        shutil.rmtree(out.parent)

    def close(self) -> None:
        """Cancel running jobs and stop the viewers (the app is stopping)."""
        with self._lock:
            jobs = list(self._active.values())
        for job in jobs:
            job.cancel()
        for job in jobs:
            job.wait()
        self.viewers.stop_all()

    def _output(self, job_id: str) -> Path:
        """The output folder of a kept job; InputError for any other name."""
        if not _JOB_ID.fullmatch(job_id or "") or job_id == EXAMPLES_DIR:
            raise InputError(f"{job_id!r}: no such job")
        out = self.runs_dir / job_id / OUTPUT_DIR
        if not (out / SCENE_JSON).is_file():
            raise InputError(f"{job_id}: no such job (deleted, or it did not finish)")
        return out
