"""Reduced-precision autocast of the network trunk: which dtype may run on which device.

bf16/fp16 run on CUDA (bf16 where the GPU supports it). On the CPU, bf16 runs only where the CPU
has native bf16 matrix instructions (AMX-BF16, AVX512-BF16, Arm BF16), which make a bf16 matmul
several times faster than fp32; elsewhere bf16 is emulated and slower than fp32, so it is
refused. fp16 is refused on the CPU: its matmuls measured no faster than fp32 on AMX-BF16 /
AVX512-FP16 CPUs. fp32 stays the default (the golden-exact path).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import torch

from recon4d.errors import OptionError

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CPUINFO = Path("/proc/cpuinfo")
# /proc/cpuinfo flags of native bf16 matrix instructions (x86 "flags", Arm "Features" lines)
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")
# torch's own x86 queries; every CPU with AMX tiles has AMX-BF16. (oneDNN's
# torch.ops.mkldnn._is_mkldnn_bf16_supported() is not used: it is also true on AVX-512 CPUs
# without bf16 instructions, where bf16 is emulated and slow.)
_TORCH_QUERIES = {"amx_bf16": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}


def cpu_bf16_features() -> tuple[str, ...]:
    """This CPU's native bf16 matrix features (e.g. ("amx_bf16", "avx512_bf16")); () if none.

    From torch's CPU queries when they find any, else from the flags in /proc/cpuinfo.
    """
    found = tuple(name for name, query in _TORCH_QUERIES.items() if _torch_query(query))
    return found or _cpuinfo_features()


def autocast_context(dtype: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast of the network trunk in `dtype` on `device`; OptionError where it is refused."""
    if dtype not in AUTOCAST_DTYPES:
        raise OptionError(f"unknown dtype {dtype!r}; choose one of {', '.join(AUTOCAST_DTYPES)}")
    if dtype == "fp32":
        return contextlib.nullcontext()
    if device.type == "cuda":
        if dtype == "bf16" and not torch.cuda.is_bf16_supported():
            raise OptionError("this GPU does not support bf16; use fp16 or fp32")
        return torch.autocast("cuda", dtype=AUTOCAST_DTYPES[dtype])
    if device.type != "cpu":
        raise OptionError(f"dtype {dtype} is supported on CUDA and CPUs only, not on "
                          f"{device.type}; use fp32")
    if dtype == "fp16":
        raise OptionError("dtype fp16 is only supported on CUDA (on the CPU it is no faster than "
                          "fp32); use bf16 on CPUs with native bf16, or fp32")
    if not cpu_bf16_features():
        raise OptionError(
            "dtype bf16 needs a CPU with native bf16 instructions (AMX-BF16 or AVX512-BF16 on "
            "x86, BF16 on Arm); this CPU has none, so bf16 would be emulated and slower than "
            "fp32; use fp32")
    return torch.autocast("cpu", dtype=torch.bfloat16)


def _torch_query(name: str) -> bool:
    """The result of `torch.cpu.<name>()`, False where this torch build lacks it."""
    query: Callable[[], bool] | None = getattr(torch.cpu, name, None)
    return bool(query()) if callable(query) else False


def _cpuinfo_features() -> tuple[str, ...]:
    """BF16_CPU_FLAGS present in the flags/Features lines of /proc/cpuinfo (() if unreadable)."""
    try:
        text = CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return tuple(flag for flag in BF16_CPU_FLAGS if flag in flags)
