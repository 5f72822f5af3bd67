"""Data sources (VIPriors subset, Fashion-MNIST, local and Hub datasets), transforms and iteration."""

from .sources import DATASETS, DataConfig, DataSplits, add_data_arguments, describe, load_data
from .split_lists import SplitListError, load_split_lists
from .stream import ExampleStream, ResumableLoader
from .transforms import TwoCrops, eval_transform, moco_v2_transform, student_train_transform, ten_crop_transform

__all__ = [
    "DATASETS",
    "DataConfig",
    "DataSplits",
    "ExampleStream",
    "ResumableLoader",
    "SplitListError",
    "TwoCrops",
    "add_data_arguments",
    "describe",
    "eval_transform",
    "load_data",
    "load_split_lists",
    "moco_v2_transform",
    "student_train_transform",
    "ten_crop_transform",
]
