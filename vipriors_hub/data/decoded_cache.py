"""The decoded cache: every image of a map-style split decoded once into uint8 pixels.

Data-deficient training reads the same few thousand images hundreds of times (800 teacher epochs),
so decoding each JPEG once pays for itself in the first epochs. The cache is one folder in the
``datasets`` cache (``--cache-dir``; default ``HF_DATASETS_CACHE``), named by the split's content and
the size cap, holding:

* ``pixels.bin``: every readable image as ``height x width x 3`` uint8, one after the other, at most
  ``max_side`` px on its longer side (larger images are shrunk with PIL's antialiased bilinear filter);
* ``index.npy``: per cached image its byte offset, height, width and row in the split; ``labels.npy``;
* ``manifest.json`` (written last): the key, the counts, the byte size and CRC-32 of ``pixels.bin``.

The folder is built under a temporary name and renamed into place, so a reader finds a complete
cache or none; a cache whose manifest, sizes or checksum disagree is rebuilt, never used. The file is
memory-mapped read-only, so every process of a node shares one copy through the page cache, and a
DataLoader worker's work per image is a copy of its pixels (:meth:`DecodedSplit.gather`).
Unreadable images are counted once, when the cache is built, and left out of it.
"""

import hashlib
import json
import logging
import os
import shutil
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..errors import VipriorsError
from ..outputs import write_failure
from .images import UnreadableImageError, decode_rgb

