"""bf16 on the CPU: allowed exactly where the CPU has native bf16, and close to fp32 there.

Truth: the CPU flags as written by the kernel (hand-written /proc/cpuinfo excerpts), torch's
autocast state, and the golden fp32 outputs of a tiny checkpoint (the reference's forward).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from recon4d.errors import OptionError, Recon4dError
from recon4d.inference import infer_pairs
from recon4d.models import load_model, precision
from tests.conftest import GOLDEN_DIR, load_manifest

CPU = torch.device("cpu")
# excerpts of real /proc/cpuinfo files: Sapphire Rapids, Skylake-SP (AVX-512, no bf16), Graviton3
SAPPHIRE_RAPIDS = ("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16 "
                   "amx_bf16 amx_tile amx_int8\n")
SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512dq avx512bw avx512vl\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve i8mm bf16 svebf16\nCPU part\t: 0xd40\n"


@pytest.fixture
def cpuinfo(tmp_path: Path, monkeypatch):
    """Torch's own queries silenced; returns a function that sets /proc/cpuinfo's text."""
    for name in precision._TORCH_QUERIES.values():
        monkeypatch.setattr(torch.cpu, name, lambda: False, raising=False)
    path = tmp_path / "cpuinfo"
    monkeypatch.setattr(precision, "CPUINFO", path)
    return path.write_text


@pytest.mark.parametrize("text, features", [
    (SAPPHIRE_RAPIDS, ("amx_bf16", "avx512_bf16")),
    (SKYLAKE, ()),
    (GRAVITON3, ("bf16",)),
])
def test_cpuinfo_flags_decide_when_torch_finds_nothing(cpuinfo, text: str, features) -> None:
    cpuinfo(text)
    assert precision.cpu_bf16_features() == features


def test_torch_queries_come_first_and_missing_ones_are_ignored(cpuinfo, monkeypatch) -> None:
    cpuinfo(SKYLAKE)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert precision.cpu_bf16_features() == ("avx512_bf16",)
    for name in precision._TORCH_QUERIES.values():
        monkeypatch.delattr(torch.cpu, name)
    cpuinfo(SAPPHIRE_RAPIDS)
    assert precision.cpu_bf16_features() == ("amx_bf16", "avx512_bf16")


def test_unreadable_cpuinfo_means_no_native_bf16(cpuinfo) -> None:
    assert precision.cpu_bf16_features() == ()  # the file was never written


def test_bf16_autocasts_the_cpu_where_it_is_native(monkeypatch) -> None:
    monkeypatch.setattr(precision, "cpu_bf16_features", lambda: ("amx_bf16",))
    with precision.autocast_context("bf16", CPU):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    with precision.autocast_context("fp32", CPU):
        assert not torch.is_autocast_enabled("cpu")


def test_bf16_is_refused_naming_the_missing_feature(monkeypatch) -> None:
    monkeypatch.setattr(precision, "cpu_bf16_features", lambda: ())
    with pytest.raises(OptionError, match="dtype bf16 needs a CPU with native bf16 instructions "
                                          r"\(AMX-BF16 or AVX512-BF16 on x86"):
        precision.autocast_context("bf16", CPU)


@pytest.mark.parametrize("features", [(), ("amx_bf16", "avx512_bf16")])
def test_fp16_stays_refused_on_every_cpu(monkeypatch, features) -> None:
    monkeypatch.setattr(precision, "cpu_bf16_features", lambda: features)
    with pytest.raises(OptionError, match="dtype fp16 is only supported on CUDA"):
        precision.autocast_context("fp16", CPU)


def test_refusal_is_a_user_error_before_any_work(monkeypatch) -> None:
    monkeypatch.setattr(precision, "cpu_bf16_features", lambda: ())
    calls = []
    with pytest.raises(Recon4dError, match="dtype bf16 needs"):
        infer_pairs(lambda *views: calls.append(views), [{"true_shape": np.array([[16, 16]])}] * 2,
                    np.array([[0, 1]]), device="cpu", dtype="bf16", progress=False)
    assert calls == []


def _relative_errors(actual: np.ndarray, expected: np.ndarray, points: bool) -> np.ndarray:
    """Per pixel |a - e| / |e| (Euclidean norms for 3D points)."""
    if points:
        return np.linalg.norm(actual - expected, axis=-1) / np.linalg.norm(expected, axis=-1)
    return np.abs(actual - expected) / np.abs(expected)


def test_bf16_forward_of_a_tiny_checkpoint_stays_close_to_fp32(monkeypatch) -> None:
    monkeypatch.setattr(precision, "cpu_bf16_features", lambda: ("amx_bf16",))
    case = next(c for c in load_manifest()["cases"]
                if c["name"] == "forward_dust3r_dpt_landscape_portrait_pair")
    model = load_model(GOLDEN_DIR / case["files"]["checkpoint"])
    inputs = load_file(str(GOLDEN_DIR / case["files"]["inputs"]))
    views = [{"img": torch.from_numpy(inputs[f"{side}.img"]), "idx": i, "instance": str(i),
              "true_shape": inputs[f"{side}.true_shape"]} for i, side in enumerate(("view1",
                                                                                       "view2"))]
    preds = infer_pairs(model, views, np.array([[0, 1]]), device="cpu", dtype="bf16",
                        progress=False)
    expected = load_file(str(GOLDEN_DIR / case["files"]["expected"]))  # the reference's fp32
    for name, truth in expected.items():
        side, key = name.split(".", 1)
        errors = _relative_errors(preds[0][side][key].numpy(), truth[0], key.startswith("pts3d"))
        # bf16 keeps 8 significant bits (relative step 2^-8 = 0.4 %) through 15 blocks
        assert 1e-4 < np.median(errors) < 0.05, name  # reduced precision did run, and is close
        assert np.percentile(errors, 99) < 0.2, name


def test_benchmark_drift_measures_hand_computed(monkeypatch) -> None:
    bench_file = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_bf16.py"
    monkeypatch.syspath_prepend(str(bench_file.parent))  # as when run as a script
    spec = importlib.util.spec_from_file_location("bench_bf16", bench_file)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    np.testing.assert_allclose(bench.relative_errors(np.array([[3.0, 4.0, 5.0]]),
                                                     np.array([[3.0, 4.0, 0.0]]), True), [1.0])
    np.testing.assert_allclose(bench.relative_errors(np.array([3.0, -5.0]),
                                                     np.array([2.0, -4.0]), False), [0.5, 0.25])
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    about_z = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    np.testing.assert_allclose(bench.rotation_angles_deg(np.stack([np.eye(3), about_z]),
                                                         np.stack([about_z, about_z])),
                               [30.0, 0.0], atol=1e-4)
