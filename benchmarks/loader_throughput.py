"""Loader throughput on full-size JPEGs: images/s per CPU core of each phase's training data path,
and how many cores keep a GPU fed.

Writes ``--images`` JPEGs of 500x375 px (ImageNet's typical size; quality 90 with film-grain noise,
so that they weigh and decode like photographs, ~100 KB) made from the shipped Fashion-MNIST photos,
into an image folder, then runs the trainers' own data path (``load_data(imagefolder)`` ->
``ExampleStream`` -> ``ResumableLoader``) with

* the teacher's two-view MoCo v2 transform at 224 px (one image = two views), and
* the student's transform at 448 px (RandomResizedCrop, flip, AutoAugment ``original``),

first in the main process on one thread (the cost per core), then with ``--workers`` DataLoader
workers. The cores needed for a GPU rate are that rate over the per-core rate.

    python benchmarks/loader_throughput.py                              # all cores but two as workers
    python benchmarks/loader_throughput.py --workers 14 --gpu-teacher 2568 --gpu-student 2033
"""

import argparse
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vipriors_hub.data import (
    DataConfig,
    ExampleStream,
    ResumableLoader,
    load_data,
    moco_v2_transform,
    student_train_transform,
)
from vipriors_hub.data.fashion_mnist import FASHION_MNIST_CLASSES, _open_idx, read_idx
from vipriors_hub.data.images import decode_rgb

DATA_CONFIG = {"interpolation": "bilinear", "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
SHIPPED = Path(__file__).resolve().parents[1] / "vipriors_hub" / "demo_data"


def write_jpeg_folder(images: int, root: Path, size: tuple[int, int] = (500, 375)) -> list[int]:
    """Write ``images`` photo-like JPEGs (one folder per class); return their sizes in bytes."""
    pixels = read_idx(_open_idx(SHIPPED, "train-images-idx3-ubyte"))
    labels = read_idx(_open_idx(SHIPPED, "train-labels-idx1-ubyte"))
    rng = np.random.default_rng(0)
    sizes = []
    for index in range(images):
        folder = root / "train" / FASHION_MNIST_CLASSES[labels[index % len(labels)]].replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        base = Image.fromarray(pixels[index % len(pixels)], mode="L").resize(size, Image.BICUBIC).convert("RGB")
        tint = rng.uniform(0.6, 1.0, size=3)
        grain = rng.normal(0.0, 18.0, size=(size[1], size[0], 3))
        photo = np.clip(np.asarray(base, dtype=np.float64) * tint + 40 * tint[::-1] + grain, 0, 255)
        buffer = io.BytesIO()
        Image.fromarray(photo.astype(np.uint8)).save(buffer, "JPEG", quality=90)
        (folder / f"{index}.jpg").write_bytes(buffer.getvalue())
        sizes.append(len(buffer.getvalue()))
    return sizes


def images_per_second(loader: ResumableLoader, batches: int) -> float:
    """Images (not views) per second over ``batches`` batches of one epoch."""
    start, count = time.perf_counter(), 0
    for index, (_, labels) in enumerate(loader):
        count += len(labels)
        if index + 1 == batches:
            break
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gpu-teacher", type=float, default=2568.0, help="teacher step img/s to feed")
    parser.add_argument("--gpu-student", type=float, default=2033.0, help="student step img/s to feed")
    parser.add_argument("--json-out", help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipelines = {
        "teacher (2 views, 224 px)": (moco_v2_transform(224, DATA_CONFIG), args.gpu_teacher),
        "student (448 px, AutoAugment)": (student_train_transform(448, DATA_CONFIG, "original"), args.gpu_student),
    }
    report: dict = {"cpu_count": os.cpu_count(), "workers": args.workers, "pipelines": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sizes = write_jpeg_folder(args.images, root)
        files = sorted(root.rglob("*.jpg"))
        start = time.perf_counter()
        for path in files:
            decode_rgb({"path": str(path), "bytes": None})
        decode_ms = 1000 * (time.perf_counter() - start) / len(files)
        report.update(mean_jpeg_kb=statistics.mean(sizes) / 1024, decode_ms=decode_ms)
        print(f"{len(files)} JPEGs of 500x375, mean {report['mean_jpeg_kb']:.0f} KB, decode {decode_ms:.2f} ms each")
        source = load_data(DataConfig(dataset="imagefolder", data_dir=str(root), cache_dir=str(root / "c")))
        batches = args.images // args.batch_size
        for name, (transform, gpu_rate) in pipelines.items():
            stream = ExampleStream(source.splits["train"], transform, shuffle=True, batch_size=args.batch_size)
            one_core = [images_per_second(ResumableLoader(stream), max(2, batches // 4)) for _ in range(args.rounds)]
            many = [
                images_per_second(ResumableLoader(stream, num_workers=args.workers), batches)
                for _ in range(args.rounds)
            ]
            per_core, parallel = statistics.median(one_core), statistics.median(many)
            cores = gpu_rate / per_core
            report["pipelines"][name] = {
                "per_core_images_per_second": per_core,
                "workers_images_per_second": parallel,
                "gpu_images_per_second": gpu_rate,
                "cores_needed": cores,
            }
            print(
                f"{name:<32} {per_core:7.1f} img/s per core, {parallel:8.1f} img/s with {args.workers} workers; "
                f"{gpu_rate:.0f} img/s on the GPU needs {cores:5.1f} cores"
            )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
