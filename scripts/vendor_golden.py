"""Copy a golden set into the repository's test data and check it, so a clone alone runs its tests.

    python scripts/vendor_golden.py SOURCE DEST          # copy the data files, then check DEST
    python scripts/vendor_golden.py --check DEST [SOURCE] # check DEST (and that it equals SOURCE)

Only the data folders and the manifest are copied (`DATA_ENTRIES`); README files (the set's own
documentation, and the model cards the Hub mixin writes into checkpoint folders) are not: no
loader reads them. A set is valid when its manifest parses, lists cases, and every file or folder
a case names exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

MANIFEST = "manifest.json"
DATA_ENTRIES = (MANIFEST, "cases", "checkpoints", "images", "keys")
EXCLUDED_NAMES = frozenset({"README.md"})


def data_files(root: Path) -> list[str]:
    """Relative POSIX paths of the files of `root` that belong to the vendored copy, sorted."""
    found = []
    for entry in DATA_ENTRIES:
        path = root / entry
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        found += [p.relative_to(root).as_posix() for p in candidates
                  if p.is_file() and p.name not in EXCLUDED_NAMES]
    return sorted(found)


def named_paths(manifest: dict) -> Iterator[str]:
    """Every path a case of `manifest` names in its `files` (strings and lists of strings)."""
    for case in manifest.get("cases", []):
        for value in case.get("files", {}).values():
            yield from [value] if isinstance(value, str) else value


def check_set(root: Path) -> list[str]:
    """Problems of the golden set in `root` (empty when it can be used), each naming the path."""
    manifest_path = root / MANIFEST
    if not root.is_dir():
        return [f"{root}: no such folder"]
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        return [f"{manifest_path}: missing (a golden set is a folder holding {MANIFEST})"]
    except (OSError, ValueError) as exc:
        return [f"{manifest_path}: unreadable ({exc})"]
    if not isinstance(manifest, dict) or not isinstance(manifest.get("cases"), list):
        return [f"{manifest_path}: has no list of cases"]
    return [f"{root / name}: named by {MANIFEST} but missing"
            for name in sorted(set(named_paths(manifest))) if not (root / name).exists()]


def compare_sets(copy: Path, source: Path) -> list[str]:
    """Differences between the data files of `copy` and `source` (names and SHA-256 of contents)."""
    ours, theirs = set(data_files(copy)), set(data_files(source))
    problems = [f"{copy / n}: not in {source}" for n in sorted(ours - theirs)]
    problems += [f"{copy / n}: missing (present in {source})" for n in sorted(theirs - ours)]
    problems += [f"{copy / n}: content differs from {source / n}" for n in sorted(ours & theirs)
                 if _sha256(copy / n) != _sha256(source / n)]
    return problems


def vendor(source: Path, dest: Path) -> list[str]:
    """Replace `dest` by a copy of the data files of `source`; return the copied paths."""
    if dest.exists():
        shutil.rmtree(dest)
    names = data_files(source)
    for name in names:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, dest / name)  # contents only: modes follow the umask
    return names


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring); exit status 1 when a check finds problems."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only check DEST (and compare it with SOURCE when given)")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="SOURCE DEST, or with --check: "
                        "DEST [SOURCE]")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.paths]
    if args.check:
        if len(paths) > 2:
            parser.error("--check takes DEST and optionally SOURCE")
        dest, source = paths[0], paths[1] if len(paths) == 2 else None
    else:
        if len(paths) != 2:
            parser.error("copying takes SOURCE and DEST")
        source, dest = paths
        problems = check_set(source)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        print(f"copied {len(vendor(source, dest))} files from {source} to {dest}")
    problems = check_set(dest) + (compare_sets(dest, source) if source else [])
    print("\n".join(problems) or f"{dest}: valid golden set ({len(data_files(dest))} files)",
          file=sys.stderr if problems else sys.stdout)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
