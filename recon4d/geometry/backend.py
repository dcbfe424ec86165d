"""Array backend of the geometry functions: numpy for numpy inputs, torch for tensors.

Torch is never imported here: a tensor can only exist when the caller imported torch, so the
numpy-only users (evaluation, the synthetic scenes) stay free of it.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np

Array = Any  # numpy.ndarray or torch.Tensor; functions return the kind they were given


def is_tensor(value: object) -> bool:
    """True for a torch.Tensor (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def namespace(*values: object) -> ModuleType:
    """`torch` when any of `values` is a tensor, else `numpy`: the module whose functions apply."""
    return sys.modules["torch"] if any(is_tensor(v) for v in values) else np


def as_float(xp: ModuleType, value: object, like: Array | None = None) -> Array:
    """`value` as a floating array of `xp`: numpy in float64, torch in `like`'s dtype and device.

    A torch integer input becomes the default float dtype; tensors already floating are kept.
    """
    if xp is np:
        return np.asarray(value, dtype=np.float64)
    if is_tensor(value) and value.is_floating_point() and like is None:
        return value
    if like is not None:
        return xp.as_tensor(value, dtype=like.dtype, device=like.device)
    tensor = xp.as_tensor(value)
    return tensor if tensor.is_floating_point() else tensor.to(xp.get_default_dtype())


def as_float64(xp: ModuleType, value: object) -> Array:
    """`value` as a float64 array of `xp` (a tensor keeps its device)."""
    value = as_float(xp, value)
    return value if xp is np else value.double()


def take_along(xp: ModuleType, values: Array, indices: Array, axis: int) -> Array:
    """numpy's take_along_axis for both backends."""
    if xp is np:
        return np.take_along_axis(values, indices, axis)
    return xp.take_along_dim(values, indices, axis)


def identity(xp: ModuleType, size: int, like: Array) -> Array:
    """A (size, size) identity matrix of `like`'s kind (dtype and device for tensors)."""
    return as_float(xp, np.eye(size), like=like)


def arange(xp: ModuleType, size: int, like: Array | None = None) -> Array:
    """0, 1, ..., size - 1 as floats: numpy float64, or `like`'s dtype and device."""
    if xp is np or like is None:
        return as_float(xp, np.arange(size))
    return xp.arange(size, dtype=like.dtype, device=like.device)
