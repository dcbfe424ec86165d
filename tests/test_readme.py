"""Every command of README.md runs as printed, and the figures it prints match a fresh run.

Commands are the lines of the README's ```bash blocks, read by `scripts/readme_figures.py`. The
set-up steps (`bash scripts/setup`, `bash .ci/run`) install packages and run this suite, so they
are not run here: they are what CI runs (`.ci/run` -> `scripts/test` -> `scripts/setup`), which
`test_setup_steps_are_what_ci_runs` checks. Every other step runs with bash in a temporary folder
where `.venv` is the test environment. For the main job the environment, not the command, is
prepared: an offline Hugging Face cache holding the golden set's tiny DUSt3R (config.json +
model.safetensors) under the repo id of the default checkpoint, and a two-frame video rendered
from a synthetic scene at the printed input path.

Commands printed inside the text (code spans starting with `bash ` or `.venv/bin/`) run as
printed too, after the main job: each exits with status 0, or, for a server (`recon4d app`,
`recon4d view`), prints its address, answers there and stops on SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest

from recon4d.synthetic import generate_scene
from scripts.readme_figures import (
    Example,
    examples,
    figures,
    inline_commands,
    prepare_workspace,
    run_example,
    same_figures,
    with_figures,
)
from tests.conftest import GOLDEN_DIR, REPO, load_manifest

README = REPO / "README.md"
SETUP_STEPS = ("bash scripts/setup", "bash .ci/run")
DEFAULT_REPO_ID = "naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt"  # what the README says is fetched
MAIN_INPUT = "path/to/images_or_video.mp4"
VIDEO_FRAMES = 2


def _tiny_hf_folder() -> Path:
    """The golden set's tiny checkpoint in the Hugging Face layout."""
    return GOLDEN_DIR / next(c["files"]["hf_dir"] for c in load_manifest()["cases"]
                             if c["kind"] == "checkpoint" and "hf_dir" in c["files"])


def _steps(command: str) -> list[str]:
    return [step.strip() for step in command.split("&&")]


def _runnable(example: Example) -> Example:
    """The example without its set-up steps."""
    steps = [s for c in example.commands for s in _steps(c) if s not in SETUP_STEPS]
    return Example(tuple(steps), example.figures)


