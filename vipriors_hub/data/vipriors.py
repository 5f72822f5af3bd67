"""Select the VIPriors ImageNet subset (train / val / test) from ImageNet, streamed or local.

Train and val come from ImageNet train, test from ImageNet val, as the official lists say. Files
are matched on their ImageNet stem (``n01440764_2823``, ``ILSVRC2012_val_00000001``) so that the
folders and suffixes of different dataset revisions do not matter, and on path and raw bytes
before any image is decoded. The class index of an image is the position of its wnid among the
1000 sorted wnids.

Three kinds of source hold ImageNet:

* the Hub (default ``ILSVRC/imagenet-1k``, gated: log in with ``hf auth login`` or set
  ``HF_TOKEN``), streamed with ``datasets`` so that only the selected images are kept;
* a local folder of parquet shards in the Hub's layout (a snapshot of that repository);
* a local folder of image files: an ImageNet tree (``train/``, ``val/``) or a folder laid out by the
  challenge toolkit (``imagenet_50/train|val|test``, test images renamed ``img_{i}.JPEG``).

The selected images of a streamed source are written once into the ``datasets`` cache, so later
epochs and runs read 50k images from disk instead of streaming ImageNet again.
"""

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import datasets

from ..errors import VipriorsError
from .settings import DEFAULT_IMAGENET_HUB_ID
from .split_lists import SplitEntry, VipriorsSplitLists, image_stem

__all__ = ["DEFAULT_IMAGENET_HUB_ID", "vipriors_splits"]

logger = logging.getLogger(__name__)

_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
_TOOLKIT_TEST = re.compile(r"^img_(\d+)$")
# VIPriors split -> ImageNet split it is drawn from, as named by the Hub dataset.
_IMAGENET_SPLIT = {"train": "train", "val": "train", "test": "validation"}


def features(class_names: list[str]) -> datasets.Features:
    """The common schema: raw image, class index and the image's ImageNet stem as id."""
    return datasets.Features(
        {
            "image": datasets.Image(decode=False),
            "label": datasets.ClassLabel(names=class_names),
            "id": datasets.Value("string"),
        }
    )


def _report_coverage(split: str, found: int, expected: int, origin: str) -> None:
    if found == 0:
        raise VipriorsError(
            f"0 of {expected} files of the VIPriors {split} split found in {origin}. Check --data-dir: it must hold "
            "ImageNet (train/ and val/ folders, parquet shards) or a folder laid out by the VIPriors toolkit."
        )
    if found < expected:
        logger.warning("%d of %d files of the VIPriors %s split found in %s.", found, expected, split, origin)


def _index_image_files(root: Path) -> dict[str, str]:
    """Map each ImageNet stem (or ``img_{i}`` of the toolkit's test folder) under ``root`` to its path."""
    index: dict[str, str] = {}
    for folder, _, files in os.walk(root):
        for name in files:
            stem, suffix = os.path.splitext(name)
            if suffix.lower() not in _IMAGE_SUFFIXES:
                continue
            key = image_stem(name) or (stem if _TOOLKIT_TEST.match(stem) else None)
            if key is not None:
                index[key] = os.path.join(folder, name)
    return index


def _local_files_split(
    split: str, entries: tuple[SplitEntry, ...], index: dict[str, str], class_names: list[str], root: Path
) -> datasets.Dataset:
    label_of = {wnid: i for i, wnid in enumerate(class_names)}
    rows: dict[str, list] = {"image": [], "label": [], "id": []}
    for position, entry in enumerate(entries):
        path = index.get(entry.stem) or (index.get(f"img_{position}") if split == "test" else None)
        if path is not None:
            rows["image"].append({"bytes": None, "path": path})
            rows["label"].append(label_of[entry.wnid])
            rows["id"].append(entry.stem)
    _report_coverage(split, len(rows["id"]), len(entries), str(root))
    return datasets.Dataset.from_dict(rows, features=features(class_names))


def _selected_examples(
    source: str, data_files: str | None, imagenet_split: str, wanted: dict[str, int], token: str | bool | None
) -> Iterator[dict]:
    """Stream ImageNet ``imagenet_split`` and yield the wanted images, raw, labelled from the list."""
    if data_files is None:
        stream = datasets.load_dataset(source, split=imagenet_split, streaming=True, token=token)
    else:
        stream = datasets.load_dataset("parquet", data_dir=data_files, split=imagenet_split, streaming=True)
    stream = stream.cast_column("image", datasets.Image(decode=False))
    for example in stream:
        stem = image_stem(example["image"].get("path") or "")
        if stem in wanted:
            yield {"image": {"bytes": example["image"]["bytes"], "path": None}, "label": wanted[stem], "id": stem}


def _streamed_split(
    split: str,
    entries: tuple[SplitEntry, ...],
    class_names: list[str],
    source: str,
    data_files: str | None,
    token: str | bool | None,
    cache_dir: str | None,
) -> datasets.Dataset:
    label_of = {wnid: i for i, wnid in enumerate(class_names)}
    wanted = {entry.stem: label_of[entry.wnid] for entry in entries}
    origin = data_files or f"the Hub dataset {source}"
    try:
        dataset = datasets.Dataset.from_generator(
            _selected_examples,
            features=features(class_names),
            gen_kwargs={
                "source": source,
                "data_files": data_files,
                "imagenet_split": _IMAGENET_SPLIT[split],
                "wanted": wanted,
                "token": token,
            },
            split=datasets.Split(split),
            cache_dir=cache_dir,
        )
    except (datasets.exceptions.DatasetNotFoundError, FileNotFoundError, ConnectionError) as error:
        raise VipriorsError(
            f"ImageNet could not be read from {origin} ({error}). For the Hub: accept the dataset's terms and log in "
            "(hf auth login or HF_TOKEN); offline: pass --data-dir with a local ImageNet."
        ) from error
    _report_coverage(split, len(dataset), len(entries), origin)
    order = {entry.stem: i for i, entry in enumerate(entries)}
    positions = [order[stem] for stem in dataset["id"]]
    return dataset.select(sorted(range(len(positions)), key=positions.__getitem__))


def vipriors_splits(
    lists: VipriorsSplitLists,
    data_dir: str | None,
    hub_id: str = DEFAULT_IMAGENET_HUB_ID,
    token: str | bool | None = None,
    cache_dir: str | None = None,
) -> dict[str, datasets.Dataset]:
    """The VIPriors train / val / test splits, each in the order of its official list.

    Args:
        lists: the official split lists.
        data_dir: a local ImageNet (image files or parquet shards) or toolkit folder; ``None`` streams
            ``hub_id`` from the Hub.
        hub_id: the Hub dataset holding ImageNet-1k.
        token: Hub token (``None``: the standard login / ``HF_TOKEN``).
        cache_dir: where the selected images of a streamed source are kept (default: the datasets cache).

    Raises:
        VipriorsError: the source is missing or holds none of a split's files.
    """
    class_names = lists.class_names
    if data_dir is not None:
        root = Path(data_dir)
        if not root.is_dir():
            raise VipriorsError(f"Data directory {root} does not exist.")
        if next(root.rglob("*.parquet"), None) is not None:
            return {
                split: _streamed_split(split, lists.split(split), class_names, hub_id, str(root), token, cache_dir)
                for split in ("train", "val", "test")
            }
        index = _index_image_files(root)
        return {
            split: _local_files_split(split, lists.split(split), index, class_names, root)
            for split in ("train", "val", "test")
        }
    return {
        split: _streamed_split(split, lists.split(split), class_names, hub_id, None, token, cache_dir)
        for split in ("train", "val", "test")
    }
