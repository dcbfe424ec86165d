"""Jobs of the web app: the `recon4d` command lines of a request, run in a sub-process each.

A sub-process keeps a crash, a memory blow-up or a cancel inside one job; the command line
already checks its options and inputs before slow work, writes its folder atomically and unwinds
on SIGTERM, so cancelling is a SIGTERM and then removing the job's folder.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from recon4d.app.progress import Progress, parse_bar, split_segments
from recon4d.errors import CheckpointError, InputError
from recon4d.models.registry import find_official

JOB_KINDS = {  # key: label shown in the page
    "static": "static reconstruction (photos)",
    "4d": "4D reconstruction of a dynamic video",
    "masks": "motion masks only",
    "match": "match images (optionally inside masks)",
    "slam": "streaming SLAM (SLAM3R)",
}
COMMANDS = {"static": "reconstruct", "4d": "reconstruct", "masks": "masks", "match": "match",
            "slam": "slam"}
ORACLE = "oracle"  # the model choice that replaces the network by a synthetic scene's truth
KILL_AFTER_S = 20.0  # a cancelled job still running this long after SIGTERM gets SIGKILL
INPUT_DIR, OUTPUT_DIR = "input", "output"  # inside a job folder


@dataclass(frozen=True)
class JobSettings:
    """What the page asks of a job: its kind, model and main options (None = the default)."""

    kind: str
    model: str = ""  # "" = the command's default checkpoint; ORACLE; or a checkpoint
    fps: float | None = None
    num_frames: int | None = None
    device: str | None = None
    size: int | None = None
    solver: str | None = None  # reconstructions
    niter: int | None = None  # reconstructions
    motion: str | None = None  # 4d and masks
    n_viz: int | None = None  # match: matches drawn per picture


def new_job_id(kind: str) -> str:
    """A unique, sortable folder name for a job: time, kind and a random suffix."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{secrets.token_hex(3)}"


def check_model(settings: JobSettings, oracle_scene: Path | None) -> None:
    """Refuse, before any work, a model the job cannot use: the oracle without a synthetic
    example (or for matching), or a local checkpoint file that does not exist."""
    if settings.model == ORACLE:
        if settings.kind == "match":
            raise CheckpointError("matching has no oracle: choose a MASt3R checkpoint")
        if oracle_scene is None:
            raise CheckpointError("the oracle replaces the network by a synthetic scene's "
                                  "ground truth: generate an example, or choose a checkpoint "
                                  "for uploaded frames")
        return
    for spec in filter(None, (s.strip() for s in settings.model.split(","))):
        if find_official(spec) is None and not spec.startswith("hf-hub:"):
            path = Path(spec.removeprefix("file:")).expanduser()
            if not path.exists():
                raise CheckpointError(f"{spec}: checkpoint not found (give a registry name such "
                                      "as dust3r, mast3r or monst3r, or an existing .pth file "
                                      "or Hugging Face folder)")


def command_lines(settings: JobSettings, out: Path, source: Path | None = None,
                  oracle_scene: Path | None = None, masks: list[Path] | None = None
                  ) -> list[list[str]]:
    """The `recon4d` arguments of the job writing `out`: the job itself, then `eval` against
    the ground truth when it runs on the oracle. `source` is the staged frames (a folder or a
    video); with the oracle, `oracle_scene` replaces them."""
    s = settings
    oracle = s.model == ORACLE
    if not oracle and source is None:
        raise InputError("no frames: upload images or a video, or generate an example")
    job = [COMMANDS[s.kind], *([] if oracle else [str(source)]), "--out", str(out)]
    if oracle:
        job += ["--oracle", str(oracle_scene)]
    elif s.model and s.kind == "slam":
        i2p, _, l2w = s.model.partition(",")
        job += _flag("--i2p", i2p.strip() or None) + _flag("--l2w", l2w.strip() or None)
    elif s.model:
        job += ["--weights", s.model]
    if s.kind != "match":
        job += _flag("--fps", s.fps) + _flag("--num-frames", s.num_frames)
    job += _flag("--device", s.device) + _flag("--size", s.size)
    if s.kind in ("static", "4d"):
        job += _flag("--solver", s.solver) + _flag("--niter", s.niter)
    if s.kind == "static":
        job += ["--motion", "none"]
    elif s.kind in ("4d", "masks"):
        job += _flag("--motion", s.motion)
    if s.kind == "match":
        job += _flag("--n-viz", s.n_viz)
        if masks:
            job += ["--masks", *map(str, masks)]
    return [job] + ([["eval", str(out), str(oracle_scene)]] if oracle else [])


