"""Option fields: `option(...)` declares a dataclass field with its flag; argparse both ways.

Standard library only. `add_options(parser, Options)` adds the flags (one argument group per
nested dataclass), `options_from_args(Options, namespace)` builds the dataclass back; the
`require*` helpers give the one-line `OptionError` every dataclass raises in `__post_init__`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from recon4d.errors import OptionError

_SPEC = "recon4d.option"  # key of the OptionSpec in a field's metadata


@dataclass(frozen=True)
class OptionSpec:
    """How one dataclass field appears on the command line."""

    help: str
    choices: tuple[Any, ...] | None = None
    flags: tuple[str, ...] | None = None  # None: --field-name (--no-field-name for a True bool);
    # (): a library-only setting, documented and validated but without a flag
    metavar: str | None = None
    type: Callable[[str], Any] | None = None  # None: the type of the default (str if None)


def option(default: Any, help: str, *, choices: Sequence[Any] | None = None,
           flag: str | Sequence[str] | None = None, metavar: str | None = None,
           type: Callable[[str], Any] | None = None) -> Any:
    """A dataclass field with a command-line flag (see `OptionSpec`); defaults must be immutable.

    A bool field becomes a switch: `--name` sets True (default False) or `--no-name` sets False
    (default True); its help says what the switch does. `flag=()` declares a library-only setting.
    """
    flags = (flag,) if isinstance(flag, str) else None if flag is None else tuple(flag)
    spec = OptionSpec(help, None if choices is None else tuple(choices), flags, metavar, type)
    return dataclasses.field(default=default, metadata={_SPEC: spec})


def comma_list(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated names -> tuple (empty items dropped)."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def off_or_float(text: str) -> float | None:
    """argparse type: a number, or 'off' / 'none' for None."""
    return None if text.lower() in ("off", "none") else float(text)


def at_least(low: int) -> Callable[[str], int]:
    """argparse type for a flag outside the option dataclasses: an integer >= `low`."""
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def add_options(parser: argparse.ArgumentParser, options_type: type) -> None:
    """Add the flags of `options_type` to `parser`, in one argument group per dataclass, titled by
    its docstring's first line; nested option dataclasses (fields whose default factory is one)
    get their own group."""
    group = parser.add_argument_group(_first_line(options_type.__doc__))
    for field in dataclasses.fields(options_type):
        spec = field.metadata.get(_SPEC)
        if spec is not None:
            if spec.flags != ():
                _add_flag(group, field, spec)
        elif _nested_type(field) is not None:
            add_options(parser, _nested_type(field))


def options_from_args(options_type: type, args: argparse.Namespace) -> Any:
    """An `options_type` from the parsed flags (nested dataclasses included); validates it."""
    values = {}
    for field in dataclasses.fields(options_type):
        spec = field.metadata.get(_SPEC)
        if spec is not None and spec.flags != () and hasattr(args, field.name):
            values[field.name] = getattr(args, field.name)
        elif _nested_type(field) is not None:
            values[field.name] = options_from_args(_nested_type(field), args)
    return options_type(**values)


def flag_of(options_type: type, name: str) -> str:
    """The command-line flag of field `name` (used in error messages)."""
    field = next(f for f in dataclasses.fields(options_type) if f.name == name)
    return _flags(field, field.metadata[_SPEC])[0]


def _nested_type(field: dataclasses.Field) -> type | None:
    """The dataclass of a nested-options field, else None."""
    factory = field.default_factory
    if isinstance(factory, type) and dataclasses.is_dataclass(factory):
        return factory
    return None


def _flags(field: dataclasses.Field, spec: OptionSpec) -> tuple[str, ...]:
    """The flags of an option field (its name for a library-only setting)."""
    if spec.flags == ():
        return (field.name,)
    if spec.flags:
        return spec.flags
    name = field.name.replace("_", "-")
    return (f"--no-{name}",) if field.default is True else (f"--{name}",)


def _add_flag(group: argparse._ArgumentGroup, field: dataclasses.Field,
              spec: OptionSpec) -> None:
    """One argparse argument for one option field."""
    default = field.default
    flags = _flags(field, spec)
    if isinstance(default, bool):
        group.add_argument(*flags, dest=field.name, default=default, help=spec.help,
                           action="store_false" if default else "store_true")
        return
    kwargs: dict[str, Any] = {"dest": field.name, "default": default, "metavar": spec.metavar,
                              "help": _help(spec, default)}
    kwargs["type"] = spec.type or (type(default) if default is not None else str)
    if spec.choices is not None and not isinstance(default, tuple):
        kwargs["choices"] = spec.choices
    group.add_argument(*flags, **kwargs)


def _help(spec: OptionSpec, default: Any) -> str:
    """The help text, with the default appended unless the text already speaks of it."""
    text = spec.help
    if isinstance(default, tuple) and spec.choices is not None:
        text += f"; comma-separated subset of {','.join(map(str, spec.choices))}"
    if default is not None and "default" not in text:
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        text += f" (default {shown})"
    return text.replace("%", "%%")  # argparse formats help strings with %


def _first_line(doc: str | None) -> str | None:
    """A docstring's first line without its full stop (an argument group's title)."""
    return doc.strip().splitlines()[0].rstrip(".") if doc else None


def require(ok: bool, options_type: type, name: str, problem: str, value: Any) -> None:
    """OptionError naming the flag when `ok` is false."""
    if not ok:
        raise OptionError(f"{flag_of(options_type, name)} {problem}, got {value!r}")


def require_at_least(options: Any, low: int, *names: str) -> None:
    """Each named field is None or an integer >= low."""
    for name in names:
        value = getattr(options, name)
        require(value is None or (isinstance(value, int) and value >= low), type(options), name,
                 f"must be an integer >= {low}", value)


def require_port(options: Any, name: str = "port") -> None:
    """The named field is a TCP port number, 0 (any free port) to 65535."""
    require_at_least(options, 0, name)
    value = getattr(options, name)
    require(value <= 65535, type(options), name, "must be at most 65535", value)


def require_positive(options: Any, *names: str) -> None:
    """Each named field is None or a positive finite number."""
    for name in names:
        value = getattr(options, name)
        require(value is None or (is_number(value) and math.isfinite(value) and value > 0),
                 type(options), name, "must be a positive number", value)


def require_model_size(options: Any) -> None:
    """The model input size is None (from the checkpoint) or a positive multiple of 16."""
    require_at_least(options, 1, "size")
    require(options.size is None or options.size % 16 == 0, type(options), "size",
             "must be a multiple of 16 (512 or 224)", options.size)


def is_number(value: Any) -> bool:
    """An int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_choices(options: Any) -> None:
    """Every option field with choices holds one of them (or None, or a tuple of them)."""
    for field in dataclasses.fields(options):
        spec = field.metadata.get(_SPEC)
        if spec is None or spec.choices is None:
            continue
        value = getattr(options, field.name)
        values = value if isinstance(value, tuple) else (value,)
        if value is not None and (not values or any(v not in spec.choices for v in values)):
            raise OptionError(f"{_flags(field, spec)[0]}: unknown value {value!r}; choose from "
                              f"{', '.join(map(str, spec.choices))}")
