"""Data: sources, transforms and the resumable stream (no argument parsing: the CLI owns it).

* ``settings.py``: ``DataConfig``, the data settings every subcommand shares (light: the command
  line reads it before anything heavy is imported);
* ``sources.py``: ``load_data`` over every source; ``vipriors.py`` and ``split_lists.py`` the
  VIPriors subset from the official split lists; ``fashion_mnist.py``;
* ``images.py``: decoding to RGB (bombs refused, 16-bit scaled);
* ``transforms.py``: each phase's PIL transforms (timm's factory), the reference pipeline;
* ``decoded_cache.py``: every image decoded once into a memory-mapped cache; ``cached_stream.py`` its
  batches; ``batch_params.py``, ``batch_ops.py``, ``batch_autoaugment.py``, ``batch_transforms.py``:
  the device pipeline's per-sample augmentations of whole batches; ``pipeline.py`` the choice;
* ``device_feed.py``: batches sent to the device one ahead;
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
    "DATA_PIPELINES": "settings",
    "DecodedSplit": "decoded_cache",
    "open_decoded": "decoded_cache",
    "CachedExampleStream": "cached_stream",
    "decode_splits": "pipeline",
    "make_stream": "pipeline",
    "resolve_pipeline": "pipeline",
    "Views": "batch_transforms",
    "eval_views": "batch_transforms",
    "moco_v2_views": "batch_transforms",
    "student_views": "batch_transforms",
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
