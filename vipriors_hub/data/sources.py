"""The sources the data settings (:mod:`vipriors_hub.data.settings`) select.

Every source gives the same schema: splits ``train``, ``val`` (when there is one) and ``test``, with
columns ``image`` (``datasets.Image(decode=False)``: raw bytes or a path, decoded later) and
``label`` (class index), and the class names.
"""

import errno
import hashlib
from dataclasses import dataclass
from pathlib import Path

import datasets

from ..errors import VipriorsError
from ..outputs import write_failure
from .fashion_mnist import fashion_mnist_splits, select_per_class
from .images import UnreadableImageError, decode_rgb
from .settings import DATASETS, DEFAULT_FASHION_MNIST_DIR, DEFAULT_IMAGENET_HUB_ID, DataConfig
from .split_lists import load_split_lists
from .vipriors import vipriors_splits

__all__ = ["DATASETS", "DataConfig", "DataSplits", "describe", "load_data"]

_SPLIT_NAMES = {"train": "train", "validation": "val", "val": "val", "valid": "val", "test": "test"}


@dataclass
class DataSplits:
    """The selected splits of a source and its class names."""

    splits: dict[str, datasets.Dataset | datasets.IterableDataset]
    class_names: list[str]
    description: str = ""


def _val_per_class(config: DataConfig, per_class: int) -> int:
    return config.val_per_class if config.val_per_class is not None else per_class // 5


def _load_dataset(origin: str, *args: object, **kwargs: object) -> datasets.DatasetDict:
    """``datasets.load_dataset``, its refusals (unknown or unreachable dataset, nothing to build a
    split from) turned into one-line errors naming ``origin``."""
    try:
        return datasets.load_dataset(*args, **kwargs)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            cache = Path(str(kwargs.get("cache_dir") or datasets.config.HF_DATASETS_CACHE))
            raise write_failure(
                "the datasets cache", cache, error, "Free space there or pass --cache-dir on a larger disk."
            ) from error
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise VipriorsError(f"{origin} could not be loaded as a dataset: {reason}") from error
    except ValueError as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise VipriorsError(f"{origin} could not be loaded as a dataset: {reason}") from error


def _generic_splits(config: DataConfig) -> DataSplits:
    if config.dataset == "hub":
        if not config.hub_id:
            raise VipriorsError("--dataset hub needs --hub-id ORG/NAME.")
        origin = f"the Hub dataset {config.hub_id}"
        loaded = _load_dataset(origin, config.hub_id, streaming=config.streaming, cache_dir=config.cache_dir)
    else:
        if not config.data_dir or not Path(config.data_dir).is_dir():
            raise VipriorsError(f"Data directory {config.data_dir} does not exist (--data-dir).")
        builder = "imagefolder" if config.dataset == "imagefolder" else "parquet"
        origin = config.data_dir
        loaded = _load_dataset(
            origin, builder, data_dir=config.data_dir, streaming=config.streaming, cache_dir=config.cache_dir
        )
    splits = {}
    for name, split in loaded.items():
        if name not in _SPLIT_NAMES:
            continue
        for column, expected in ((config.image_column, "image"), (config.label_column, "label")):
            if column != expected:
                if split.column_names is not None and column not in split.column_names:
                    raise VipriorsError(
                        f"{origin} has no column '{column}' (it has: {', '.join(split.column_names)}): "
                        f"fix --{expected}-column."
                    )
                split = split.rename_column(column, expected)
        splits[_SPLIT_NAMES[name]] = split.cast_column("image", datasets.Image(decode=False))
    if "train" not in splits:
        raise VipriorsError(f"{origin} has no training split (found: {', '.join(loaded) or 'nothing'}).")
    label_feature = (splits["train"].features or {}).get("label")
    if label_feature is None:
        raise VipriorsError(
            f"{origin} has no label column: an image folder needs one subfolder per class (at least two); "
            "other sources name theirs with --label-column."
        )
    if not isinstance(label_feature, datasets.ClassLabel):
        raise VipriorsError(f"The label column of {origin} must be a ClassLabel (class names), got {label_feature}.")
    if config.per_class is not None:
        if config.streaming:
            raise VipriorsError("--per-class selects from a whole split: it cannot be combined with --streaming.")
        train = splits["train"]
        train_idx, val_idx = select_per_class(
            train["label"], config.per_class, _val_per_class(config, config.per_class), config.seed or 0
        )
        splits["train"], splits["val"] = train.select(train_idx), train.select(val_idx)
    return DataSplits(splits=splits, class_names=list(label_feature.names), description=origin)


def load_data(config: DataConfig) -> DataSplits:
    """Select the splits that ``config`` describes.

    Raises:
        VipriorsError: missing data directory, missing or tampered split list, empty selection, ...
    """
    if config.dataset == "vipriors":
        lists = load_split_lists(config.split_lists)
        splits = vipriors_splits(
            lists, config.data_dir, hub_id=config.hub_id or DEFAULT_IMAGENET_HUB_ID, cache_dir=config.cache_dir
        )
        origin = config.data_dir or f"the Hub dataset {config.hub_id or DEFAULT_IMAGENET_HUB_ID}"
        return DataSplits(splits=splits, class_names=lists.class_names, description=f"VIPriors subset of {origin}")
    if config.dataset == "fashion-mnist":
        per_class = config.per_class or 50
        data_dir = config.data_dir or DEFAULT_FASHION_MNIST_DIR
        splits = fashion_mnist_splits(data_dir, per_class, _val_per_class(config, per_class), config.seed or 0)
        names = splits["train"].features["label"].names
        return DataSplits(
            splits=splits,
            class_names=list(names),
            description=f"Fashion-MNIST ({data_dir}), {per_class} training images per class, seed {config.seed or 0}",
        )
    if config.dataset in ("imagefolder", "parquet", "hub"):
        return _generic_splits(config)
    raise VipriorsError(f"Unknown dataset '{config.dataset}'; choose one of {', '.join(DATASETS)}.")


def describe(data: DataSplits) -> dict[str, object]:
    """Count every split's readable and unreadable images (decoding each once) and fingerprint it.

    Returns ``{"description", "classes", "splits": {name: {"images", "skipped", "sha256"}}, "skipped"}``;
    ``sha256`` hashes the ordered image contents and labels, so equal selections have equal hashes.
    """
    report: dict[str, object] = {"description": data.description, "classes": len(data.class_names), "splits": {}}
    total_skipped = 0
    for name, split in data.splits.items():
        digest, images, skipped = hashlib.sha256(), 0, 0
        for example in split:
            try:
                decode_rgb(example["image"])
            except UnreadableImageError:
                skipped += 1
                continue
            images += 1
            raw = example["image"].get("bytes") or Path(example["image"]["path"]).read_bytes()
            digest.update(hashlib.sha256(raw).digest() + int(example["label"]).to_bytes(4, "little"))
        report["splits"][name] = {"images": images, "skipped": skipped, "sha256": digest.hexdigest()}
        total_skipped += skipped
    report["skipped"] = total_skipped
    return report
