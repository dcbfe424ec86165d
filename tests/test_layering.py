"""Import layering: no package of recon4d imports a package above it (read from the source).

The order, lowest first. A package may import its own modules, any lower layer and the shared
leaves; packages in one layer do not import each other.

- geometry: transforms, cameras, Umeyama, flow; numpy and torch only.
- viz: array rendering (colour maps) that the writers use.
- models: the networks.
- io: images, videos, output layout and writers, TUM files.
- inference: pair predictions from a network.
- dynamics, align, matching: what is computed from the predictions.
- synthetic: scenes with ground truth and the oracle network; it produces PairPredictions and
  judges matches (`synthetic.matches`), so it sits above inference and matching.
- slam: sequential reconstruction.
- pipeline: the reconstruct job (its --oracle runs read synthetic scenes).
- eval: metrics on output folders and benchmark readers.
- app, cluster: the web app and the batch / sharded runs on Ray, both built on the jobs above.
- commands, then cli, then __main__: the top.

The shared leaves (errors, options, scene, summary_repr, and the root `recon4d/__init__.py` with
`__version__`) may be imported from anywhere; they import only each other and geometry.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "recon4d"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("geometry",),
    ("viz",),
    ("models",),
    ("io",),
    ("inference",),
    ("dynamics", "align", "matching"),
    ("synthetic",),
    ("slam",),
    ("pipeline",),
    ("eval",),
    ("app", "cluster"),
    ("commands",),
    ("cli",),
    ("__main__",),
)
SHARED_LEAVES = frozenset({"errors", "lazy", "options", "scene", "summary_repr", "__init__"})

RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}


def unit_of(module: str) -> str:
    """The layer unit of a dotted module name inside recon4d ("recon4d.io.tum" -> "io")."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def is_unit(name: str) -> bool:
    """A package or module directly under recon4d/ (not a name defined in its __init__)."""
    return (PACKAGE / name / "__init__.py").exists() or (PACKAGE / f"{name}.py").exists()


def imported_modules(source: str, rel: str) -> list[str]:
    """Every recon4d module imported anywhere (functions included) in the `source` of the file
    `rel` (relative to recon4d/), as absolute names."""
    package = ["recon4d", *rel.split("/")[:-1]]
    found = []
    for node in ast.walk(ast.parse(source, filename=rel)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[:len(package) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base == "recon4d":  # from recon4d import io / __version__
                found += [f"recon4d.{a.name}" if is_unit(a.name) else "recon4d"
                          for a in node.names]
            else:
                found.append(base)
    return [name for name in found if name == "recon4d" or name.startswith("recon4d.")]


def allowed(source: str, target: str) -> bool:
    """May layer unit `source` import layer unit `target`?"""
    if source == target or target in SHARED_LEAVES:
        return True
    if source in SHARED_LEAVES:
        return target == "geometry"
    same_layer = RANK[source] == RANK[target] and source != target
    return RANK[target] < RANK[source] and not same_layer


def violations() -> set[tuple[str, str]]:
    """(file relative to recon4d/, imported module) for every import against the order."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        source = rel.split("/")[0].removesuffix(".py")
        for module in imported_modules(path.read_text(), rel):
            if not allowed(source, unit_of(module)):
                found.add((rel, module))
    return found


def test_every_package_has_a_layer():
    units = {p.name.removesuffix(".py") for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    assert units <= set(RANK) | SHARED_LEAVES, f"place these in LAYERS: {units - set(RANK)}"


def test_no_package_imports_a_higher_one():
    found = sorted(violations())
    assert not found, "imports against the layer order (file, module):\n" + "\n".join(
        f"  recon4d/{rel}: {module}" for rel, module in found)


def test_geometry_imports_only_numpy_and_torch():
    for path in (PACKAGE / "geometry").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            for name in names:
                top = name.split(".")[0]
                assert top in {"numpy", "torch", "recon4d", "__future__", "dataclasses", "sys",
                               "types", "typing"}, f"{path.name} imports {name}"
                assert top != "recon4d" or name.startswith("recon4d.geometry"), (
                    f"{path.name} imports {name}")


def test_the_checker_resolves_every_import_form():
    source = """
import numpy
import recon4d.eval.depth
from recon4d import viz, __version__
from . import writers
from ..synthetic.flow import forward_flow

def later():
    from .tum import read_tum
"""
    assert imported_modules(source, "io/atomic.py") == [
        "recon4d.eval.depth", "recon4d.viz", "recon4d", "recon4d.io", "recon4d.synthetic.flow",
        "recon4d.io.tum"]
    assert imported_modules("from . import x", "io/__init__.py") == ["recon4d.io"]
    assert [unit_of(m) for m in ("recon4d.io.tum", "recon4d")] == ["io", "__init__"]
    assert not allowed("io", "eval") and not allowed("matching", "synthetic")
    assert not allowed("align", "matching") and allowed("eval", "io")
    assert allowed("scene", "geometry") and not allowed("scene", "io")
    assert allowed("io", "__init__") and not allowed("__init__", "io")
