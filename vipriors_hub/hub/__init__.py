"""Hub I/O: model folders, model cards, export and push, conversion of the original checkpoints.

* ``folders.py``: write and load Hub-ready folders (safetensors + plain-timm ``config.json``);
* ``cards.py``: model cards rendered from a run's configuration, metrics and evaluation files;
* ``publish.py``: a trainer's ``final/`` (``write_run_model``), ``export_run`` (a run -> a Hub-ready
  folder with evaluation results) and ``push_to_hub``;
* ``convert.py``: the original research code's ``.pth.tar`` checkpoints -> model folders;
* ``settings.py``: the settings of ``export``, ``push`` and ``convert``.
"""

import importlib
from typing import Any

_HOMES = {
    "model_description": "cards",
    "render_model_card": "cards",
    "convert_checkpoint": "convert",
    "family_architecture": "folders",
    "file_sha256": "folders",
    "load_model_folder": "folders",
    "pretrained_cfg_for": "folders",
    "read_model_config": "folders",
    "write_model_folder": "folders",
    "export_run": "publish",
    "push_to_hub": "publish",
    "write_run_model": "publish",
    "ConvertConfig": "settings",
    "ExportConfig": "settings",
    "PushConfig": "settings",
}


def __getattr__(name: str) -> Any:
    """A public name of the package, imported from its module on first use (``hub.settings`` stays
    light for the command line)."""
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_HOMES)


def __dir__() -> list[str]:
    """The package's public names (loaded or not)."""
    return __all__
