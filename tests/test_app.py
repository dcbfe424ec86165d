"""The web app without a browser: its options and flags, upload checks, job command lines,
progress read from real tqdm bars, jobs run and cancelled as sub-processes, result summaries
and zips (the page itself is tested in a real browser by tests/test_app_browser.py)."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tqdm import tqdm

from recon4d import cli
from recon4d.app.jobs import ORACLE, Job, JobSettings, check_model, command_lines
from recon4d.app.progress import parse_bar, split_segments
from recon4d.app.results import read_result, zip_folder
from recon4d.app.server import exposure_warnings
from recon4d.app.uploads import stage_upload
from recon4d.app.workbench import Workbench
from recon4d.errors import CheckpointError, InputError, OptionError
from recon4d.io.layout import SCENE_JSON
from recon4d.io.scene_json import write_scene_json
from recon4d.options import (
    MasksOptions,
    ReconstructOptions,
    SlamOptions,
    options_from_args,
)
from recon4d.options.app import AppOptions
from tests.conftest import GOLDEN_DIR

TINY = GOLDEN_DIR / "checkpoints" / "tiny_dust3r_linear.pth"
MAST3R = GOLDEN_DIR / "checkpoints" / "tiny_mast3r_a.pth"
LIMITS = AppOptions(max_frames=4, max_image_side=500, max_upload_mb=1.0)


def image(path: Path, width: int = 32, height: int = 24, seed: int = 0) -> Path:
    """A random PNG."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def video(path: Path, frames: int) -> Path:
    """An MP4 of `frames` random 32x32 frames at 10 fps (PyAV)."""
    av = pytest.importorskip("av")
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(
                rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


# --- options and flags ------------------------------------------------------------------------

def test_app_help_imports_neither_gradio_nor_heavy_modules():
    code = ("import sys\nfrom recon4d.cli import main\ntry:\n    main(['app', '--help'])\n"
            "except SystemExit:\n    pass\n"
            "print([m for m in ('gradio', 'torch', 'numpy', 'PIL') if m in sys.modules], "
            "file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert "--max-upload-mb" in done.stdout and "--share" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_flags_build_the_app_options():
    args = cli.build_parser("app").parse_args(
        ["app", "--port", "0", "--concurrency", "2", "--max-frames", "9", "--share"])
    options = options_from_args(AppOptions, args)
    assert options == AppOptions(port=0, concurrency=2, max_frames=9, share=True)
    assert AppOptions().host == "127.0.0.1" and not AppOptions().share


@pytest.mark.parametrize("kwargs, flag", [
    ({"port": 70000}, "--port"), ({"concurrency": 0}, "--concurrency"),
    ({"max_frames": 1}, "--max-frames"), ({"max_upload_mb": 0}, "--max-upload-mb")])
def test_bad_app_options_name_their_flag(kwargs, flag):
    with pytest.raises(OptionError, match=flag):
        AppOptions(**kwargs)


def test_public_exposure_is_warned_about():
    assert exposure_warnings(AppOptions()) == []
    share, everywhere = exposure_warnings(AppOptions(share=True, host="0.0.0.0"))
    assert "public link" in share and "0.0.0.0" in everywhere


# --- uploads ----------------------------------------------------------------------------------

def test_images_are_staged_in_the_job_folder(tmp_path):
    files = [image(tmp_path / f"{k:03d}.png", seed=k) for k in range(3)]
    staged = stage_upload([str(f) for f in files], tmp_path / "job" / "input", LIMITS)
    assert not staged.video and staged.frames == 3
    assert sorted(p.name for p in staged.path.iterdir()) == ["000.png", "001.png", "002.png"]
    assert (staged.path / "001.png").read_bytes() == files[1].read_bytes()


def bad_uploads(tmp: Path) -> dict[str, tuple[list[Path], str]]:
    """Each refused upload and a piece of its message."""
    text = tmp / "notes.png"
    text.write_text("not an image")
    wide = tmp / "wide.png"
    Image.new("RGB", (20000, 4)).save(wide)
    corrupt = tmp / "clip.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    big = tmp / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(2_000_000))
    return {
        "not an image": ([text, image(tmp / "a.png")], "notes.png: not a readable image"),
        "unknown type": ([tmp / "readme.txt"], "readme.txt: not an image or a video"),
        "20000 pixels": ([wide, image(tmp / "b.png")], "wide.png: 20000x4 pixels"),
        "one frame": ([image(tmp / "c.png")], "c.png: one frame only"),
        "too many": ([image(tmp / f"m{k}.png") for k in range(5)], "at most 4 are accepted"),
        "corrupt video": ([corrupt], "clip.mp4"),
        "too large": ([big, image(tmp / "d.png")], "at most 1 MB"),
        "video and image": ([corrupt, image(tmp / "e.png")], "upload one video alone"),
    }


@pytest.mark.parametrize("case", ["not an image", "unknown type", "20000 pixels", "one frame",
                                  "too many", "corrupt video", "too large", "video and image"])
def test_bad_uploads_are_refused_with_the_file_name_and_nothing_staged(tmp_path, case):
    (tmp_path / "readme.txt").write_text("hello")
    files, message = bad_uploads(tmp_path)[case]
    with pytest.raises(InputError, match=message) as refused:
        stage_upload([str(f) for f in files], tmp_path / "job" / "input", LIMITS)
    assert str(tmp_path) not in str(refused.value)  # the user's file name, not the temp path
    assert not (tmp_path / "job").exists()


def test_a_one_frame_video_is_refused_and_a_long_one_cut(tmp_path):
    with pytest.raises(InputError, match=r"one\.mp4: 1 frame\(s\)"):
        stage_upload([str(video(tmp_path / "one.mp4", 1))], tmp_path / "a", LIMITS)
    staged = stage_upload([str(video(tmp_path / "long.mp4", 7))], tmp_path / "b", LIMITS)
    assert staged.video and staged.frames == LIMITS.max_frames and "first 4 frames" in staged.note
    assert staged.path == tmp_path / "b" / "long.mp4" and staged.path.is_file()


# --- models and command lines -----------------------------------------------------------------

def test_checkpoints_and_the_oracle_are_checked_before_a_job(tmp_path):
    check_model(JobSettings("4d", "monst3r"), None)  # a registry name: downloaded by the job
    check_model(JobSettings("4d", f"file:{TINY}"), None)
    check_model(JobSettings("4d", ORACLE), tmp_path)
    with pytest.raises(CheckpointError, match="missing.pth: checkpoint not found"):
        check_model(JobSettings("static", str(tmp_path / "missing.pth")), None)
    with pytest.raises(CheckpointError, match="l2w.pth: checkpoint not found"):
        check_model(JobSettings("slam", f"slam3r-i2p,{tmp_path / 'l2w.pth'}"), None)
    with pytest.raises(CheckpointError, match="generate an example"):
        check_model(JobSettings("4d", ORACLE), None)
    with pytest.raises(CheckpointError, match="matching has no oracle"):
        check_model(JobSettings("match", ORACLE), tmp_path)


def parsed(argv: list[str], options_type: type) -> tuple[argparse.Namespace, object]:
    """The namespace and options `recon4d` itself builds from a job's arguments."""
    args = cli.build_parser(argv[0]).parse_args(argv)
    return args, options_from_args(options_type, args)


def test_command_lines_are_what_the_commands_parse(tmp_path):
    out, frames, scene = tmp_path / "out", tmp_path / "in", tmp_path / "scene"
    static = JobSettings("static", str(TINY), fps=2.5, num_frames=8, device="cpu", size=64,
                         solver="adam", niter=5)
    [job] = command_lines(static, out, frames)
    args, options = parsed(job, ReconstructOptions)
    assert (args.input, args.out, args.oracle) == (str(frames), str(out), None)
    assert options.network.weights == str(TINY) and options.network.size == 64
    assert (options.frames.fps, options.frames.num_frames) == (2.5, 8)
    assert (options.alignment.solver, options.alignment.niter) == ("adam", 5)
    assert options.motion.motion == "none"

    job, evaluation = command_lines(JobSettings("masks", ORACLE, motion="flow"), out, None, scene)
    args, options = parsed(job, MasksOptions)
    assert (args.input, args.oracle, options.motion.motion) == (None, str(scene), "flow")
    assert evaluation == ["eval", str(out), str(scene)]
    cli.build_parser("eval").parse_args(evaluation)

    [job] = command_lines(JobSettings("slam", "a.pth,b.pth"), out, frames)
    _, options = parsed(job, SlamOptions)
    assert (options.i2p, options.l2w) == ("a.pth", "b.pth")

    masks = [tmp_path / "m0.png", tmp_path / "m1.png"]
    [job] = command_lines(JobSettings("match", "mast3r", n_viz=5), out, frames, masks=masks)
    args = cli.build_parser("match").parse_args(job)
    assert (args.images, args.masks, args.n_viz) == ([str(frames)], list(map(str, masks)), 5)
    with pytest.raises(InputError, match="no frames"):
        command_lines(JobSettings("4d", "dust3r"), out)


# --- progress and jobs ------------------------------------------------------------------------

def test_progress_is_read_from_real_tqdm_bars():
    console = io.StringIO()
    for _ in tqdm(range(7), desc="align (fast)", file=console, mininterval=0):
        pass
    segments, rest = split_segments(console.getvalue() + "partial 1")
    bars = [parse_bar(s) for s in segments]
    assert rest == "partial 1" and all(bars)
    assert sorted({b.done for b in bars}) == list(range(8)) and {b.total for b in bars} == {7}
    assert bars[-1].stage == "align (fast)" and bars[-1].fraction == 1.0
    assert parse_bar("recon4d reconstruct: 6 frames") is None


def test_a_job_runs_its_commands_and_reads_their_output(tmp_path):
    folder = tmp_path / "job"
    folder.mkdir()
    out = folder / "output"
    job = Job("j", folder, [["synth", str(out), "--frames", "3", "--width", "32", "--height",
                             "24", "--movers", "0"]]).start()
    assert job.wait(120) and job.state == "done"
    assert (out / SCENE_JSON).is_file()
    assert job.progress is not None and job.progress.stage == "writing"
    assert (job.progress.done, job.progress.total) == (3, 3)


def test_a_failing_job_gives_the_commands_message_and_leaves_no_folder(tmp_path):
    folder = tmp_path / "job"
    (folder / "input").mkdir(parents=True)
    job = Job("j", folder, [["reconstruct", str(folder / "input"), "--out",
                             str(folder / "output"), "--weights", f"file:{TINY}"]]).start()
    assert job.wait(120) and job.state == "failed"
    assert "no images" in job.note and "input" in job.note
    assert not folder.exists()


def test_a_cancelled_job_stops_and_leaves_no_folder(tmp_path):
    folder = tmp_path / "job"
    folder.mkdir()
    job = Job("j", folder, [["synth", str(folder / "output"), "--frames", "400", "--width",
                             "64", "--height", "48"]]).start()
    deadline = time.monotonic() + 120
    while job.progress is None and time.monotonic() < deadline:  # rendering has begun
        time.sleep(0.05)
    job.cancel()
    assert job.wait(60) and job.state == "cancelled"
    assert not tmp_path.joinpath("job").exists() and list(tmp_path.iterdir()) == []


# --- results ----------------------------------------------------------------------------------

def test_results_summary_and_zip(tmp_path):
    out = tmp_path / "20260101-000000-4d-abcdef" / "output"
    (out / "depth").mkdir(parents=True)
    (out / "depth" / "000000.npy").write_bytes(b"x")
    (out / "scene.glb").write_bytes(b"glTF")
    (out / "depth.mp4").write_bytes(b"v")
    (out / "matches_0_1.png").write_bytes(b"p")
    report = {"sequences": {"s": {"poses": {"ate": 0.25, "rpe_trans": 0.5, "rpe_rot": 1.0,
                                            "num_poses": 4}}}, "summary": {}, "skipped": []}
    (out / "metrics.json").write_text(json.dumps(report))
    write_scene_json(out, "reconstruct", {}, {"timing": {"total": 2.0}})
    view = read_result(out, ["recon4d reconstruct: 4 frames"], "a note")
    assert view.glb == out / "scene.glb" and not view.four_d
    assert view.videos == [(out / "depth.mp4", "depth")]
    assert view.pictures == [out / "matches_0_1.png"]
    for text in ("**reconstruct** finished", "4 frames", "note: a note", "total 2.0 s",
                 "0.2500", "Metrics against the ground truth"):
        assert text in view.summary
    archive = zip_folder(out, tmp_path / "out.zip")
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        assert SCENE_JSON in names and "depth/000000.npy" in names
        assert json.loads(zf.read(SCENE_JSON))["command"] == "reconstruct"
    with pytest.raises(InputError, match="not a complete output folder"):
        zip_folder(tmp_path, tmp_path / "none.zip")


# --- the workbench: what the page's buttons do --------------------------------------------------

def test_a_match_job_inside_masks_is_kept_zipped_and_deleted(tmp_path):
    bench = Workbench(AppOptions(runs_dir=str(tmp_path / "runs")))
    images = [str(image(tmp_path / f"{k}.png", 48, 32, seed=k)) for k in range(2)]
    masks = []
    for k in range(2):
        mask = np.zeros((32, 48), np.uint8)
        mask[:, :24] = 255
        Image.fromarray(mask).save(tmp_path / f"mask{k}.png")
        masks.append(str(tmp_path / f"mask{k}.png"))
    settings = JobSettings("match", f"file:{MAST3R}", size=64, device="cpu", n_viz=5)
    job = bench.submit("session", settings, images, None, masks)
    assert job.wait(180) and job.state == "done", job.note
    [job_id] = bench.job_ids()
    view = bench.show(job_id)
    assert view.pictures == [job.out / "matches_0_1.png"] and view.glb is None
    doc = json.loads((job.out / SCENE_JSON).read_text())
    assert doc["inputs"]["masks"] == [str(job.folder / "masks" / f"{k:06d}.png")
                                      for k in range(2)]
    with zipfile.ZipFile(bench.archive(job_id)) as zf:
        assert {SCENE_JSON, "matches_0_1.npz"} <= set(zf.namelist())
    bench.delete(job_id)
    assert bench.job_ids() == [] and not job.folder.exists()
    with pytest.raises(InputError, match="no such job"):
        bench.show(job_id)
    with pytest.raises(InputError, match="no such job"):
        bench.show("../../etc")


def test_a_refused_job_leaves_no_folder(tmp_path):
    bench = Workbench(AppOptions(runs_dir=str(tmp_path / "runs")))
    images = [str(image(tmp_path / f"{k}.png", seed=k)) for k in range(2)]
    with pytest.raises(CheckpointError, match="not found"):
        bench.submit("s", JobSettings("static", str(tmp_path / "none.pth")), images, None)
    with pytest.raises(InputError, match="nothing to run on"):
        bench.submit("s", JobSettings("static", "dust3r"), None, None)
    assert list(bench.runs_dir.iterdir()) == []


def test_an_oracle_slam_job_on_an_example_is_scored_against_its_truth(tmp_path):
    bench = Workbench(AppOptions(runs_dir=str(tmp_path / "runs"), max_frames=8))
    scene = bench.example(frames=4, movers=0, seed=2, width=64, height=48)
    assert bench.example(frames=4, movers=0, seed=2, width=64, height=48) == scene  # reused
    with pytest.raises(InputError, match="2 to 8 frames"):
        bench.example(frames=9, movers=0, seed=2)
    job = bench.submit("s", JobSettings("slam", ORACLE), None, scene)
    assert job.wait(180) and job.state == "done", job.note
    assert job.commands[-1] == ["eval", str(job.out), str(scene)]
    view = bench.result(job)
    assert view.glb == job.out / "scene.glb" and not view.four_d
    assert "recon4d slam: 4 frames" in view.summary and "[poses]" in view.summary
    report = json.loads((job.out / "metrics.json").read_text())
    assert report["sequences"][scene.name]["poses"]["num_poses"] == 4


def test_a_cancel_while_staging_cancels_the_job_and_not_the_next(tmp_path, monkeypatch):
    bench = Workbench(AppOptions(runs_dir=str(tmp_path / "runs")))
    scene = bench.example(frames=3, movers=1, seed=1, width=64, height=48)
    stage = bench._stage

    def stage_then_cancel(*args):
        staged = stage(*args)
        assert bench.cancel("s") is None  # nothing registered yet
        return staged

    monkeypatch.setattr(bench, "_stage", stage_then_cancel)
    job = bench.submit("s", JobSettings("masks", ORACLE), None, scene)
    assert job.wait(60) and job.state == "cancelled" and not job.folder.exists()
    monkeypatch.undo()
    job = bench.submit("s", JobSettings("masks", ORACLE), None, scene)
    assert job.wait(180) and job.state == "done", job.note
