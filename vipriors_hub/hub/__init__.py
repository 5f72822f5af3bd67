"""Hub I/O: model folders, model cards, export and push, conversion of the original checkpoints.

* ``folders.py``: write and load Hub-ready folders (safetensors + plain-timm ``config.json``);
* ``cards.py``: model cards rendered from a run's configuration, metrics and evaluation files;
* ``publish.py``: a trainer's ``final/`` (``write_run_model``), ``export_run`` (a run -> a Hub-ready
  folder with evaluation results) and ``push_to_hub``;
* ``convert.py``: the original research code's ``.pth.tar`` checkpoints -> model folders.
"""

from .cards import model_description, render_model_card
from .convert import convert_checkpoint
from .folders import (
    family_architecture,
    file_sha256,
    load_model_folder,
    pretrained_cfg_for,
    read_model_config,
    write_model_folder,
)
from .publish import export_run, push_to_hub, write_run_model

__all__ = [
    "convert_checkpoint",
    "export_run",
    "family_architecture",
    "file_sha256",
    "load_model_folder",
    "model_description",
    "pretrained_cfg_for",
    "push_to_hub",
    "read_model_config",
    "render_model_card",
    "write_model_folder",
    "write_run_model",
]