def _flag(name: str, value: object) -> list[str]:
    """`[name, value]`, or nothing for a value left to the command's default."""
    return [] if value is None or value == "" else [name, str(value)]


class Job:
    """One job's folder and command lines, run one after another in a background thread.

    `state` goes waiting -> running -> done, failed or cancelled; a failed or cancelled job's
    folder is removed (its output folder was never complete). A failing `eval` after the job
    only adds a note: the job's own output is complete by then.
    """

    def __init__(self, job_id: str, folder: Path, commands: list[list[str]]) -> None:
        self.id = job_id
        self.folder = folder
        self.commands = commands
        self.state = "waiting"
        self.progress: Progress | None = None
        self.summary: list[str] = []  # the commands' result lines
        self.note = ""  # the error of a failed job, or of its metrics
        self._lines: deque[str] = deque(maxlen=40)
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._run, name=f"job-{job_id}", daemon=True)

    @property
    def out(self) -> Path:
        """The job's output folder (complete once the job is done)."""
        return self.folder / OUTPUT_DIR

    def start(self) -> Job:
        """Start running the command lines; returns self."""
        self.state = "running"
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the job has ended (True) or `timeout` seconds passed (False)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def cancel(self) -> None:
        """Stop the job: SIGTERM now (the command unwinds its staging folder), SIGKILL if it
        still runs KILL_AFTER_S later; the folder is removed when the process has ended."""
        with self._lock:
            self._cancelled.set()
            process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            timer = threading.Timer(KILL_AFTER_S, _kill_if_running, (process,))
            timer.daemon = True
            timer.start()

    def _run(self) -> None:
        """Run every command; the first is the job, the rest (eval) only add their summary."""
        try:
            status = self._run_one(self.commands[0])
            if status == 0 and not self._cancelled.is_set():
                for argv in self.commands[1:]:
                    if self._run_one(argv) != 0 and not self._cancelled.is_set():
                        self.note = f"metrics not computed: {self._error_line()}"
            if self._cancelled.is_set():
                self.state = "cancelled"
            elif status != 0:
                self.state, self.note = "failed", self._error_line()
            else:
                self.state = "done"
        except OSError as exc:  # the sub-process could not start or be read
            self.state, self.note = "failed", f"the job could not run: {exc}"
        finally:
            if self.state == "running":  # an unexpected error in this thread
                self.state, self.note = "failed", "the job stopped unexpectedly"
            if self.state != "done":
                shutil.rmtree(self.folder, ignore_errors=True)

    def _run_one(self, argv: list[str]) -> int:
        """Run `recon4d ARGV`, reading its console output as it comes; its exit status."""
        with self._lock:
            if self._cancelled.is_set():
                return 128 + signal.SIGTERM
            self._process = subprocess.Popen(
                [sys.executable, "-m", "recon4d", *argv], stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.progress = None
        pending = ""
        stream = self._process.stdout
        while chunk := stream.read1(4096) if stream else b"":
            segments, pending = split_segments(pending + chunk.decode(errors="replace"))
            for segment in segments:
                self._take(segment, argv[0])
        if pending.strip():
            self._take(pending, argv[0])
        return self._process.wait()

    def _take(self, segment: str, command: str) -> None:
        """Record one piece of console output: a progress bar, a result line or a message."""
        bar = parse_bar(segment)
        if bar is not None:
            self.progress = bar
        elif segment.startswith(f"recon4d {command}: ") and ": error: " not in segment:
            self.summary.append(segment.strip())
        elif command == "eval" and not segment.startswith(("recon4d", "Traceback")):
            return  # eval prints its tables; the page reads metrics.json instead
        else:
            self._lines.append(segment.strip())

    def _error_line(self) -> str:
        """The command's one-line error, else its last message."""
        errors = [line for line in self._lines if ": error: " in line]
        if errors:
            return errors[-1].split(": error: ", 1)[1]
        return self._lines[-1] if self._lines else "the job stopped without a message"


def _kill_if_running(process: subprocess.Popen) -> None:
    """SIGKILL a process that did not stop after SIGTERM."""
    if process.poll() is None:
        process.kill()
