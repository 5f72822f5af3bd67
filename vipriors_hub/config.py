"""Settings as dataclasses, exposed as command-line flags and read from YAML files.

Priority, lowest to highest: the dataclass default, the ``--config`` YAML file (sections named
like the dataclasses: ``data:``, ``train:``), then the flags given on the command line.

Each field declares what it accepts in its metadata, and :func:`check_settings` (called by every
settings dataclass after construction) refuses anything else with one line naming the flag:

* ``choices``: the allowed values (also shown by ``--help`` and checked by argparse);
* ``min`` / ``max``: inclusive bounds; ``above`` / ``below``: exclusive bounds (numbers must be finite);
* ``action``: a flag that says what to do (``--resume``), not how the run is set up: it is never
  written to nor read from a configuration file;
* ``required``: the value must be given (``None`` is refused); ``positional``: given without a flag
  (``vipriors-hub export RUN_DIR``); a ``list[str]`` field takes its flag once per value;
* ``flags``: the command-line spellings, the primary (timm's) first, earlier names after it;
  ``switches``: extra value-less flags that set a value (``--no-auto-augment`` sets ``None``);
  ``nargs`` / ``const`` / ``metavar``: as argparse's (``--resume [PATH]``).

The command line itself is built by :mod:`vipriors_hub.cli`; this module holds no argparse code.
"""

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from .errors import VipriorsError

__all__ = [
    "check_settings",
    "field_type",
    "primary_flag",
    "read_config_section",
    "recorded_settings",
    "upgrade_settings",
]


def field_type(field: dataclasses.Field) -> type:
    """The type of a field, ``X`` for ``X | None`` (``list[str]`` stays ``list[str]``)."""
    if typing.get_origin(field.type) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(field.type) if a is not type(None))
    return field.type


def primary_flag(field: dataclasses.Field) -> str:
    """The command-line flag of a settings field: the first of its ``flags`` metadata, else
    ``--field-name`` (``FIELD_NAME`` for a positional one)."""
    if field.metadata.get("positional"):
        return field.name.upper()
    return field.metadata.get("flags", ("--" + field.name.replace("_", "-"),))[0]


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
    kind = field_type(field)
    noun = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false"}.get(kind, str(kind))
    return f"{noun}" + (f", {' and '.join(parts)}" if parts else "")


def _acceptable(field: dataclasses.Field, value: Any) -> bool:
    kind, meta = field_type(field), field.metadata
    if typing.get_origin(kind) is list:
        item = typing.get_args(kind)[0]
        return isinstance(value, list | tuple) and all(isinstance(v, item) for v in value)
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
        if value is None and field.metadata.get("required"):
            raise VipriorsError(f"{primary_flag(field)} is required.")
        optional = type(None) in typing.get_args(field.type)
        if value is None and optional:
            continue
        if not _acceptable(field, value):
            raise VipriorsError(f"{primary_flag(field)} {value!r}: must be {_requirement(field)}.")


def recorded_settings(settings: Any) -> dict[str, Any]:
    """The fields of a settings dataclass that describe the run (``action`` flags left out)."""
    return {
        field.name: getattr(settings, field.name)
        for field in dataclasses.fields(settings)
        if not field.metadata.get("action")
    }


# Values older versions wrote into config.yaml, as they read now: ``auto_augment`` was on/off.
_LEGACY_VALUES = {"auto_augment": {True: "original", False: None}}


def upgrade_settings(values: dict[str, Any]) -> dict[str, Any]:
    """A ``config.yaml`` section with the values older versions wrote translated to today's."""
    upgraded = dict(values)
    for name, translation in _LEGACY_VALUES.items():
        value = upgraded.get(name)
        if isinstance(value, bool) and value in translation:
            upgraded[name] = translation[value]
    return upgraded


def read_config_section(path: str | Path, section: str, config_class: type) -> dict[str, Any]:
    """The settings of ``section`` in the YAML file ``path``, checked against ``config_class``'s fields.

    Action settings (``resume``, ``overwrite`` written by older versions) are dropped: a
    configuration file says how to train, never what to do with an existing run.

    Raises:
        VipriorsError: an unreadable file, a section that is not a mapping, or unknown settings.
    """
    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise VipriorsError(f"--config {path} could not be read as YAML: {error}") from error
    values = loaded.get(section, {}) if isinstance(loaded, dict) else None
    if not isinstance(values, dict):
        raise VipriorsError(f"--config {path}: the '{section}' section must be a mapping of settings.")
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    unknown = set(values) - set(fields)
    if unknown:
        raise VipriorsError(f"Unknown {section} setting(s) in {path}: {', '.join(sorted(map(str, unknown)))}.")
    values = {
        name: value for name, value in upgrade_settings(values).items() if not fields[name].metadata.get("action")
    }
    for name, value in values.items():
        if field_type(fields[name]) is float and isinstance(value, str):
            try:
                values[name] = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
            except ValueError:
                pass
    return values
