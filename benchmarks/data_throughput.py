"""Decode + augment throughput: our datasets-based stream against torchvision's ImageFolder.

Both read the same image files (real Fashion-MNIST photos written as PNG into an image folder),
apply the same timm training transform and collate batches; the two are run in alternation,
several rounds, and the median img/s of each is printed.

    python benchmarks/data_throughput.py --data-dir ../shared/data/fashion-mnist --images 2000
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import torch
import torchvision
from PIL import Image

from vipriors_hub.data import DataConfig, ExampleStream, ResumableLoader, load_data, student_train_transform
from vipriors_hub.data.fashion_mnist import FASHION_MNIST_CLASSES, _open_idx, read_idx

DATA_CONFIG = {"interpolation": "bilinear", "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def write_image_folder(data_dir: Path, images: int, root: Path) -> None:
    """Write the first ``images`` Fashion-MNIST training photos as PNG files, one folder per class."""
    pixels = read_idx(_open_idx(data_dir, "train-images-idx3-ubyte"))
    labels = read_idx(_open_idx(data_dir, "train-labels-idx1-ubyte"))
    for index in range(images):
        folder = root / "train" / FASHION_MNIST_CLASSES[labels[index]].replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[index], mode="L").save(folder / f"{index}.png")


def images_per_second(batches: Iterable) -> float:
    start, count = time.perf_counter(), 0
    for images, _ in batches:
        count += len(images)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--resolution", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    transform = student_train_transform(args.resolution, DATA_CONFIG, auto_augment=None)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_image_folder(Path(args.data_dir), args.images, root)
        config = DataConfig(dataset="imagefolder", data_dir=str(root), streaming=True, cache_dir=str(root / "cache"))
        source = load_data(config).splits["train"]
        ours = ResumableLoader(
            ExampleStream(source, transform, shuffle=False, batch_size=args.batch_size), num_workers=args.workers
        )
        folder = torchvision.datasets.ImageFolder(str(root / "train"), transform=transform)
        reference = torch.utils.data.DataLoader(folder, batch_size=args.batch_size, num_workers=args.workers)

        results: dict[str, list[float]] = {"vipriors_hub stream": [], "torchvision ImageFolder": []}
        for _ in range(args.rounds):
            results["vipriors_hub stream"].append(images_per_second(ours))
            results["torchvision ImageFolder"].append(images_per_second(reference))

    print(f"{args.images} images, {args.resolution} px, batch {args.batch_size}, workers {args.workers}")
    for name, values in results.items():
        print(f"{name:<26} {statistics.median(values):8.1f} img/s (median of {args.rounds})")
    ratio = statistics.median(results["vipriors_hub stream"]) / statistics.median(results["torchvision ImageFolder"])
    print(f"ratio stream / ImageFolder: {ratio:.2f}")


if __name__ == "__main__":
    main()