__all__ = ["DEFAULT_MAX_SIDE", "DecodedSplit", "cache_folder", "content_key", "open_decoded"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
DEFAULT_MAX_SIDE = 512
"""Longer side of a cached image: ImageNet photos are mostly 500 px or less on their longer side, so
at 512 nearly all are kept whole, which both 224 px and 448 px crops (scale up to 1) need."""
_CHUNK_ROWS = 64
_CHECKSUM_BYTES = 1 << 24


class DamagedCacheError(VipriorsError):
    """A cache folder whose files disagree with its manifest (it is rebuilt)."""


def content_key(split: datasets.Dataset, max_side: int) -> str:
    """A key of ``split``'s content and the cap: the labels, the bytes of every embedded image and the
    path, size and modification time of every image file, in order (hex, 32 characters)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps({"version": FORMAT_VERSION, "max_side": max_side, "rows": len(split)}).encode())
    table = split.select_columns(["image", "label"]).with_format("arrow")
    for start in range(0, len(split), 4096):
        chunk = table[start : start + 4096]
        digest.update(np.asarray(chunk.column("label").to_numpy(), dtype="<i8").tobytes())
        images = chunk.column("image").combine_chunks()
        for data, path in zip(images.field("bytes"), images.field("path"), strict=True):
            if data.is_valid:
                digest.update(data.as_buffer())
            else:
                stat = os.stat(path.as_py())
                digest.update(f"{path.as_py()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def cache_folder(key: str, cache_dir: str | None) -> Path:
    """Where the cache of ``key`` lives: ``CACHE/vipriors_hub/decoded/KEY``."""
    root = Path(cache_dir) if cache_dir else Path(datasets.config.HF_DATASETS_CACHE)
    return root / "vipriors_hub" / "decoded" / key


class DecodedSplit:
    """A split's decoded images, memory-mapped: ``len`` readable images with their ``shapes``
    ``(N, 2)`` (height, width), ``labels`` ``(N,)`` and ``rows`` ``(N,)`` (row in ``source``);
    ``skipped`` images of the split were unreadable. ``source`` is the split itself (kept for its
    other columns, e.g. image ids; not sent to DataLoader workers)."""

    def __init__(self, folder: Path, source: datasets.Dataset | None = None) -> None:
        self.folder = folder
        self.source = source
        manifest = json.loads((folder / "manifest.json").read_text())
        index = np.load(folder / "index.npy")
        self.manifest = manifest
        self.offsets, self.shapes, self.rows = index[:, 0], index[:, 1:3], index[:, 3]
        self.labels = np.load(folder / "labels.npy")
        self.skipped = int(manifest["skipped"])
        self._pixels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "source": None, "_pixels": None}

    @property
    def pixels(self) -> np.ndarray:
        """The flat uint8 pixels of every image, memory-mapped read-only (opened on first use)."""
        if self._pixels is None:
            self._pixels = np.memmap(self.folder / "pixels.bin", dtype=np.uint8, mode="r")
        return self._pixels

    def image(self, index: int) -> np.ndarray:
        """Cached image ``index`` as ``(H, W, 3)`` uint8 (a view of the memory map)."""
        height, width = self.shapes[index]
        start = self.offsets[index]
        return self.pixels[start : start + height * width * 3].reshape(height, width, 3)

    def gather(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The images ``indices`` on one canvas: uint8 ``(B, Hmax + 1, Wmax + 1, 3)``, image ``i`` in
        its top-left ``H_i x W_i`` corner with its last row and column repeated once beyond it (so
        that bilinear sampling at its right and bottom edges clamps as a resize does; the rest of the
        canvas is never read), and the sizes ``(B, 2)`` (height, width), int64. The CPU's whole work
        per image: one copy of its pixels."""
        shapes = self.shapes[indices]
        height, width = shapes.max(axis=0)
        canvas = np.empty((len(indices), height + 1, width + 1, 3), dtype=np.uint8)
        for slot, index in enumerate(indices):
            rows, columns = shapes[slot]
            canvas[slot, :rows, :columns] = self.image(index)
            canvas[slot, rows, :columns] = canvas[slot, rows - 1, :columns]
            canvas[slot, : rows + 1, columns] = canvas[slot, : rows + 1, columns - 1]
        return torch.from_numpy(canvas), torch.from_numpy(shapes.astype(np.int64))

    def verify(self, key: str, checksum: bool) -> None:
        """Refuse a cache whose files disagree with its manifest (and, with ``checksum``, whose pixels
        do not have the recorded CRC-32).

        Raises:
            DamagedCacheError: what disagrees.
        """
        manifest = self.manifest
        if manifest.get("version") != FORMAT_VERSION or manifest.get("key") != key:
            raise DamagedCacheError(f"{self.folder}: its manifest names another cache")
        for name in ("index.npy", "labels.npy"):
            if _sha256(self.folder / name) != manifest.get(name):
                raise DamagedCacheError(f"{self.folder}: {name} differs from the manifest's record of it")
        sizes = self.shapes[:, 0] * self.shapes[:, 1] * 3
        if len(self) and (not np.array_equal(self.offsets, np.cumsum(sizes) - sizes) or (self.shapes <= 0).any()):
            raise DamagedCacheError(f"{self.folder}: its index does not lay the images out one after the other")
        expected = int(sizes.sum()) if len(self) else 0
        size = (self.folder / "pixels.bin").stat().st_size
        if not len(self) == len(self.labels) == manifest["images"]:
            raise DamagedCacheError(f"{self.folder}: its index and labels disagree with its manifest")
        if not size == expected == manifest["bytes"]:
            raise DamagedCacheError(f"{self.folder}: pixels.bin has {size} bytes, {expected} expected")
        if checksum and _crc32(self.folder / "pixels.bin") != manifest["crc32"]:
            raise DamagedCacheError(f"{self.folder}: the pixels' checksum differs from the manifest's")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(_CHECKSUM_BYTES):
            crc = zlib.crc32(block, crc)
    return crc


def capped(image: Image.Image, max_side: int) -> Image.Image:
    """``image`` shrunk (PIL's antialiased bilinear filter) so that its longer side is at most ``max_side``."""
    width, height = image.size
    if max(width, height) <= max_side:
        return image
    scale = max_side / max(width, height)
    return image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BILINEAR)


