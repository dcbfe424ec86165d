"""`recon4d batch` on a real local Ray instance (2 CPUs): oracle scenes scored against their
ground truth, a worker killed mid-task and retried, a corrupt video reported while the others
finish, resume without recomputation; and the SPEC checks that run before any task."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import ray

from recon4d.cli import main
from recon4d.cluster.batch import run_batch
from recon4d.cluster.spec import load_spec, option_argv, parse_memory
from recon4d.commands.batch_run import check_options, run_job
from recon4d.errors import InputError, OptionError
from recon4d.io.atomic import atomic_output_dir
from recon4d.options.batch import BatchOptions
from recon4d.synthetic import generate_scene, write_scene
from tests.conftest import GOLDEN_DIR

TINY = GOLDEN_DIR / "checkpoints" / "tiny_dust3r_linear.pth"


@pytest.fixture(scope="session")
def ray_local():
    """One small local Ray instance for the batch and sharded tests (test_sharded imports this
    fixture, so it may find the instance already started)."""
    if ray.is_initialized():
        yield ray
        return
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 << 20,
             log_to_driver=False)
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


def run_job_killed_once(job: str, argv: list[str]) -> None:
    """`run_job`, logged to runs.log beside the batch folder; the first run of scene_0 dies
    halfway through writing its output folder, as a worker killed by the OOM killer would."""
    out = Path(argv[argv.index("--out") + 1])
    with open(out.parent.parent / "runs.log", "a") as log:
        log.write(f"{out.name}\n")
    marker = out.parent.parent / f"killed-{out.name}"
    if out.name == "scene_0" and not marker.exists():
        marker.touch()
        with atomic_output_dir(out) as staging:
            (staging / "half_written.txt").write_text("partial")
            os._exit(1)
    run_job(job, argv)


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
    assert [(r.status, r.error) for r in report.results] == [("done", "")] * 2
    runs = sorted((tmp_path / "runs.log").read_text().split())
    assert runs == ["scene_0", "scene_0", "scene_1"]  # scene_0 was run again after its death
    assert sorted(p.name for p in out.iterdir()) == [
        "batch_summary.csv", "metrics.json", "scene_0", "scene_1"]  # no staging folder left
    for name in ("scene_0", "scene_1"):
        assert not (out / name / "half_written.txt").exists()
        truth = np.loadtxt(scenes / name / "trajectory_tum.txt")
        path = np.linalg.norm(np.diff(truth[:, 1:4], axis=0), axis=1).sum()
        assert report.metrics["sequences"][name]["poses"]["ate"] < 0.02 * path
        assert report.metrics["sequences"][name]["depth"]["abs_rel"] < 0.05
    rows = list(csv.DictReader((out / "batch_summary.csv").open()))
    assert [(r["input"], r["status"]) for r in rows] == [
        (str(scenes / "scene_0"), "done"), (str(scenes / "scene_1"), "done")]
    assert all(float(r["seconds"]) > 0 for r in rows)

    finished = {name: (out / name / "scene.json").stat().st_mtime_ns
                for name in ("scene_0", "scene_1")}
    again = run_batch(spec, out, run_job_killed_once, BatchOptions(retries=1))
    assert [r.status for r in again.results] == ["skipped", "skipped"]
    assert sorted((tmp_path / "runs.log").read_text().split()) == runs  # nothing recomputed
    assert {n: (out / n / "scene.json").stat().st_mtime_ns for n in finished} == finished
    assert again.metrics["summary"]["poses"]["sequences"] == 2  # metrics over all finished


def test_checkpoint_batch_reports_a_corrupt_video_and_finishes_the_rest(
        ray_local, scenes, tmp_path, capsys):
    frames = tmp_path / "inputs" / "frames"
    frames.mkdir(parents=True)
    for k, image in enumerate(sorted((scenes / "scene_0" / "rgb").iterdir())):
        (frames / f"{k:05d}.png").write_bytes(image.read_bytes())
    (tmp_path / "inputs" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    spec = write_spec(tmp_path / "spec.yaml", f"""
job: infer
inputs: ["{tmp_path}/inputs/*"]
options: {{weights: "{TINY}", size: 64, device: cpu}}
""")
    out = tmp_path / "batch"
    assert main(["batch", str(spec), "--out", str(out)]) == 1
    rows = {Path(r["input"]).name: r for r in csv.DictReader((out / "batch_summary.csv").open())}
    assert rows["frames"]["status"] == "done" and rows["frames"]["error"] == ""
    assert rows["broken.mp4"]["status"] == "failed"
    assert "broken.mp4" in rows["broken.mp4"]["error"]
    assert (out / "frames" / "predictions.npz").is_file() and not (out / "broken").exists()
    printed = capsys.readouterr().out
    assert "1 done, 0 skipped, 1 failed" in printed and "batch_summary.csv" in printed


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


def test_spec_options_are_checked_by_the_jobs_parser_before_any_task(scenes, tmp_path):
    def spec(options: str, job: str = "reconstruct", source: str = "oracle"):
        return load_spec(write_spec(tmp_path / "spec.yaml", f"""
job: {job}
inputs: ["{scenes}/scene_*"]
source: {source}
options: {options}
"""))

    check_options(spec("{motion: flow, num-frames: 3, no-symmetrize: true}"))
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


def test_batch_help_does_not_import_ray():
    code = ("import sys\nfrom recon4d.cli import main\ntry:\n    main(['batch', '--help'])\n"
            "except SystemExit:\n    pass\nprint('ray' in sys.modules, 'torch' in sys.modules,"
            " file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.startswith("usage: recon4d batch")
    assert done.stderr.strip().splitlines()[-1] == "False False"
