"""Run the documentation's examples that print figures, and rewrite those figures.

    .venv/bin/python scripts/readme_figures.py            # rewrite every figures block
    .venv/bin/python scripts/readme_figures.py --check    # exit 1 if a block differs from a run

A ```bash block is an example: each line (a trailing backslash continues it) is one command, run
with bash from a fresh folder where `.venv` is the running Python environment, so the commands
run exactly as printed. A block between `<!-- figures:NAME -->` and `<!-- /figures -->` holds the
standard output of the nearest example before it. Figures are deterministic up to rounding, apart
from durations (a number followed by " s"), which are ignored when comparing (`same_figures`).
`tests/test_readme.py` runs every example and compares the figures.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)
_INLINE = re.compile(r"`((?:bash |\.venv/bin/)[^`]+)`")
_FIGURES = re.compile(r"(<!-- figures:([\w-]+) -->\n)(.*?)(<!-- /figures -->)", re.S)
_DURATION = re.compile(r"\d+(?:\.\d+)? s\b")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.(\d+))?(?![\w.])")
# a figure matches a fresh run within 2 units of its last printed digit or 0.5 % of its value
LAST_DIGIT_UNITS, RELATIVE = 2, 0.005


@dataclass(frozen=True)
class Example:
    """The commands of one ```bash block and the figures block (if any) showing their output."""

    commands: tuple[str, ...]
    figures: str | None


def examples(markdown: str) -> list[Example]:
    """Every ```bash block of `markdown`, in order, with the name of the figures block showing
    its output (the figures blocks after it, before the next ```bash block)."""
    blocks = [m for m in _FENCE.finditer(markdown) if m.group(1) == "bash"]
    shown = {}
    for figure in _FIGURES.finditer(markdown):
        before = [b for b in blocks if b.end() <= figure.start()]
        if before:
            shown[before[-1].start()] = figure.group(2)
    return [Example(_commands(b.group(2)), shown.get(b.start())) for b in blocks]


def inline_commands(markdown: str) -> list[str]:
    """The commands printed inside running text: code spans starting with `bash ` or
    `.venv/bin/` (a span broken over two lines is one command), in order, without repeats."""
    spans = (" ".join(m.group(1).split()) for m in _INLINE.finditer(_FENCE.sub("", markdown)))
    return list(dict.fromkeys(spans))


def figures(markdown: str) -> dict[str, str]:
    """Text of every figures block (its fenced content), by name."""
    return {m.group(2): _unfence(m.group(3)) for m in _FIGURES.finditer(markdown)}


def with_figures(markdown: str, name: str, text: str) -> str:
    """`markdown` with the figures block `name` holding `text` as a ```text block."""
    def replace(match: re.Match) -> str:
        if match.group(2) != name:
            return match.group(0)
        return f"{match.group(1)}```text\n{text.rstrip()}\n```\n{match.group(4)}"
    return _FIGURES.sub(replace, markdown)


def same_figures(printed: str, fresh: str) -> list[str]:
    """Differences between the figures of `printed` and of a `fresh` run (empty when they agree)."""
    ours, theirs = _numbers(printed), _numbers(fresh)
    if len(ours) != len(theirs):
        return [f"{len(ours)} figures printed, {len(theirs)} in the fresh run:\n{fresh}"]
    pairs = zip(ours, theirs, strict=True)
    return [f"{value:g} printed, {new:g} now" for (value, tol), (new, _) in pairs
            if abs(value - new) > max(tol, RELATIVE * abs(value))]


def prepare_workspace(folder: Path) -> None:
    """Make `folder` a place where the examples run as printed: `.venv` is this environment."""
    (folder / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)


def run_example(example: Example, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Standard output of the example's commands run in turn; RuntimeError if one fails."""
    outputs = []
    for command in example.commands:
        done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise RuntimeError(f"`{command}` exited with status {done.returncode}:\n"
                               f"{done.stdout}{done.stderr}")
        outputs.append(done.stdout)
    return "".join(outputs)


def documents(root: Path = REPO) -> list[Path]:
    """The markdown files holding examples: the README and every page of docs/."""
    return [root / DOCUMENTS[0], *sorted((root / DOCUMENTS[1]).glob("*.md"))]


def _numbers(text: str) -> list[tuple[float, float]]:
    """(value, tolerance from its last printed digit) of each number in `text` but durations."""
    return [(float(m.group(0)), LAST_DIGIT_UNITS * 10.0 ** -len(m.group(1) or ""))
            for m in _NUMBER.finditer(_DURATION.sub("", text))]


def _commands(block: str) -> tuple[str, ...]:
    """The commands of a ```bash block: one a line, a trailing backslash continuing it."""
    lines = block.replace("\\\n", " ").splitlines()
    return tuple(" ".join(line.split()) for line in lines if line.strip())


def _unfence(block: str) -> str:
    match = _FENCE.search(block)
    return match.group(2) if match else block


def main(argv: list[str] | None = None) -> int:
    """Regenerate (or with --check compare) the figures of every document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only, rewrite nothing")
    check = parser.parse_args(argv).check
    differs = False
    for path in documents():
        markdown = original = path.read_text()
        with tempfile.TemporaryDirectory() as tmp:
            prepare_workspace(Path(tmp))
            for example in (e for e in examples(original) if e.figures):
                output = run_example(example, Path(tmp))
                problems = same_figures(figures(original)[example.figures], output)
                for problem in problems:
                    print(f"{path.name} {example.figures}: {problem}", file=sys.stderr)
                differs |= bool(problems)
                markdown = with_figures(markdown, example.figures, output)
        if markdown != original and not check:
            path.write_text(markdown)
            print(f"rewrote the figures of {path.relative_to(REPO)}")
    return int(differs and check)


if __name__ == "__main__":
    sys.exit(main())