def _offline_hub_cache(hf_home: Path, repo_id: str, folder: Path) -> None:
    """A Hugging Face cache in which `repo_id` at revision main is the checkpoint `folder`."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copyfile(folder / name, snapshot / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def _write_video(path: Path, frames: np.ndarray) -> None:
    """`frames` (N, H, W, 3) uint8 as an MPEG-4 video at 10 fps."""
    path.parent.mkdir(parents=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            container.mux(stream.encode(image))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory) -> tuple[Path, list[tuple[Example, str]]]:
    """(workspace, [(example, its standard output)]) after running every README example."""
    if not (Path(sys.prefix) / "bin" / "recon4d").exists():
        pytest.skip("the test environment has no recon4d command (install recon4d into it)")
    work = tmp_path_factory.mktemp("readme")
    prepare_workspace(work)
    _offline_hub_cache(work / "hf", DEFAULT_REPO_ID, _tiny_hf_folder())
    scene = generate_scene(frames=VIDEO_FRAMES, width=256, height=192, movers=0, seed=0)
    _write_video(work / MAIN_INPUT, scene.rgb)
    env = {**os.environ, "HF_HOME": str(work / "hf"), "HF_HUB_OFFLINE": "1"}
    runs = [(example, run_example(_runnable(example), work, env))
            for example in examples(README.read_text())]
    return work, runs


def test_setup_steps_are_what_ci_runs() -> None:
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    test_script = (REPO / "scripts" / "test").read_text().splitlines()
    printed = [s for e in examples(README.read_text()) for c in e.commands for s in _steps(c)]
    assert [s for s in printed if s in SETUP_STEPS] == list(SETUP_STEPS)
    assert "exec bash scripts/test" in ci
    assert "bash scripts/setup" in test_script  # the README's set-up command, exactly


def test_main_job_runs_as_printed_on_the_cached_checkpoint(readme_run) -> None:
    work, _ = readme_run
    doc = json.loads((work / "runs" / "demo" / "scene.json").read_text())
    # the tiny cached checkpoint was loaded from its config.json (the real one is a 512 DPT)
    tiny = json.loads((_tiny_hf_folder() / "config.json").read_text())
    assert doc["model"]["head_type"] == tiny["head_type"] == "linear"
    assert doc["inputs"]["frames"] == VIDEO_FRAMES
    poses = (work / "runs" / "demo" / "trajectory_tum.txt").read_text().split("\n")
    assert len([line for line in poses if line and not line.startswith("#")]) == VIDEO_FRAMES


def test_printed_figures_match_a_fresh_run(readme_run) -> None:
    _, runs = readme_run
    printed = figures(README.read_text())
    shown = {example.figures: output for example, output in runs if example.figures}
    assert shown.keys() == printed.keys() and shown, "every figures block follows an example"
    for name, output in shown.items():
        assert same_figures(printed[name], output) == [], f"{name}: run scripts/readme_figures.py"


INLINE = inline_commands(README.read_text())
CI_STEPS = {*SETUP_STEPS, "bash scripts/setup dev"}  # scripts/test runs these
SERVING = re.compile(r"open (http://\S+)")
COMMAND_S = 300


def _run_or_serve(command: str, cwd: Path, env: dict[str, str]) -> None:
    """Run `command` with bash in `cwd`: it must exit with status 0, or print `open URL` (a
    server), answer on that URL and stop on SIGTERM."""
    process = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    lines: list[str] = []
    served = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if SERVING.search(line):
                served.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + COMMAND_S
        while process.poll() is None and not served.is_set() and time.monotonic() < deadline:
            time.sleep(0.2)
        if served.is_set():
            url = next(m.group(1) for m in map(SERVING.search, lines) if m)
            with urllib.request.urlopen(url, timeout=60) as answer:
                assert answer.status == 200, f"`{command}`: {url} answered {answer.status}"
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    reader.join(10)
    assert process.returncode == 0 or (served.is_set() and process.returncode in (-15, 143)), (
        f"`{command}` exited with status {process.returncode}:\n{''.join(lines)}")


@pytest.mark.parametrize("command", [c for c in INLINE if c not in CI_STEPS])
def test_commands_in_the_text_run_as_printed(readme_run, command: str) -> None:
    """Set-up variants run in the repository (whose .venv must be this environment), the rest
    in the examples' workspace, after the main job (which made runs/demo)."""
    work, _ = readme_run
    if command.startswith("bash scripts/"):
        if (REPO / ".venv").resolve() != Path(sys.prefix).resolve():
            pytest.skip("set-up variants install into the repository's .venv, which is not the "
                        "test environment here")
        cwd = REPO
    else:
        cwd = work
    env = {**os.environ, "HF_HOME": str(work / "hf"), "HF_HUB_OFFLINE": "1"}
    _run_or_serve(command, cwd, env)


def test_commands_in_the_text_are_found() -> None:
    assert {".venv/bin/recon4d app", ".venv/bin/recon4d view runs/demo"} <= set(INLINE)
    assert "bash scripts/setup dev" in (REPO / "scripts" / "test").read_text()


def test_links_between_documents_resolve() -> None:
    for page in [README, *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name} links to {target}"


MARKDOWN = """Intro.

```bash
tool make out \\
    --size 3
tool show out
```

<!-- figures:demo -->
```text
old 1.00 in 2.5 s
```
<!-- /figures -->

```text
not a command
```
"""


def test_examples_and_figures_blocks_are_read_from_markdown() -> None:
    assert examples(MARKDOWN) == [Example(("tool make out --size 3", "tool show out"), "demo")]
    assert figures(MARKDOWN) == {"demo": "old 1.00 in 2.5 s\n"}
    rewritten = with_figures(MARKDOWN, "demo", "new 2.00 in 9 s\n")
    assert figures(rewritten) == {"demo": "new 2.00 in 9 s\n"}
    assert rewritten.replace("new 2.00 in 9 s", "old 1.00 in 2.5 s") == MARKDOWN


@pytest.mark.parametrize(("fresh", "agrees"), [
    ("ate 0.0031 n 1000 in 99.9 s", True),     # 1 unit of the last digit; durations ignored
    ("ate 0.0033 n 1000 in 1 s", False),       # 3 units of the last digit
    ("ate 0.0030 n 1004 in 1 s", True),        # 0.4 % of an integer
    ("ate 0.0030 n 1006 in 1 s", False),       # 0.6 %
    ("ate 0.0030 in 1 s", False),              # a figure missing
])
def test_same_figures_tolerates_rounding_only(fresh: str, agrees: bool) -> None:
    assert (same_figures("ate 0.0030 n 1000 in 2.5 s", fresh) == []) is agrees
