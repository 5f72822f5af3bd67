"""Build the demo's package data from the Fashion-MNIST IDX files (run it, never edit its output by hand).

Writes ``vipriors_hub/demo_data/``: a training file with 50 images per class drawn with seed 0
from the official training set (IDX format, gzip), the full official 10k test set, and the
dataset's MIT notice. The demo reads it with ``--dataset fashion-mnist --per-class 50 --seed 0``.

    python scripts/build_demo_data.py --source /usr/share/datasets/fashion-mnist
"""

import argparse
import gzip
import shutil
import struct
from pathlib import Path

import numpy as np

from vipriors_hub.data.fashion_mnist import _open_idx, read_idx

PER_CLASS = 50
SEED = 0


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an unsigned-byte IDX file, gzip-compressed with a fixed timestamp (reproducible bytes)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="/usr/share/datasets/fashion-mnist", help="folder with the IDX files")
    parser.add_argument("--output", default=str(Path(__file__).parents[1] / "vipriors_hub" / "demo_data"))
    args = parser.parse_args()
    source, output = Path(args.source), Path(args.output)
    images = read_idx(_open_idx(source, "train-images-idx3-ubyte"))
    labels = read_idx(_open_idx(source, "train-labels-idx1-ubyte"))
    rng = np.random.default_rng(SEED)
    chosen = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:PER_CLASS] for c in range(10)]))
    output.mkdir(parents=True, exist_ok=True)
    write_idx(output / "train-images-idx3-ubyte.gz", images[chosen])
    write_idx(output / "train-labels-idx1-ubyte.gz", labels[chosen])
    write_idx(output / "t10k-images-idx3-ubyte.gz", read_idx(_open_idx(source, "t10k-images-idx3-ubyte")))
    write_idx(output / "t10k-labels-idx1-ubyte.gz", read_idx(_open_idx(source, "t10k-labels-idx1-ubyte")))
    notice = output / "COPYRIGHT"
    shutil.copyfile(source / "COPYRIGHT", notice)
    notice.chmod(0o644)
    print(f"wrote {len(chosen)} training and {len(read_idx(_open_idx(output, 't10k-labels-idx1-ubyte')))} test images")


if __name__ == "__main__":
    main()
