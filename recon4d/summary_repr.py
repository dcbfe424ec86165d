"""A dataclass `__repr__` that shows arrays by shape and dtype, so printing a scene stays short."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from recon4d.geometry.backend import is_tensor


def summarize(value: Any) -> str:
    """Arrays and tensors as `ndarray(3, 4) float32`, long sequences by length, else repr."""
    if isinstance(value, np.ndarray) or is_tensor(value):
        kind = "ndarray" if isinstance(value, np.ndarray) else "tensor"
        dtype = str(value.dtype).removeprefix("torch.")
        return f"{kind}{tuple(value.shape)} {dtype}"
    if isinstance(value, (list, tuple)) and len(value) > 4:
        return f"[{len(value)} items]"
    return repr(value)


def summary_repr(obj: Any) -> str:
    """`Name(field=summary, ...)` over the dataclass fields of `obj`, on one line."""
    parts = (f"{f.name}={summarize(getattr(obj, f.name))}" for f in dataclasses.fields(obj)
             if f.repr)
    return f"{type(obj).__name__}({', '.join(parts)})"
