"""Read the vertices of a PLY file (ASCII or binary), without extra dependencies.

Used by the viewer's folder reader (positions, colours, the optional `confidence` property) and
by the evaluation (positions of a predicted cloud).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from recon4d.errors import InputError

PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2",
             "int16": "i2", "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4",
             "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4", "double": "f8",
             "float64": "f8"}
ENDIAN = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "<"}


def parse_header(path: Path, data: bytes) -> tuple[str, list[tuple[str, int, list]], int]:
    """(format, [(element, count, [(property, dtype)])], byte offset of the body)."""
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise InputError(f"{path}: not a PLY file (missing 'ply' magic or 'end_header')")
    body = data.index(b"\n", end) + 1
    fmt, elements = None, []
    for line in data[:end].decode("ascii", errors="replace").splitlines()[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) >= 2 and words[1] in ENDIAN:
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3:
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property" and elements and len(words) == 3 and words[1] in PLY_TYPES:
            elements[-1][2].append((words[2], PLY_TYPES[words[1]]))
        elif words[0] == "property" and elements and words[1] == "list":
            elements[-1][2].append((words[-1], "list"))
        else:
            raise InputError(f"{path}: unsupported PLY header line {line!r}")
    if fmt is None:
        raise InputError(f"{path}: PLY header has no supported 'format' line")
    return fmt, elements, body


def read_ply_vertices(path: str | os.PathLike) -> np.ndarray:
    """The vertex element as a structured array, one field per property in the file's types
    (x, y, z required); the vertex element must precede any list element."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    data = path.read_bytes()
    fmt, elements, offset = parse_header(path, data)
    names = [e[0] for e in elements]
    if "vertex" not in names:
        raise InputError(f"{path}: PLY file has no vertex element")
    index = names.index("vertex")
    _, count, props = elements[index]
    if any(dtype == "list" for e in elements[:index + 1] for _, dtype in e[2]):
        raise InputError(f"{path}: list properties before or in the vertex element are "
                         "not supported")
    if not {"x", "y", "z"} <= {name for name, _ in props}:
        raise InputError(f"{path}: PLY vertices lack x, y, z properties")
    dtype = np.dtype([(p, ENDIAN[fmt] + t) for p, t in props])
    try:
        if fmt == "ascii":
            skip = sum(e[1] for e in elements[:index])
            lines = data[offset:].decode("ascii").split("\n")[skip:skip + count]
            table = np.array([ln.split()[:len(props)] for ln in lines], dtype=np.float64)
            verts = np.empty(count, dtype=dtype)
            for column, (name, _) in enumerate(props):
                verts[name] = table.reshape(count, len(props))[:, column]
            return verts
        for _, n, ps in elements[:index]:
            offset += n * np.dtype([(p, ENDIAN[fmt] + t) for p, t in ps]).itemsize
        return np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{path}: PLY body is truncated or malformed") from None


def read_ply_points(path: str | os.PathLike) -> np.ndarray:
    """(N, 3) float64 vertex x, y, z of a PLY file."""
    verts = read_ply_vertices(path)
    return np.stack([verts[c].astype(np.float64) for c in "xyz"], axis=1).reshape(-1, 3)