class _Decoder(torch.utils.data.Dataset):
    """Chunks of rows of a split decoded to ``(row, pixels (H, W, 3) uint8 or None, label)``."""

    def __init__(self, split: datasets.Dataset, max_side: int) -> None:
        self.split, self.max_side = split.select_columns(["image", "label"]), max_side

    def __len__(self) -> int:
        return -(-len(self.split) // _CHUNK_ROWS)

    def __getitem__(self, chunk: int) -> list[tuple[int, torch.Tensor | None, int]]:
        rows = list(range(chunk * _CHUNK_ROWS, min(len(self.split), (chunk + 1) * _CHUNK_ROWS)))
        table = self.split[rows]
        decoded = []
        for row, image, label in zip(rows, table["image"], table["label"], strict=True):
            try:
                pixels = torch.from_numpy(np.asarray(capped(decode_rgb(image), self.max_side), dtype=np.uint8).copy())
            except UnreadableImageError as error:
                logger.debug("Skipping %s", error)
                pixels = None
            decoded.append((row, pixels, int(label)))
        return decoded


def _decoded_rows(split: datasets.Dataset, max_side: int, workers: int) -> Iterator[tuple[int, Any, int]]:
    generator = torch.Generator().manual_seed(0)  # leaves torch's global generator as training seeded it
    loader = DataLoader(_Decoder(split, max_side), batch_size=None, num_workers=workers, generator=generator)
    for chunk in loader:
        yield from chunk


def _build(split: datasets.Dataset, folder: Path, key: str, max_side: int, workers: int) -> None:
    """Decode ``split`` into a temporary folder beside ``folder`` and rename it into place."""
    temporary = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        temporary.mkdir(parents=True)
        index, labels, offset, crc, skipped = [], [], 0, 0, 0
        with open(temporary / "pixels.bin", "wb") as output:
            progress = tqdm(_decoded_rows(split, max_side, workers), total=len(split), desc="decoding once", unit="img")
            for row, pixels, label in progress:
                if pixels is None:
                    skipped += 1
                    continue
                data = pixels.numpy()
                output.write(memoryview(data).cast("B"))
                crc = zlib.crc32(data, crc)
                index.append((offset, data.shape[0], data.shape[1], row))
                labels.append(label)
                offset += data.size
            output.flush()
            os.fsync(output.fileno())
        np.save(temporary / "index.npy", np.asarray(index, dtype=np.int64).reshape(-1, 4))
        np.save(temporary / "labels.npy", np.asarray(labels, dtype=np.int64))
        manifest = {"version": FORMAT_VERSION, "key": key, "images": len(index), "skipped": skipped}
        manifest.update({"bytes": offset, "crc32": crc, "max_side": max_side})
        manifest.update({name: _sha256(temporary / name) for name in ("index.npy", "labels.npy")})
        (temporary / "manifest.json").write_text(json.dumps(manifest))
        try:
            os.rename(temporary, folder)
        except OSError:
            if not (folder / "manifest.json").exists():
                raise
            logger.info("Another process built %s first; using its cache.", folder)
    except (NotADirectoryError, FileExistsError, PermissionError) as error:
        raise VipriorsError(
            f"Could not create the decoded cache in {folder.parent}: {error.strerror or error}; pass --cache-dir a "
            "folder this user may write."
        ) from error
    except OSError as error:
        raise write_failure(
            "the decoded cache", folder.parent, error, "Free space there or pass --cache-dir on a larger disk."
        ) from error
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    if skipped:
        logger.warning("Skipped %d unreadable image(s) (corrupt or truncated) while decoding %s.", skipped, folder)


def open_decoded(
    split: datasets.Dataset,
    max_side: int = DEFAULT_MAX_SIDE,
    cache_dir: str | None = None,
    workers: int = 0,
    build: bool = True,
    checksum: bool = True,
) -> DecodedSplit:
    """The decoded cache of ``split`` at ``max_side``: opened and verified (``checksum``: the pixels'
    CRC-32 too, one read of the file), or built with ``workers`` decoding processes when it is missing
    or damaged (a damaged one is replaced). ``build=False`` refuses instead of building (a process
    that waits for another to build it).

    Raises:
        VipriorsError: the disk refused the cache; ``build=False`` and no complete cache.
    """
    key = content_key(split, max_side)
    folder = cache_folder(key, cache_dir)
    if (folder / "manifest.json").exists():
        try:
            decoded = DecodedSplit(folder, split)
            decoded.verify(key, checksum)
            return decoded
        except (DamagedCacheError, OSError, ValueError, KeyError) as error:
            if not build:
                raise VipriorsError(f"The decoded cache {folder} is damaged ({error}).") from error
            logger.warning("Rebuilding the decoded cache: %s", error)
            shutil.rmtree(folder, ignore_errors=True)
    elif not build:
        raise VipriorsError(f"The decoded cache {folder} is missing: the process that builds it failed.")
    elif folder.exists():  # ours, without its manifest (written last): never complete
        shutil.rmtree(folder, ignore_errors=True)
    _build(split, folder, key, max_side, workers)
    decoded = DecodedSplit(folder, split)
    decoded.verify(key, checksum=False)
    return decoded
