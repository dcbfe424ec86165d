"""4D viewers of the web app: `recon4d view` sub-processes, one per output folder asked for,
each on a free port, stopped when their folder is deleted or the app stops."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from recon4d.errors import InputError

_URL = re.compile(r"open (http://\S+?):(\d+)")
START_TIMEOUT_S = 60.0


class Viewers:
    """The viewer processes serving output folders, by folder."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._ports: dict[Path, tuple[subprocess.Popen, int]] = {}
        self._lock = threading.Lock()

    def port(self, folder: Path) -> int:
        """The port of the viewer serving `folder`, started now if needed; InputError with the
        viewer's message when it cannot start (no viser installed, not a scene folder)."""
        with self._lock:
            running = self._ports.get(folder)
            if running is not None and running[0].poll() is None:
                return running[1]
            process = subprocess.Popen(
                [sys.executable, "-u", "-m", "recon4d", "view", str(folder), "--host", self.host,
                 "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, text=True)
            port = _read_port(process)
            self._ports[folder] = (process, port)
            return port

    def stop(self, folder: Path) -> None:
        """Stop the viewer of `folder`, if one runs."""
        with self._lock:
            running = self._ports.pop(folder, None)
        if running is not None:
            _stop(running[0])

    def stop_all(self) -> None:
        """Stop every viewer (the app is stopping)."""
        for folder in list(self._ports):
            self.stop(folder)


def _read_port(process: subprocess.Popen) -> int:
    """The port a starting `recon4d view` prints, or InputError with what it printed instead."""
    lines: list[str] = []
    timer = threading.Timer(START_TIMEOUT_S, process.kill)
    timer.start()
    try:
        for line in process.stdout or ():
            found = _URL.search(line)
            if found:  # keep reading what it prints, so a full pipe never blocks it
                threading.Thread(target=process.stdout.read, daemon=True).start()
                return int(found[2])
            lines.append(line.strip())
    finally:
        timer.cancel()
    _stop(process)
    error = next((line for line in reversed(lines) if "error" in line),
                 lines[-1] if lines else "no output")
    raise InputError(f"the 4D viewer did not start: {error}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM (the viewer shuts its server down), SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
