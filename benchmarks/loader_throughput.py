"""The data path's CPU cost per image, PIL pipeline against the cached device pipeline.

Writes ``--images`` JPEGs of 500x375 px (ImageNet's typical size; quality 90 with film-grain noise,
so that they weigh and decode like photographs, ~90 KB) made from the shipped Fashion-MNIST photos,
into an image folder, decodes them into the decoded cache (its build rate with ``--workers`` decoding
processes) and then, in this process (CPU seconds, ``time.process_time``: every thread counted),
makes the training batches of

* the teacher: MoCo v2's two views at 224 px;
* the student: 448 px, RandomResizedCrop, flip, AutoAugment ``original``;

with the PIL pipeline (decode, augment, collate: all of it on the CPU) and with the device pipeline,
split into its feed (what the CPU must still do per batch: gather the cached pixels, draw the
parameters) and its pixel work (which runs on the GPU in training; here on CPU tensors).

    python benchmarks/loader_throughput.py --json-out benchmarks/results/loader_throughput-cpu-DATE.json
"""

import argparse
import io
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from vipriors_hub.data import DataConfig, load_data, moco_v2_views, student_views
from vipriors_hub.data.cached_stream import CachedExampleStream
from vipriors_hub.data.decoded_cache import open_decoded
from vipriors_hub.data.fashion_mnist import FASHION_MNIST_CLASSES, _open_idx, read_idx
from vipriors_hub.data.stream import ExampleStream

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


def cpu_seconds_per_1000(make_batch: Callable[[int], Any], batches: int, batch_size: int, rounds: int) -> float:
    """Median over ``rounds`` of the CPU seconds per 1,000 images of ``make_batch(number)`` for ``batches`` batches."""
    results = []
    for _ in range(rounds):
        start = time.process_time()
        for number in range(batches):
            make_batch(number)
        results.append(1000 * (time.process_time() - start) / (batches * batch_size))
    return statistics.median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4, help="batches timed per round and pipeline")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decoding processes of the cache")
    parser.add_argument("--json-out", help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    phases = {
        "teacher": moco_v2_views(224, DATA_CONFIG),
        "student": student_views(448, DATA_CONFIG, "original", 0.0),
    }
    report: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "images": args.images,
        "batch_size": args.batch_size,
        "timed_images": args.batches * args.batch_size,
        "torch_threads": 1,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sizes = write_jpeg_folder(args.images, root)
        report["mean_jpeg_kb"] = statistics.mean(sizes) / 1024
        split = load_data(DataConfig(dataset="imagefolder", data_dir=str(root), cache_dir=str(root / "c"))).splits[
            "train"
        ]
        start = time.perf_counter()
        decoded = open_decoded(split, cache_dir=str(root / "c"), workers=args.workers)
        report["cache_build_images_per_second"] = len(decoded) / (time.perf_counter() - start)
        report["cache_build_workers"] = args.workers
        print(
            f"{len(decoded)} JPEGs (mean {report['mean_jpeg_kb']:.0f} KB) decoded into the cache at "
            f"{report['cache_build_images_per_second']:.0f} img/s with {args.workers} processes"
        )
        options = dict(shuffle=True, seed=0, batch_size=args.batch_size)
        for name, views in phases.items():
            pil = ExampleStream(split, views.pil, **options)
            cached = CachedExampleStream(decoded, views.batched, **options)
            host_batches = [cached.make_batch(0, number, True)[0] for number in range(args.batches)]
            figures = {
                "pil_cpu_seconds_per_1000": cpu_seconds_per_1000(
                    lambda number, stream=pil: stream.make_batch(0, number, True),
                    args.batches,
                    args.batch_size,
                    args.rounds,
                ),
                "device_feed_cpu_seconds_per_1000": cpu_seconds_per_1000(
                    lambda number, stream=cached: stream.make_batch(0, number, True),
                    args.batches,
                    args.batch_size,
                    args.rounds,
                ),
                "device_pixels_cpu_seconds_per_1000": cpu_seconds_per_1000(
                    lambda number, stream=cached, batches=host_batches: stream.finish(batches[number]),
                    args.batches,
                    args.batch_size,
                    args.rounds,
                ),
            }
            figures["feed_reduction"] = (
                figures["pil_cpu_seconds_per_1000"] / figures["device_feed_cpu_seconds_per_1000"]
            )
            report[name] = figures
            print(
                f"{name:<8} PIL {figures['pil_cpu_seconds_per_1000']:7.2f} CPU-s per 1,000 images | device feed "
                f"{figures['device_feed_cpu_seconds_per_1000']:6.3f} ({figures['feed_reduction']:.0f}x less) + "
                "pixel work on CPU tensors "
                f"{figures['device_pixels_cpu_seconds_per_1000']:7.2f}"
            )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
