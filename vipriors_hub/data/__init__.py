"""Data: sources, transforms and the resumable stream (no argument parsing: the CLI owns it).

* ``settings.py``: ``DataConfig``, the data settings every subcommand shares (light: the command
  line reads it before anything heavy is imported);
* ``sources.py``: ``load_data`` over every source; ``vipriors.py`` and ``split_lists.py`` the
  VIPriors subset from the official split lists; ``fashion_mnist.py``;
* ``images.py``: decoding to RGB (bombs refused, 16-bit scaled);
* ``transforms.py``: each phase's transforms (timm's factory);
* ``stream.py``: sharded, reshuffled, exactly resumable iteration; ``loader.py``: the loader that
  owns the epoch and batch position.

Names load from their module when first used, so that ``from vipriors_hub.data import DataConfig``
does not import ``datasets``.
"""

import importlib
from typing import Any

_HOMES = {
    "CIFAR10_POLICY": "settings",
    "DATASETS": "settings",
    "DataConfig": "settings",
    "DataSplits": "sources",
    "describe": "sources",
    "load_data": "sources",
    "SplitListError": "split_lists",
    "load_split_lists": "split_lists",
    "EpochPart": "stream",
    "ExampleStream": "stream",
    "ResumableLoader": "loader",
    "TwoCrops": "transforms",
    "check_auto_augment": "transforms",
    "eval_transform": "transforms",
    "moco_v2_transform": "transforms",
    "student_train_transform": "transforms",
    "ten_crop_transform": "transforms",
}


def __getattr__(name: str) -> Any:
    """A public name of the package, imported from its module on first use."""
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_HOMES)


def __dir__() -> list[str]:
    """The package's public names (loaded or not)."""
    return __all__
