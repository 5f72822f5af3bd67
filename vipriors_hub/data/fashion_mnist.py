"""Fashion-MNIST as a real data-deficient benchmark: K training images per class, the full test set.

The four IDX files are read from a folder (Debian's ``dataset-fashion-mnist`` installs them in
``/usr/share/datasets/fashion-mnist``). Images are real 28x28 grayscale product photos; they
are stored as PNG bytes in the ``datasets`` Image schema, like every other source.
"""

import gzip
import io
import struct
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from ..errors import VipriorsError
from .settings import DEFAULT_FASHION_MNIST_DIR

__all__ = ["FASHION_MNIST_CLASSES", "DEFAULT_FASHION_MNIST_DIR", "read_idx", "select_per_class", "fashion_mnist_splits"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _open_idx(folder: Path, name: str) -> bytes:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            opener = gzip.open if candidate.suffix == ".gz" else open
            with opener(candidate, "rb") as handle:
                return handle.read()
    raise VipriorsError(
        f"Fashion-MNIST file {name}(.gz) not found in {folder}. Install Debian's dataset-fashion-mnist "
        f"(files in {DEFAULT_FASHION_MNIST_DIR}) or point --data-dir at a folder with the four IDX files."
    )


def read_idx(data: bytes) -> np.ndarray:
    """Parse an IDX file (unsigned bytes): images ``(N, 28, 28)`` or labels ``(N,)``, dtype uint8."""
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise VipriorsError("Not an unsigned-byte IDX file (bad magic number).")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def select_per_class(
    labels: np.ndarray, per_class: int, val_per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``per_class`` indices of each class with ``seed``; the last ``val_per_class`` of each
    class are held out. Returns ``(train_indices, val_indices)``, each sorted."""
    if not 0 <= val_per_class < per_class:
        raise VipriorsError(f"The held-out part ({val_per_class}) must be smaller than --per-class ({per_class}).")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < per_class:
            raise VipriorsError(f"Class {label} has {len(members)} images, fewer than --per-class {per_class}.")
        chosen = rng.permutation(members)[:per_class]
        train.append(chosen[: per_class - val_per_class])
        val.append(chosen[per_class - val_per_class :])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _to_dataset(images: np.ndarray, labels: np.ndarray, indices: np.ndarray, prefix: str) -> datasets.Dataset:
    def png(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array, mode="L").save(buffer, format="PNG")
        return buffer.getvalue()

    features = datasets.Features(
        {
            "image": datasets.Image(decode=False),
            "label": datasets.ClassLabel(names=list(FASHION_MNIST_CLASSES)),
            "id": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_dict(
        {
            "image": [{"bytes": png(images[i]), "path": None} for i in indices],
            "label": [int(labels[i]) for i in indices],
            "id": [f"{prefix}_{i}" for i in indices],
        },
        features=features,
    )


def fashion_mnist_splits(
    data_dir: str | Path, per_class: int, val_per_class: int, seed: int
) -> dict[str, datasets.Dataset]:
    """The data-deficient Fashion-MNIST splits.

    Returns ``{"train", "val", "test"}``: ``per_class - val_per_class`` and ``val_per_class`` images
    of each class drawn from the official training set with ``seed``, and the full 10k test set.
    """
    folder = Path(data_dir)
    arrays = {
        split: (read_idx(_open_idx(folder, images)), read_idx(_open_idx(folder, labels)))
        for split, (images, labels) in _FILES.items()
    }
    train_images, train_labels = arrays["train"]
    test_images, test_labels = arrays["test"]
    train_idx, val_idx = select_per_class(train_labels, per_class, val_per_class, seed)
    return {
        "train": _to_dataset(train_images, train_labels, train_idx, "train"),
        "val": _to_dataset(train_images, train_labels, val_idx, "train"),
        "test": _to_dataset(test_images, test_labels, np.arange(len(test_labels)), "test"),
    }
