"""Decode + augment throughput: our datasets-based stream against torchvision's ImageFolder.

All read the same image files (real Fashion-MNIST photos written as PNG into an image folder) and
collate batches of the student's training transform (RandomResizedCrop + flip), with 0 and with 2
DataLoader workers:

* ours, the trainers' path: ``load_data(imagefolder)`` -> ``ExampleStream`` (shuffled, exactly
  resumable) -> ``ResumableLoader``, with our transform (timm's, ToTensor + Normalize fused);
* the reference: ``torchvision.datasets.ImageFolder`` + a shuffled ``DataLoader`` with timm's
  ``create_transform`` as a timm user writes it;
* ImageFolder with our transform, which isolates what the resumable stream itself costs.

They run in alternation, several rounds; the median img/s of each and the ratios are printed.

    python benchmarks/data_throughput.py --data-dir ../shared/data/fashion-mnist --resolution 112
    python benchmarks/data_throughput.py --data-dir ../shared/data/fashion-mnist --resolution 224
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
from timm.data import create_transform

from vipriors_hub.data import DataConfig, ExampleStream, ResumableLoader, load_data, student_train_transform
from vipriors_hub.data.fashion_mnist import FASHION_MNIST_CLASSES, _open_idx, read_idx

DATA_CONFIG = {"interpolation": "bilinear", "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
WORKERS = (0, 2)
REFERENCE = "ImageFolder + timm transform"
SAME_TRANSFORM = "ImageFolder + our transform"


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
    parser.add_argument("--workers", type=int, nargs="+", default=list(WORKERS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streaming", action="store_true", help="our source streamed instead of map-style")
    args = parser.parse_args()
    torch.set_num_threads(1)
    transform = student_train_transform(args.resolution, DATA_CONFIG, auto_augment=None)
    timm_transform = create_transform(
        args.resolution,
        is_training=True,
        hflip=0.5,
        color_jitter=None,
        interpolation=DATA_CONFIG["interpolation"],
        mean=DATA_CONFIG["mean"],
        std=DATA_CONFIG["std"],
    )

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_image_folder(Path(args.data_dir), args.images, root)
        config = DataConfig(
            dataset="imagefolder", data_dir=str(root), streaming=args.streaming, cache_dir=str(root / "cache")
        )
        source = load_data(config).splits["train"]
        folders = {
            name: torchvision.datasets.ImageFolder(str(root / "train"), transform=folder_transform)
            for name, folder_transform in ((REFERENCE, timm_transform), (SAME_TRANSFORM, transform))
        }
        loaders = {}
        for workers in args.workers:
            stream = ExampleStream(source, transform, shuffle=not args.streaming, batch_size=args.batch_size)
            loaders[workers] = {"vipriors_hub stream": ResumableLoader(stream, num_workers=workers)}
            for name, folder in folders.items():
                loaders[workers][name] = torch.utils.data.DataLoader(
                    folder, batch_size=args.batch_size, shuffle=True, num_workers=workers
                )
        results = {(w, name): [] for w, pair in loaders.items() for name in pair}
        for _ in range(args.rounds):
            for workers, pair in loaders.items():
                for name, loader in pair.items():
                    results[workers, name].append(images_per_second(loader))

    kind = "streamed" if args.streaming else "map-style"
    print(f"{args.images} images, {args.resolution} px, batch {args.batch_size}, our source {kind}")
    for workers in loaders:
        medians = {name: statistics.median(results[workers, name]) for name in loaders[workers]}
        print(f"workers {workers}: " + ", ".join(f"{name} {value:.1f} img/s" for name, value in medians.items()))
        ratio = medians["vipriors_hub stream"] / medians[REFERENCE]
        same = medians["vipriors_hub stream"] / medians[SAME_TRANSFORM]
        print(f"  ratio stream / ImageFolder: {ratio:.2f} (median of {args.rounds}); our transform on both: {same:.2f}")


if __name__ == "__main__":
    main()
