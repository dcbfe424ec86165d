"""`recon4d batch` on a real local Ray instance (2 CPUs): oracle scenes scored against their
ground truth with the resources Ray gave each task, a worker killed mid-task and retried, a
corrupt video run 1 + retries times and reported while a DAVIS sequence finishes and is scored,
an infer batch, resume without recomputation, a slam batch from the command line on a given Ray
address; and the SPEC and input checks that run before any task."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import ray
from PIL import Image

from recon4d.cluster.batch import run_batch
from recon4d.cluster.batch_eval import Benchmark, find_benchmark
from recon4d.cluster.ray_runtime import error_line
from recon4d.cluster.spec import load_spec, option_argv, parse_memory
from recon4d.commands.batch_run import check_options, run_job
from recon4d.errors import InputError, OptionError
from recon4d.eval.evaluate import evaluate
from recon4d.io.atomic import atomic_output_dir
from recon4d.io.scene_json import read_scene_json
from recon4d.options.batch import BatchOptions
from recon4d.synthetic import generate_scene, write_scene
from tests.conftest import GOLDEN_DIR
from tests.fixtures_eval import (
    random_poses,
    write_davis_sequence,
    write_sintel_sequence,
    write_tum_sequence,
)

TINY = GOLDEN_DIR / "checkpoints" / "tiny_dust3r_linear.pth"


@pytest.fixture(scope="module")
def ray_local():
    """One small local Ray instance per test module (test_sharded imports this fixture), stopped
    at the module's end: the README's cluster example runs `ray stop`, which would end any
    instance still running then."""
    if ray.is_initialized():
        yield ray
        return
    ray.init(address="local", num_cpus=2, include_dashboard=False,
             object_store_memory=100 << 20, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    """Two 4-frame 64x48 synthetic scenes (one mover each) under scenes/."""
    root = tmp_path_factory.mktemp("batch") / "scenes"
    for seed in (0, 1):
        write_scene(generate_scene(frames=4, width=64, height=48, movers=1, seed=seed),
                    root / f"scene_{seed}")
    return root


def write_spec(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def logged_runs(root: Path) -> list[dict]:
    """The runs `log_run` recorded under `root`, in order."""
    log = root / "runs.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def log_run(argv: list[str]) -> Path:
    """Record one task run (its output folder's name and the resources Ray gave it) in
    runs.log beside the batch folder; the output folder."""
    out = Path(argv[argv.index("--out") + 1])
    entry = {"name": out.name, "resources": ray.get_runtime_context().get_assigned_resources()}
    with open(out.parent.parent / "runs.log", "a") as log:
        log.write(json.dumps(entry) + "\n")
    return out


def run_job_killed_once(job: str, argv: list[str]) -> None:
    """`run_job`, logged; the first run of scene_0 dies halfway through writing its output
    folder, as a worker killed by the OOM killer would."""
    out = log_run(argv)
    marker = out.parent.parent / f"killed-{out.name}"
    if out.name == "scene_0" and not marker.exists():
        marker.touch()
        with atomic_output_dir(out) as staging:
            (staging / "half_written.txt").write_text("partial")
            os._exit(1)
    run_job(job, argv)


def run_job_logged(job: str, argv: list[str]) -> None:
    """`run_job`, logged."""
    log_run(argv)
    run_job(job, argv)


def summary_rows(out: Path) -> dict[str, dict[str, str]]:
    """batch_summary.csv by input name."""
    return {Path(r["input"]).name: r for r in csv.DictReader((out / "batch_summary.csv").open())}


def test_oracle_batch_survives_a_killed_worker_and_resumes(ray_local, scenes, tmp_path):
    spec = load_spec(write_spec(tmp_path / "spec.yaml", f"""
job: reconstruct
inputs: ["{scenes}/scene_*"]
source: oracle
options: {{motion: flow, formats: [trajectory, depth]}}
resources: {{cpus: 1, memory: 200MiB}}
"""))
    check_options(spec)
    out = tmp_path / "batch"
    report = run_batch(spec, out, run_job_killed_once, BatchOptions(retries=1))
    assert [(r.status, r.attempts, r.error) for r in report.results] == [
        ("done", 2, ""), ("done", 1, "")]  # scene_0 was run again after its worker died
    runs = logged_runs(tmp_path)
    assert sorted(run["name"] for run in runs) == ["scene_0", "scene_0", "scene_1"]
    # every run held what the SPEC's resources asked for, as Ray accounts it
    assert all(run["resources"] == {"CPU": 1.0, "memory": 200 * 2**20} for run in runs)
    assert sorted(p.name for p in out.iterdir()) == [
        "batch_summary.csv", "metrics.json", "scene_0", "scene_1"]  # no staging folder left
    for name in ("scene_0", "scene_1"):
        assert not (out / name / "half_written.txt").exists()
        truth = np.loadtxt(scenes / name / "trajectory_tum.txt")
        path = np.linalg.norm(np.diff(truth[:, 1:4], axis=0), axis=1).sum()
        assert report.metrics["sequences"][name]["poses"]["ate"] < 0.02 * path
        assert report.metrics["sequences"][name]["depth"]["abs_rel"] < 0.05
    rows = list(csv.DictReader((out / "batch_summary.csv").open()))
    assert [(r["input"], r["status"], r["attempts"]) for r in rows] == [
        (str(scenes / "scene_0"), "done", "2"), (str(scenes / "scene_1"), "done", "1")]
    assert all(float(r["seconds"]) > 0 for r in rows)

    finished = {name: (out / name / "scene.json").stat().st_mtime_ns
                for name in ("scene_0", "scene_1")}
    again = run_batch(spec, out, run_job_killed_once, BatchOptions(retries=1))
    assert [(r.status, r.attempts) for r in again.results] == [("skipped", 0)] * 2
    assert len(logged_runs(tmp_path)) == 3  # nothing recomputed
    assert {n: (out / n / "scene.json").stat().st_mtime_ns for n in finished} == finished
    assert again.metrics["summary"]["poses"]["sequences"] == 2  # metrics over all finished


def test_a_corrupt_video_is_retried_then_reported_and_a_davis_sequence_is_scored(
        ray_local, scenes, tmp_path):
    davis = tmp_path / "davis"
    rgb = sorted((scenes / "scene_0" / "rgb").iterdir())
    truth = [np.asarray(Image.open(p)) > 0 for p in
             sorted((scenes / "scene_0" / "dynamic_mask").iterdir())]
    write_davis_sequence(davis, "walk", np.stack(truth).astype(np.uint8))
    for k, image in enumerate(rgb):  # the scene's frames as the sequence's JPEG frames
        Image.open(image).save(davis / "JPEGImages" / "480p" / "walk" / f"{k:05d}.jpg")
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    spec = load_spec(write_spec(tmp_path / "spec.yaml", f"""
job: masks
inputs: ["{davis}/JPEGImages/480p/*", "{tmp_path}/broken.mp4"]
options: {{weights: "{TINY}", size: 64, device: cpu}}
"""))
    check_options(spec)
    out = tmp_path / "batch"
    report = run_batch(spec, out, run_job_logged, BatchOptions(retries=2))
    runs = [run["name"] for run in logged_runs(tmp_path)]
    assert runs.count("broken") == 3 and runs.count("walk") == 1  # 1 + retries, then reported
    rows = summary_rows(out)
    assert (rows["walk"]["status"], rows["walk"]["attempts"], rows["walk"]["error"]) == (
        "done", "1", "")
    assert (rows["broken.mp4"]["status"], rows["broken.mp4"]["attempts"]) == ("failed", "3")
    assert "broken.mp4" in rows["broken.mp4"]["error"]
    assert report.failed == 1 and not (out / "broken").exists()
    assert sorted(p.name for p in out.iterdir()) == ["batch_summary.csv", "metrics.json", "walk"]
    # the job read the sequence's frames; the metrics are `recon4d eval` of its output folder
    # against the DAVIS root
    assert read_scene_json(out / "walk")["options"]["input"] == str(davis / "JPEGImages" /
                                                                    "480p" / "walk")
    direct = evaluate(out / "walk", davis)
    assert report.metrics["sequences"] == {"walk": direct["sequences"]["walk"]}
    assert set(report.metrics["sequences"]["walk"]) >= {"masks"}
    assert json.loads((out / "metrics.json").read_text())["sequences"].keys() == {"walk"}

    pairs = load_spec(write_spec(tmp_path / "infer.yaml", f"""
job: infer
inputs: ["{davis}/JPEGImages/480p/*"]
options: {{weights: "{TINY}", size: 64, device: cpu}}
"""))
    report = run_batch(pairs, tmp_path / "pairs", run_job, BatchOptions(retries=0))
    assert [(r.status, r.attempts) for r in report.results] == [("done", 1)]
    with np.load(tmp_path / "pairs" / "walk" / "predictions.npz") as npz:
        assert len(npz["view1/idx"]) == len(rgb) * (len(rgb) - 1)  # the complete graph
    assert report.metrics is None  # predictions alone are not scored


def test_a_slam_batch_runs_from_the_command_line_on_a_given_ray_cluster(
        ray_local, scenes, tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", f"""
job: slam
inputs: ["{scenes}/scene_1"]
source: oracle
""")
    address = ray_local.get_runtime_context().gcs_address  # a driver of its own connects to it
    done = subprocess.run([sys.executable, "-m", "recon4d.cli", "batch", str(spec), "--out",
                           str(tmp_path / "batch"), "--ray", address],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 done, 0 skipped, 0 failed" in done.stdout and "[poses]" in done.stdout
    assert summary_rows(tmp_path / "batch")["scene_1"]["attempts"] == "1"
    truth = np.loadtxt(scenes / "scene_1" / "trajectory_tum.txt")
    path = np.linalg.norm(np.diff(truth[:, 1:4], axis=0), axis=1).sum()
    metrics = json.loads((tmp_path / "batch" / "metrics.json").read_text())
    assert metrics["sequences"]["scene_1"]["poses"]["ate"] < 0.02 * path


def test_an_address_where_no_cluster_answers_is_refused_at_once(scenes, tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", f"""
job: masks
inputs: ["{scenes}/scene_1"]
source: oracle
""")
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    done = subprocess.run([sys.executable, "-m", "recon4d.cli", "batch", str(spec), "--out",
                           str(tmp_path / "batch"), "--ray", address],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--ray {address}: nothing answers there" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "batch").exists()


def test_a_task_the_cluster_can_never_schedule_is_refused(ray_local, scenes, tmp_path):
    spec = load_spec(write_spec(tmp_path / "spec.yaml", f"""
job: reconstruct
inputs: ["{scenes}/scene_*"]
source: oracle
resources: {{gpus: 1}}
"""))
    with pytest.raises(OptionError, match="spec.yaml: each task needs 1 GPU but the Ray cluster "
                                          "has 2 CPU, 0 GPU"):
        run_batch(spec, tmp_path / "batch", run_job)
    assert not (tmp_path / "batch").exists()


def test_spec_options_are_checked_by_each_jobs_own_parser_before_any_task(scenes, tmp_path):
    def spec(options: str, job: str = "reconstruct", source: str = "oracle"):
        return load_spec(write_spec(tmp_path / "spec.yaml", f"""
job: {job}
inputs: ["{scenes}/scene_*"]
source: {source}
options: {options}
"""))

    # per job: flags it takes, and a flag only another job takes
    jobs = {"reconstruct": ("{motion: flow, num-frames: 3, no-symmetrize: true, niter: 5}",
                            "{method: slam3r}", "--method"),
            "masks": ("{motion: flow, threshold: 0.5}", "{niter: 5}", "--niter"),
            "slam": ("{method: slam3r, keyframe-stride: 2}", "{motion: flow}", "--motion"),
            "infer": ("{graph: swin-2, batch-size: 2}", "{motion: flow}", "--motion")}
    for job, (good, foreign, flag) in jobs.items():
        source = "input" if job == "infer" else "oracle"
        check_options(spec(good, job, source))
        with pytest.raises(OptionError) as info:
            check_options(spec(foreign, job, source))
        assert f"`recon4d {job}` long flags" in str(info.value) and flag in str(info.value)
    for options, words in (("{num_frames: 3}", ["--num_frames", "spec.yaml"]),
                           ("{conf-threshold: 0.5}", ["--conf-threshold", "spec.yaml"]),
                           ("{motion: sideways}", ["--motion", "sideways"]),
                           ("{weight: x.pth}", ["--weight"]),
                           ("{out: elsewhere}", ["out", "cannot be set"])):
        with pytest.raises(OptionError) as info:
            check_options(spec(options))
        assert all(word in str(info.value) for word in words), str(info.value)
    with pytest.raises(OptionError, match="source oracle: `recon4d infer` has no --oracle"):
        check_options(spec("{}", job="infer"))


def test_benchmark_inputs_are_found_with_their_frames(scenes, tmp_path):
    depth = np.ones((2, 6, 8), np.float32)
    stamps = np.array([1.0, 2.0])
    tum = write_tum_sequence(tmp_path / "tum" / "walking", depth, stamps, stamps, stamps,
                             random_poses(2, seed=0))
    sintel = write_sintel_sequence(tmp_path / "sintel", "alley", depth,
                                   np.stack([np.eye(3)] * 2), random_poses(2, seed=1))
    davis = write_davis_sequence(tmp_path / "davis", "dog", np.zeros((2, 6, 8), np.uint8))
    frames = davis / "JPEGImages" / "480p" / "dog"
    assert find_benchmark(scenes / "scene_0") == Benchmark(scenes / "scene_0", None,
                                                           scenes / "scene_0" / "rgb")
    assert find_benchmark(tum) == Benchmark(tum, None, tum / "rgb")
    assert find_benchmark(frames) == Benchmark(davis, "dog", frames)
    assert find_benchmark(sintel / "training" / "final" / "alley") == Benchmark(
        sintel / "training", "alley", sintel / "training" / "final" / "alley")
    assert find_benchmark(scenes / "scene_0" / "rgb") is None  # plain images
    assert find_benchmark(tmp_path / "video.mp4") is None
    with pytest.raises(InputError, match="davis folder holding 1 sequence.s., not one input"):
        find_benchmark(davis)
    spec = load_spec(write_spec(tmp_path / "spec.yaml", f"job: masks\ninputs: ['{scenes}']\n"))
    with pytest.raises(InputError, match="synthetic folder holding 2 sequence"):
        run_batch(spec, tmp_path / "batch", run_job)  # before Ray starts (no fixture here)
    assert not (tmp_path / "batch").exists()


def test_spec_structure_errors_name_the_file(scenes, tmp_path):
    cases = {
        "job: paint\ninputs: [x]": "job must be one of",
        f"job: masks\ninputs: ['{scenes}/nothing_*']": "matches no file",
        f"job: masks\ninputs: ['{scenes}/*/rgb']": "would both write the output folder 'rgb'",
        f"job: masks\ninputs: ['{scenes}/*']\nresources: {{gpus: -1}}": "gpus must be",
        f"job: masks\ninputs: ['{scenes}/*']\nretries: 3": "unknown key(s) retries",
        "job: [unclosed": "not a YAML file",
    }
    for text, message in cases.items():
        path = write_spec(tmp_path / "bad.yaml", text)
        with pytest.raises(InputError) as info:
            load_spec(path)
        assert str(path) in str(info.value) and message in str(info.value), str(info.value)


def test_option_values_and_memory_sizes():
    assert option_argv({"a": True, "b": False, "c": ["x", "y"], "d": 3, "e": None}) == [
        "--a", "--c=x,y", "--d=3"]
    assert parse_memory("4GiB") == 4 * 2**30 and parse_memory("512MB") == 512 * 10**6
    assert parse_memory(1000) == 1000 and parse_memory("2g") == 2 * 10**9
    with pytest.raises(ValueError):
        parse_memory("lots")


def test_error_lines_name_the_problem_in_one_nonempty_line():
    assert error_line(InputError("x.mp4: cannot read video\ndetails")) == "x.mp4: cannot read video"
    assert error_line(InputError("")) == "InputError"  # still reads as a failure
    assert error_line(RuntimeError("boom")) == "RuntimeError: boom"


def test_batch_help_does_not_import_ray():
    code = ("import sys\nfrom recon4d.cli import main\ntry:\n    main(['batch', '--help'])\n"
            "except SystemExit:\n    pass\nprint('ray' in sys.modules, 'torch' in sys.modules,"
            " file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.startswith("usage: recon4d batch")
    assert done.stderr.strip().splitlines()[-1] == "False False"
