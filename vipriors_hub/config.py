"""Settings as dataclasses, exposed as command-line flags and read from YAML files.

Priority, lowest to highest: the dataclass default, the ``--config`` YAML file (sections named
like the dataclasses: ``data:``, ``train:``), then the flags given on the command line.
"""

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml

from .errors import VipriorsError

__all__ = ["add_config_arguments", "resolve_config"]


def _field_type(field: dataclasses.Field) -> type:
    """The type of a field, ``X`` for ``X | None``."""
    args = [a for a in typing.get_args(field.type) if a is not type(None)]
    return args[0] if args else field.type


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type, title: str) -> None:
    """Expose every field of ``config_class`` as ``--field-name`` (unset flags keep the YAML or default value)."""
    group = parser.add_argument_group(title)
    for field in dataclasses.fields(config_class):
        flag = "--" + field.name.replace("_", "-")
        kind = _field_type(field)
        help_text = field.metadata.get("help", "")
        default = field.default if field.default is not dataclasses.MISSING else None
        help_text = f"{help_text} (default: {default})" if help_text else f"default: {default}"
        if kind is bool:
            group.add_argument(
                flag, dest=field.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
        else:
            group.add_argument(flag, dest=field.name, type=kind, default=argparse.SUPPRESS, help=help_text)


def resolve_config(args: argparse.Namespace, config_class: type, section: str) -> Any:
    """Build ``config_class`` from (lowest to highest priority) defaults, ``--config`` YAML and flags."""
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        loaded = yaml.safe_load(Path(args.config).read_text()) or {}
        values.update(loaded.get(section, {}))
    names = {field.name for field in dataclasses.fields(config_class)}
    unknown = set(values) - names
    if unknown:
        raise VipriorsError(f"Unknown {section} setting(s) in {args.config}: {', '.join(sorted(unknown))}.")
    values.update({name: getattr(args, name) for name in names if hasattr(args, name)})
    return config_class(**values)
