"""Settings as dataclasses, exposed as command-line flags and read from YAML files.

Priority, lowest to highest: the dataclass default, the ``--config`` YAML file (sections named
like the dataclasses: ``data:``, ``train:``), then the flags given on the command line.

Each field declares what it accepts in its metadata, and :func:`check_settings` (called by every
settings dataclass after construction) refuses anything else with one line naming the flag:

* ``choices``: the allowed values (also shown by ``--help`` and checked by argparse);
* ``min`` / ``max``: inclusive bounds; ``above`` / ``below``: exclusive bounds (numbers must be finite);
* ``action``: a flag that says what to do (``--resume``), not how the run is set up: it is never
  written to nor read from a configuration file.
"""

import argparse
import dataclasses
import math
import typing
from pathlib import Path
from typing import Any

import yaml

from .errors import VipriorsError

__all__ = [
    "OneLineArgumentParser",
    "add_config_arguments",
    "check_settings",
    "int_at_least",
    "recorded_settings",
    "resolve_config",
]


class OneLineArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``PROG: error: ...; see --help``), exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def int_at_least(minimum: int, maximum: int | None = None) -> typing.Callable[[str], int]:
    """An argparse ``type``: an integer in ``[minimum, maximum]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from error
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}{upper}")
        return value

    return parse


def _field_type(field: dataclasses.Field) -> type:
    """The type of a field, ``X`` for ``X | None``."""
    args = [a for a in typing.get_args(field.type) if a is not type(None)]
    return args[0] if args else field.type


def _flag(field: dataclasses.Field) -> str:
    return "--" + field.name.replace("_", "-")


def _requirement(field: dataclasses.Field) -> str:
    """What a field accepts, in words (``at least 1``, ``one of: a, b``)."""
    meta = field.metadata
    if "choices" in meta:
        return "one of: " + ", ".join(str(choice) for choice in meta["choices"])
    parts = []
    if "min" in meta:
        parts.append(f"at least {meta['min']}")
    if "above" in meta:
        parts.append(f"greater than {meta['above']}")
    if "max" in meta:
        parts.append(f"at most {meta['max']}")
    if "below" in meta:
        parts.append(f"less than {meta['below']}")
    kind = _field_type(field)
    noun = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false"}.get(kind, str(kind))
    return f"{noun}" + (f", {' and '.join(parts)}" if parts else "")


def _acceptable(field: dataclasses.Field, value: Any) -> bool:
    kind, meta = _field_type(field), field.metadata
    if kind is bool:
        return isinstance(value, bool)
    if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
        return False
    if kind is float and (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)):
        return False
    if kind is str and not isinstance(value, str):
        return False
    if "choices" in meta and value not in meta["choices"]:
        return False
    bounds = (("min", lambda v, b: v >= b), ("max", lambda v, b: v <= b))
    bounds += (("above", lambda v, b: v > b), ("below", lambda v, b: v < b))
    return all(check(value, meta[key]) for key, check in bounds if key in meta)


def check_settings(settings: Any) -> None:
    """Refuse a settings dataclass whose fields hold values their metadata does not allow.

    Raises:
        VipriorsError: one line naming the flag, the value and what is allowed.
    """
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        optional = type(None) in typing.get_args(field.type)
        if value is None and optional:
            continue
        if not _acceptable(field, value):
            raise VipriorsError(f"{_flag(field)} {value!r}: must be {_requirement(field)}.")


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type, title: str) -> None:
    """Expose every field of ``config_class`` as ``--field-name`` (unset flags keep the YAML or default value)."""
    group = parser.add_argument_group(title)
    for field in dataclasses.fields(config_class):
        flag = _flag(field)
        kind = _field_type(field)
        help_text = field.metadata.get("help", "")
        default = field.default if field.default is not dataclasses.MISSING else None
        help_text = f"{help_text} (default: {default})" if help_text else f"default: {default}"
        if kind is bool:
            group.add_argument(
                flag, dest=field.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
        else:
            group.add_argument(
                flag,
                dest=field.name,
                type=kind,
                choices=field.metadata.get("choices"),
                default=argparse.SUPPRESS,
                help=help_text,
            )


def recorded_settings(settings: Any) -> dict[str, Any]:
    """The fields of a settings dataclass that describe the run (``action`` flags left out)."""
    return {
        field.name: getattr(settings, field.name)
        for field in dataclasses.fields(settings)
        if not field.metadata.get("action")
    }


def resolve_config(args: argparse.Namespace, config_class: type, section: str) -> Any:
    """Build ``config_class`` from (lowest to highest priority) defaults, ``--config`` YAML and flags.

    Action flags in the YAML file (``resume``, ``overwrite`` written by older versions) are ignored:
    a configuration file says how to train, never what to do with an existing run.
    """
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        try:
            loaded = yaml.safe_load(Path(args.config).read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise VipriorsError(f"--config {args.config} could not be read as YAML: {error}") from error
        section_values = loaded.get(section, {}) if isinstance(loaded, dict) else None
        if not isinstance(section_values, dict):
            raise VipriorsError(f"--config {args.config}: the '{section}' section must be a mapping of settings.")
        values.update(section_values)
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    unknown = set(values) - set(fields)
    if unknown:
        names = ", ".join(sorted(map(str, unknown)))
        raise VipriorsError(f"Unknown {section} setting(s) in {args.config}: {names}.")
    values = {name: value for name, value in values.items() if not fields[name].metadata.get("action")}
    for name, value in values.items():
        if _field_type(fields[name]) is float and isinstance(value, str):
            try:
                values[name] = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
            except ValueError:
                pass
    values.update({name: getattr(args, name) for name in fields if hasattr(args, name)})
    return config_class(**values)
