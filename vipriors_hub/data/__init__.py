"""Data: sources, transforms and the resumable stream (no argument parsing: the CLI owns it).

* ``sources.py``: ``DataConfig`` and ``load_data`` over every source; ``vipriors.py`` and
  ``split_lists.py`` the VIPriors subset from the official split lists; ``fashion_mnist.py``;
* ``images.py``: decoding to RGB (bombs refused, 16-bit scaled);
* ``transforms.py``: each phase's transforms (timm's factory);
* ``stream.py``: sharded, reshuffled, exactly resumable iteration.
"""

from .sources import DATASETS, DataConfig, DataSplits, describe, load_data
from .split_lists import SplitListError, load_split_lists
from .stream import ExampleStream, ResumableLoader
from .transforms import (
    CIFAR10_POLICY,
    TwoCrops,
    check_auto_augment,
    eval_transform,
    moco_v2_transform,
    student_train_transform,
    ten_crop_transform,
)

__all__ = [
    "CIFAR10_POLICY",
    "DATASETS",
    "DataConfig",
    "DataSplits",
    "ExampleStream",
    "ResumableLoader",
    "SplitListError",
    "TwoCrops",
    "check_auto_augment",
    "describe",
    "eval_transform",
    "load_data",
    "load_split_lists",
    "moco_v2_transform",
    "student_train_transform",
    "ten_crop_transform",
]
