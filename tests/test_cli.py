"""The `recon4d` command line: light help, options declared once, one-line errors, signals,
and the output check before any slow work."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

import pytest

from recon4d import cli, options
from recon4d.errors import OptionError
from recon4d.options import (
    AlignOptions,
    EvalOptions,
    FrameOptions,
    MatchOptions,
    MotionOptions,
    NetworkOptions,
    OutputOptions,
    ReconstructOptions,
    VideoOptions,
    add_options,
    options_from_args,
)

HEAVY = ("torch", "numpy", "PIL", "huggingface_hub")


@pytest.mark.parametrize("argv", [
    ["--help"], ["reconstruct", "--help"], ["infer", "--help"], ["match", "--help"],
    ["synth", "--help"], ["eval", "--help"], ["masks", "--help"], ["view", "--help"]])
def test_help_imports_no_heavy_module(argv):
    """A fresh interpreter prints the help without importing torch, numpy, PIL or the Hub."""
    code = ("import sys\nfrom recon4d.cli import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit:\n    pass\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.startswith("usage: recon4d")
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_top_level_help_is_for_users(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name, summary in cli.COMMANDS.items():
        assert f"  {name}" in text and summary in text
    assert "Documentation: README.md and the docs/ folder" in text
    assert "sub-command per module" not in text  # the old developer docstring


def parse(*argv: str) -> ReconstructOptions:
    """ReconstructOptions from reconstruct-style flags, through argparse."""
    parser = argparse.ArgumentParser()
    add_options(parser, ReconstructOptions)
    return options_from_args(ReconstructOptions, parser.parse_args(list(argv)))


def test_no_flags_give_the_dataclass_defaults():
    assert parse() == ReconstructOptions()
    assert parse().network.weights == "DUSt3R_ViTLarge_BaseDecoder_512_dpt"
    assert parse().alignment.conf_threshold == 3.0


def test_flags_build_the_nested_options():
    got = parse("--model", "x.pth", "--no-symmetrize", "--size", "224", "--dtype", "bf16",
                "--num-frames", "5", "--solver", "adam", "--niter", "0", "--conf-threshold",
                "1.5", "--focal", "800", "--formats", "ply, glb,", "--motion", "flow",
                "--masks", "m", "--no-shared-focal", "--window", "40")
    assert got == ReconstructOptions(
        network=NetworkOptions(weights="x.pth", size=224, symmetrize=False, dtype="bf16"),
        frames=FrameOptions(num_frames=5),
        motion=MotionOptions(motion="flow"),
        video=VideoOptions(masks="m", shared_focal=False, window=40),
        alignment=AlignOptions(solver="adam", niter=0, conf_threshold=1.5, focal=800.0),
        outputs=OutputOptions(formats=("ply", "glb")))


def test_library_only_settings_have_no_flag(capsys):
    parser = argparse.ArgumentParser()
    add_options(parser, MatchOptions)
    parser.print_help()
    text = capsys.readouterr().out
    assert "--subsample" in text and "--no-symmetric" in text and "--max-3d-error" in text
    assert "--dist" not in text and "--block-size" not in text and "--conf-mode" not in text
    assert options_from_args(MatchOptions, parser.parse_args(["--max-3d-error", "off"])) == \
        MatchOptions(max_3d_error=None)


@pytest.mark.parametrize("make, message", [
    (lambda: AlignOptions(conf_threshold=0.5), "--conf-threshold must be a number >= 1"),
    (lambda: AlignOptions(focal=500.0, calib="k.json"), "either --focal or --calib"),
    (lambda: AlignOptions(solver="lbfgs"), "--solver: unknown value 'lbfgs'"),
    (lambda: NetworkOptions(size=500), "--size must be a multiple of 16"),
    (lambda: NetworkOptions(dtype="fp8"), "--dtype: unknown value 'fp8'"),
    (lambda: FrameOptions(fps=0.0), "--fps must be a positive number, got 0.0"),
    (lambda: OutputOptions(formats=()), "--formats: no format given"),
    (lambda: EvalOptions(delta=0), "--delta must be an integer >= 1, got 0"),
    (lambda: EvalOptions(delta=1.5), "--delta must be an integer >= 1, got 1.5"),
    (lambda: EvalOptions(max_dt=-0.1), "--max-dt must be a number >= 0, got -0.1"),
    (lambda: EvalOptions(cloud_voxel=0.0), "--cloud-voxel must be a positive number, got 0.0"),
])
def test_bad_values_raise_option_error(make, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(")):
        make()


def test_light_names_equal_the_heavy_modules_names():
    """Help texts list these names from recon4d.options; the tables keyed by them must agree."""
    from recon4d.matching import masks
    from recon4d.models.precision import AUTOCAST_DTYPES

    assert options.DTYPES == tuple(AUTOCAST_DTYPES)
    assert options.BACKGROUND_COLOURS == tuple(masks.BACKGROUND_COLOURS)


def test_option_error_is_one_line_before_any_work(tmp_path, capsys):
    """The (missing) oracle folder is never read: the bad value is refused first."""
    out = tmp_path / "out"
    status = cli.main(["reconstruct", "--oracle", str(tmp_path / "absent"), "--out", str(out),
                       "--conf-threshold", "0.5"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("recon4d reconstruct: error: --conf-threshold must be a number >= 1")
    assert not out.exists()


@pytest.mark.parametrize("argv", [
    ["reconstruct", "--oracle", "{missing}"], ["infer", "{missing}"],
    ["match", "{missing}", "{missing}"], ["synth"]])
def test_unwritable_out_is_refused_before_reading_inputs(argv, tmp_path, capsys):
    """--out below a file: an output error, although the inputs do not exist either."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = blocker / "out"
    argv = [a.format(missing=tmp_path / "missing") for a in argv]
    argv += [str(out)] if argv[0] == "synth" else ["--out", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{out}: cannot create the output folder: {blocker} is a file" in err


@pytest.mark.parametrize("signum, status, message", [
    (signal.SIGTERM, 143, "terminated by SIGTERM"), (signal.SIGINT, 130, "interrupted")])
def test_signals_end_the_run_with_128_plus_the_signal(signum, status, message, monkeypatch,
                                                      tmp_path, capsys):
    """SIGTERM unwinds like Ctrl-C (installed by main); the status tells them apart. Python's
    Ctrl-C handler is set here: a test run started in the background of a non-interactive
    shell inherits SIGINT ignored, and Python then leaves it ignored."""
    from recon4d.commands import synth_run

    def killed(args):
        os.kill(os.getpid(), signum)
        raise AssertionError("the signal should have interrupted the run")

    monkeypatch.setattr(synth_run, "run", killed)
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert cli.main(["synth", str(tmp_path / "s")]) == status
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert capsys.readouterr().err == f"recon4d synth: {message}\n"



@pytest.mark.parametrize("command", ["infer", "reconstruct"])
def test_a_mistyped_checkpoint_is_refused_before_the_frames_are_read(tmp_path, capsys, command):
    """The video cannot be decoded; the checkpoint spec is checked first, without decoding it."""
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not a video")
    status = cli.main([command, str(video), "--out", str(tmp_path / "out"),
                       "--weights", "checkpoints/typo.pth"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "checkpoints/typo.pth: no such checkpoint file or folder" in err
    assert "clip.mp4" not in err
