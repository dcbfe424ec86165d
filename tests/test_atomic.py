"""Atomic writers at the edges: unwritable outputs, the umask, SIGTERM and SIGKILL mid-write."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from recon4d.errors import OutputError
from recon4d.io.atomic import atomic_output_dir, atomic_path, atomic_write_text
from recon4d.io.scene_json import check_output_folder
from recon4d.io.signals import sigterm_as_interrupt

REPO = Path(__file__).resolve().parents[1]
LINUX_PROC = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
SMALL_SCENE = ["--frames", "2", "--width", "32", "--height", "24", "--movers", "1"]

# holds a staging folder of argv[1] open: prints its path, then waits until stdin closes
HOLDER = """
import sys
from recon4d.io.atomic import atomic_output_dir
with atomic_output_dir(sys.argv[1]) as staging:
    (staging / "part.bin").write_bytes(bytes(1000))
    print(staging, flush=True)
    sys.stdin.read()
"""


def _recon4d(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m recon4d ARGS` from the repository, capturing text output."""
    return subprocess.run([sys.executable, "-m", "recon4d", *args], cwd=REPO,
                          capture_output=True, text=True, **kwargs)


def _entries(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# --- item 4: output paths that cannot be written fail before any work ----------------------

@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temporary folder other users can enter (pytest's tmp_path is private to its owner)."""
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o755)
    yield folder
    for sub in folder.rglob("*"):
        if sub.is_dir():
            sub.chmod(0o755)  # so that a non-root run can delete what it made read-only
    shutil.rmtree(folder)


def _as_unprivileged(func: Callable[[], None]) -> str:
    """Call `func` in a forked child without root rights; return "ok" or "ErrorType: message".

    Root ignores permission bits, so as root the child becomes `nobody` before calling.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                nobody = pwd.getpwnam("nobody")
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            try:
                func()
                outcome = "ok"
            except Exception as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            os.write(write_end, outcome.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    return outcome


def test_unwritable_output_locations_are_refused_by_the_check(open_tmp):
    locked = open_tmp / "locked"  # read-only: nothing can be created inside
    locked.mkdir(mode=0o555)
    frozen = open_tmp / "frozen"  # an existing output that cannot be moved aside
    frozen.mkdir()
    open_tmp.chmod(0o777)
    frozen.chmod(0o555)
    cases = {locked / "out": f"{locked} is not writable",
             locked / "a" / "b" / "out": f"{locked} is not writable",
             frozen: "cannot replace this folder: it is not writable"}
    for out, problem in cases.items():
        outcome = _as_unprivileged(lambda out=out: check_output_folder(out, "synth"))
        assert outcome.startswith(f"OutputError: {out}: ") and problem in outcome, outcome
    assert _as_unprivileged(lambda: check_output_folder(open_tmp / "fresh", "synth")) == "ok"


def test_an_ancestor_that_is_a_file_is_refused_by_the_check(tmp_path):
    (tmp_path / "notes.txt").write_text("not a folder")
    for out in (tmp_path / "notes.txt", tmp_path / "notes.txt" / "run" / "out"):
        with pytest.raises(OutputError, match=f"^{re.escape(str(out))}: .*not a folder"):
            check_output_folder(out, "synth")


def test_the_writers_report_an_unwritable_place_as_output_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not a folder")
    with pytest.raises(OutputError, match=r"out: cannot create its folder \(file exists: .*notes"):
        with atomic_output_dir(tmp_path / "notes.txt" / "out"):
            pass
    with pytest.raises(OutputError, match="report.json: cannot create its folder"):
        atomic_write_text(tmp_path / "notes.txt" / "report.json", "{}")
    assert _entries(tmp_path) == ["notes.txt"]


def test_synth_into_a_file_fails_at_once_with_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("not a folder")
    out = tmp_path / "notes.txt" / "scene"
    result = _recon4d("synth", str(out), *SMALL_SCENE)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"recon4d synth: error: {out}: cannot create the output folder: "
        f"{tmp_path / 'notes.txt'} is a file, not a folder"]


# --- item 5: modes follow the umask like any other file writer ------------------------------

@pytest.fixture(params=[0o022, 0o002, 0o077], ids=lambda m: f"umask{m:03o}")
def umask(request) -> Iterator[int]:
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_outputs_get_the_modes_the_umask_allows(tmp_path, umask):
    with atomic_output_dir(tmp_path / "out") as staging:
        atomic_write_text(staging / "a.txt", "a")
        assert _mode(staging) == 0o777 & ~umask  # readers may look in while it is written
    with atomic_path(tmp_path / "b.bin") as tmp:
        assert _mode(tmp) == 0o666 & ~umask
        tmp.write_bytes(b"b")
    assert _mode(tmp_path / "out") == 0o777 & ~umask
    assert _mode(tmp_path / "out" / "a.txt") == 0o666 & ~umask
    assert _mode(tmp_path / "b.bin") == 0o666 & ~umask


def test_a_synthetic_scene_is_group_writable_under_umask_002(tmp_path):
    out = tmp_path / "scene"
    result = _recon4d("synth", str(out), *SMALL_SCENE, umask=0o002)
    assert result.returncode == 0, result.stderr
    paths = [out, *out.rglob("*")]
    assert {p.relative_to(tmp_path).as_posix(): _mode(p) for p in paths} == {
        p.relative_to(tmp_path).as_posix(): 0o775 if p.is_dir() else 0o664 for p in paths}


# --- item 6: termination ----------------------------------------------------------------------

def test_sigterm_handler_is_installed_once_and_only_from_the_main_thread():
    previous = signal.getsignal(signal.SIGTERM)
    try:
        sigterm_as_interrupt()
        handler = signal.getsignal(signal.SIGTERM)
        sigterm_as_interrupt()
        assert signal.getsignal(signal.SIGTERM) is handler
        worker = threading.Thread(target=sigterm_as_interrupt)  # must not raise there
        worker.start()
        worker.join()
        with pytest.raises(KeyboardInterrupt) as interrupt:
            os.kill(os.getpid(), signal.SIGTERM)
        assert interrupt.value.signum == signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_mid_write_leaves_nothing_and_exits_as_interrupted(tmp_path):
    out = tmp_path / "scene"
    proc = subprocess.Popen([sys.executable, "-m", "recon4d", "synth", str(out), "--frames", "30",
                             *SMALL_SCENE[2:]], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None:  # wait until frames are being written into the staging folder
            if any(p.name.endswith(".partial") and any(p.glob("rgb/*.png"))
                   for p in tmp_path.iterdir()):
                proc.send_signal(signal.SIGTERM)
                break
            time.sleep(0.005)
        _, stderr = proc.communicate()
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr  # the shell's status for SIGTERM
    assert "terminated by SIGTERM" in stderr and "Traceback" not in stderr
    assert _entries(tmp_path) == []


def _hold_staging(out: Path) -> tuple[subprocess.Popen, Path]:
    """A process holding a staging folder of `out`, and that folder once it exists."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    return proc, Path(proc.stdout.readline().strip())


@LINUX_PROC
def test_staging_of_a_killed_run_is_removed_by_the_next_run(tmp_path):
    out = tmp_path / "out"
    proc, staging = _hold_staging(out)
    proc.kill()  # SIGKILL: no cleanup runs
    proc.communicate()
    assert staging.name.startswith(".out.") and staging.is_dir()
    with atomic_output_dir(out) as new:
        (new / "done.txt").write_text("ok")
    assert _entries(tmp_path) == ["out"]


@LINUX_PROC
def test_staging_of_a_live_run_is_kept(tmp_path):
    out = tmp_path / "out"
    proc, staging = _hold_staging(out)
    try:
        with atomic_output_dir(out) as new:
            (new / "done.txt").write_text("ok")
        assert (staging / "part.bin").is_file()
    finally:
        proc.communicate("")  # let it finish: its staging then replaces `out`
    assert _entries(tmp_path) == ["out"] and _entries(out) == ["part.bin"]


@LINUX_PROC
def test_a_reused_pid_does_not_protect_a_dead_runs_staging(tmp_path):
    start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    owner = f"_{os.getpid()}_{start}."  # this process: its pid and start time (field 22)
    with atomic_output_dir(tmp_path / "out") as staging:
        assert owner in staging.name
    host_part = staging.name.split(owner)[0]  # ".out.<host>"
    mine = f"{host_part}{owner}0.partial"
    reused = f"{host_part}_{os.getpid()}_{start + 1}.0.old"  # same pid, another process
    other_host = f"{host_part}x_{os.getpid()}_{start + 1}.0.partial"  # e.g. a shared disk
    unknown = ".out.k3j4h5.partial"  # not named by recon4d's scheme
    for name in (mine, reused, other_host, unknown):
        (tmp_path / name).mkdir()
    with atomic_output_dir(tmp_path / "out"):
        pass
    assert _entries(tmp_path) == sorted([mine, other_host, unknown, "out"])
