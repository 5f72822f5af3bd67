"""Does the device pipeline keep a GPU fed? End-to-end training throughput against the step alone.

On a folder of ``--images`` ImageNet-size JPEGs (500x375, ``loader_throughput.write_jpeg_folder``),
with the decoded cache built first, for ResNet-50 in bf16, compiled, batch 256, ``--workers`` loader
workers:

1. the synthetic-batch step rate of each phase (``gpu_check.py``: teacher at 224 px, student at 448 px,
   in their own processes, as gpu_check runs them);
2. ``train-teacher --dry-run`` of a short teacher run (its predicted seconds), then that run itself
   (``--data-pipeline device``): its end-to-end img/s (the logged windows after the first, which holds
   the compilation) and its measured training seconds;
3. a short ``train-student`` at 448 px distilling from that teacher: its end-to-end img/s.

The JSON (rewritten after every stage, so a run cut short keeps what it did):
``{"device", "teacher": {"end_to_end_images_per_second", "synthetic_images_per_second", "workers"},
"student": {...}, "estimate": {"predicted_seconds", "measured_seconds"}}``.

    python benchmarks/feed_check.py --json-out feed_check.json     # on the GPU machine
    python benchmarks/feed_check.py --dry-run --json-out dry.json  # tiny model, 32 px, on CPU
"""

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from loader_throughput import write_jpeg_folder

from vipriors_hub.data import DataConfig
from vipriors_hub.train.metrics import read_metrics
from vipriors_hub.train.result import read_fit_result
from vipriors_hub.train.student import StudentConfig, train_student
from vipriors_hub.train.teacher import TeacherConfig, train_teacher

BENCHMARKS = Path(__file__).resolve().parent


def device_name() -> str:
    """The GPU's name, or ``cpu``."""
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def synthetic_rate(phase: str, args: argparse.Namespace, resolution: int, folder: Path) -> float:
    """``gpu_check.py``'s img/s of ``phase`` on synthetic batches (bf16, compiled, in its own process)."""
    out = folder / f"gpu_check_{phase}.json"
    command = [sys.executable, str(BENCHMARKS / "gpu_check.py"), "--phases", phase, "--json-out", str(out)]
    command += ["--dry-run"] if args.dry_run else ["--precisions", "bf16", "--modes", "compile"]
    command += ["--resolution", str(resolution), "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    subprocess.run(command, check=True)
    report = json.loads(out.read_text())
    precision = "fp32" if args.dry_run else "bf16"
    return float(report[phase][precision]["images_per_second"])


def logged_rate(output: Path) -> float:
    """Median logged img/s of a run's windows after the first (compilation, worker start-up)."""
    records = read_metrics(output / "metrics.jsonl")
    windows = [record["images_per_second"] for record in records if "images_per_second" in record]
    return statistics.median(windows[1:] if len(windows) > 1 else windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5120)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps of each short run")
    parser.add_argument("--output", default="/tmp/feed_check", help="folder of the images and runs")
    parser.add_argument("--json-out", required=True)
    parser.add_argument("--dry-run", action="store_true", help="tiny model, 32 px, 96 images, on CPU")
    args = parser.parse_args()
    if args.dry_run:
        args.images, args.batch_size, args.steps, args.workers = 96, 16, 4, 2
    architecture = "vipriors_resnet_tiny" if args.dry_run else "vipriors_resnet50"
    sizes = (32, 32) if args.dry_run else (224, 448)
    precision = "no" if args.dry_run else "bf16"
    root = Path(args.output)
    root.mkdir(parents=True, exist_ok=True)
    report: dict = {"device": device_name(), "images": args.images, "batch_size": args.batch_size}
    report["settings"] = {
        "architecture": architecture,
        "resolutions": sizes,
        "precision": precision,
        "compile": not args.dry_run,
    }

    def save() -> None:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")

    with tempfile.TemporaryDirectory(dir=root) as folder:
        folder = Path(folder)
        write_jpeg_folder(args.images, folder / "jpegs")
        data = DataConfig(
            dataset="imagefolder",
            data_dir=str(folder / "jpegs"),
            cache_dir=str(folder / "cache"),
            data_pipeline="device",
        )
        common = dict(
            architecture=architecture,
            batch_size=args.batch_size,
            num_workers=args.workers,
            mixed_precision=precision,
            torch_compile=not args.dry_run,
            gradient_accumulation_steps=1,
            max_steps=args.steps,
            epochs=1000,
            log_every=max(1, args.steps // 8),
            report_to="none",
        )
        teacher = TeacherConfig(output=str(folder / "teacher"), resolution=sizes[0], **common)
        started = time.perf_counter()
        estimate = train_teacher(dataclasses.replace(teacher, dry_run=True), data)
        report["cache_and_dry_run_seconds"] = time.perf_counter() - started
        report["estimate"] = {"predicted_seconds": estimate.predicted_seconds, "bound_by": estimate.bound_by}
        save()
        train_teacher(teacher, data)
        measured = read_fit_result(folder / "teacher")
        report["estimate"]["measured_seconds"] = measured.train_seconds
        report["teacher"] = {"end_to_end_images_per_second": logged_rate(folder / "teacher"), "workers": args.workers}
        save()
        student = StudentConfig(
            output=str(folder / "student"), resolution=sizes[1], teacher=str(folder / "teacher" / "final"), **common
        )
        train_student(student, data)
        report["student"] = {"end_to_end_images_per_second": logged_rate(folder / "student"), "workers": args.workers}
        save()
        for phase, resolution in zip(("teacher", "student"), sizes, strict=True):
            rate = synthetic_rate(phase, args, resolution, folder)
            report[phase]["synthetic_images_per_second"] = rate
            report[phase]["fraction_of_synthetic"] = report[phase]["end_to_end_images_per_second"] / rate
            save()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
