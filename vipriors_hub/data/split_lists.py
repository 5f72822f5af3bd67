"""The official VIPriors split lists: download, verify, cache and parse them safely.

The challenge toolkit publishes the three splits as Python pickles. A pickle can run code when it
is loaded, so we check each file's sha256 against the pinned value first and then parse it with an
unpickler that cannot resolve any global: only lists and strings can come out of it.
"""

import hashlib
import io
import os
import pickle
import re
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub.constants

from ..errors import VipriorsError

__all__ = [
    "SPLIT_LIST_COMMIT",
    "SPLIT_LIST_SHA256",
    "SplitEntry",
    "SplitListError",
    "VipriorsSplitLists",
    "image_stem",
    "load_split_lists",
    "parse_split_list",
]

SPLIT_LIST_COMMIT = "8490d7a40785ca7ce2e04a3de25da0855661868b"
SPLIT_LIST_URL = (
    "https://raw.githubusercontent.com/VIPriors/vipriors-challenges-toolkit/"
    f"{SPLIT_LIST_COMMIT}/image-classification/{{split}}.pickle"
)
SPLIT_LIST_SHA256 = {
    "train": "11160099b3c6ff3a2559e36163481fa1f609ed1109d144eca599c3001f56ca96",
    "val": "adecb5315745c9bb0d900d896f788d902c42948657ffc83d75348792adb3d0a2",
    "test": "fbad400aae66917751dc87f8e901663592c9ba2c67cf5995165c7a4cfef8d15a",
}

_STEM = re.compile(r"(n\d{8}_\d+|ILSVRC2012_val_\d{8})")


class SplitListError(VipriorsError):
    """A split list is missing, does not match its pinned hash, or is not a plain list of strings."""


@dataclass(frozen=True)
class SplitEntry:
    """One image of a VIPriors split: its class (ImageNet wnid) and its file stem.

    ``stem`` is ``nXXXXXXXX_NNNN`` for images of ImageNet train and ``ILSVRC2012_val_XXXXXXXX`` for
    images of ImageNet val (the VIPriors test split), without folders or extension.
    """

    wnid: str
    stem: str


@dataclass(frozen=True)
class VipriorsSplitLists:
    """The three VIPriors splits in the order of the official lists, and the sorted class wnids."""

    train: tuple[SplitEntry, ...]
    val: tuple[SplitEntry, ...]
    test: tuple[SplitEntry, ...]

    @property
    def class_names(self) -> list[str]:
        """The 1000 wnids sorted; a class index is a wnid's position here (as torchvision's ImageFolder)."""
        return sorted({entry.wnid for entry in self.train})

    def split(self, name: str) -> tuple[SplitEntry, ...]:
        """The entries of split ``name`` (``train``, ``val`` or ``test``)."""
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def image_stem(path: str) -> str | None:
    """The ImageNet stem of ``path`` (``n01440764_2823`` or ``ILSVRC2012_val_00000001``), or ``None``.

    Matches whatever folders, prefixes or suffixes a dataset revision adds around the stem.
    """
    match = _STEM.search(os.path.basename(path))
    return match.group(1) if match else None


class _ListsAndStringsUnpickler(pickle.Unpickler):
    """An unpickler that resolves no global, so no callable can be reached and no code runs."""

    def find_class(self, module: str, name: str) -> type:
        raise SplitListError(
            f"The split list refers to '{module}.{name}': a split list may only hold lists and strings. "
            "The file is not an official VIPriors split list; do not use it."
        )


def parse_split_list(data: bytes) -> tuple[SplitEntry, ...]:
    """Parse one VIPriors split pickle (``[[wnid, filename], ...]`` or ``["wnid/filename", ...]``)."""
    try:
        raw = _ListsAndStringsUnpickler(io.BytesIO(data)).load()
    except SplitListError:
        raise
    except Exception as error:
        raise SplitListError(f"The split list could not be parsed as a pickle of lists and strings: {error}") from error
    if not isinstance(raw, list):
        raise SplitListError(f"A split list must be a list, got {type(raw).__name__}.")
    entries = []
    for item in raw:
        if isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item):
            wnid, filename = item
        elif isinstance(item, str) and "/" in item:
            wnid, filename = item.split("/", 1)
        else:
            raise SplitListError(f"Unexpected split list entry {item!r}: expected [wnid, filename] or 'wnid/filename'.")
        stem = image_stem(filename)
        if stem is None:
            raise SplitListError(f"Split list entry {item!r} names no ImageNet file.")
        entries.append(SplitEntry(wnid=wnid, stem=stem))
    return tuple(entries)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def default_cache_dir() -> Path:
    """Where downloaded split lists are kept: under the Hugging Face cache home."""
    return Path(huggingface_hub.constants.HF_HOME) / "vipriors_hub" / "split_lists" / SPLIT_LIST_COMMIT


def _download(split: str, destination: Path) -> bytes:
    url = SPLIT_LIST_URL.format(split=split)
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise SplitListError(
            f"The VIPriors {split} split list is not cached in {destination.parent} and HF_HUB_OFFLINE is set. "
            f"Download it once online, or pass a local copy with --split-lists DIR (files train.pickle, "
            f"val.pickle, test.pickle from {url.rsplit('/', 1)[0]})."
        )
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
    except OSError as error:
        raise SplitListError(
            f"Could not download the VIPriors {split} split list from {url} ({error}). "
            "Check the connection, or pass a local copy with --split-lists DIR."
        ) from error
    _check_hash(split, data, url)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=destination.parent, delete=False) as handle:
        handle.write(data)
    os.replace(handle.name, destination)
    return data


def _check_hash(split: str, data: bytes, origin: object) -> None:
    digest = _sha256(data)
    if digest != SPLIT_LIST_SHA256[split]:
        raise SplitListError(
            f"The VIPriors {split} split list at {origin} has sha256 {digest}, expected "
            f"{SPLIT_LIST_SHA256[split]} (toolkit commit {SPLIT_LIST_COMMIT[:8]}). The file is damaged or not the "
            "official list: delete it and download it again, or point --split-lists at an official copy."
        )


def _read_split(split: str, local_dir: Path | None) -> bytes:
    if local_dir is not None:
        path = Path(local_dir) / f"{split}.pickle"
        if not path.is_file():
            raise SplitListError(f"The VIPriors {split} split list was not found at {path}.")
        data = path.read_bytes()
        _check_hash(split, data, path)
        return data
    cached = default_cache_dir() / f"{split}.pickle"
    if cached.is_file():
        data = cached.read_bytes()
        _check_hash(split, data, cached)
        return data
    return _download(split, cached)


def load_split_lists(local_dir: str | os.PathLike[str] | None = None) -> VipriorsSplitLists:
    """Load the three official VIPriors split lists, verified against their pinned sha256.

    Args:
        local_dir: a folder holding ``train.pickle``, ``val.pickle`` and ``test.pickle``; without it
            the lists are read from the cache under the Hugging Face home, downloaded there first if
            missing (not when ``HF_HUB_OFFLINE`` is set).

    Raises:
        SplitListError: a list is missing, cannot be downloaded, fails its hash or is not a list of strings.
    """
    folder = Path(local_dir) if local_dir is not None else None
    splits = {split: parse_split_list(_read_split(split, folder)) for split in ("train", "val", "test")}
    return VipriorsSplitLists(**splits)
