"""GPU check: the trainers' own teacher and student steps on ResNet-50 at 224 px, batch 256.

For each precision (bf16, fp32) and each execution mode (eager, ``--torchcompile``) it runs the
phase-1 step (``TeacherPhase``: MoCo + margin loss, queue, momentum encoder, shuffle-BN) and the
phase-2 step (``StudentPhase``: student + connectors + frozen teacher + OFD + label-smoothed
cross-entropy), exactly as ``train-teacher`` / ``train-student`` run them (``train_micro_step``),
on a fixed pool of synthetic batches, and reports img/s, peak GPU memory and whether the loss stayed
finite and went down. Each precision runs in its own process (accelerate fixes the precision once
per process); results are written after every measurement, so a run cut short keeps what it did.

    python benchmarks/gpu_check.py --json-out gpu_check.json     # on a CUDA machine
    python benchmarks/gpu_check.py --compile-precisions bf16      # fp32 in eager mode only
    python benchmarks/gpu_check.py --dry-run --json-out dry.json  # tiny model on CPU: checks the script

JSON layout: ``{"device": ..., "teacher": {"bf16": {"images_per_second": N, "mode": "compile", ...,
"modes": {"eager": {...}, "compile": {...}}}, "fp32": {...}}, "student": {...}}``; the top-level
figures of a precision are those of its fastest mode whose loss stayed finite.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch
from accelerate import Accelerator
from common import TrainerStep, random_teacher, student_step, synchronize, teacher_step

PRECISIONS = {"bf16": "bf16", "fp32": "no"}


def synthetic_pool(args: argparse.Namespace, device: torch.device) -> list[torch.Tensor]:
    """A few fixed image batches ``(B, 3, R, R)`` on the device: the steps cycle through them."""
    generator = torch.Generator().manual_seed(0)
    shape = (args.batch_size, 3, args.resolution, args.resolution)
    return [torch.randn(shape, generator=generator).to(device) for _ in range(args.pool)]


def build(phase: str, mode: str, args: argparse.Namespace, accelerator: Accelerator) -> TrainerStep:
    """The trainer's step of ``phase`` with the settings of ``train-teacher`` / ``train-student``."""
    common = dict(
        architecture=args.architecture,
        resolution=args.resolution,
        batch_size=args.batch_size,
        channels_last=True,
        torch_compile=mode == "compile",
    )
    if phase == "teacher":
        return teacher_step(accelerator, queue_size=args.queue_size, lr=0.03 * args.batch_size / 256, **common)
    teacher = random_teacher(args.architecture)
    return student_step(accelerator, args.classes, teacher, lr=0.1 * args.batch_size / 256, **common)


def batches_for(phase: str, pool: list[torch.Tensor], classes: int) -> list:
    """Loader-shaped batches: two noisy views for the teacher, images and labels for the student."""
    generator = torch.Generator().manual_seed(1)
    labels = [torch.randint(0, classes, (len(images),), generator=generator).to(images.device) for images in pool]
    if phase == "teacher":
        return [
            ((images + 0.1 * images.flip(-2), images.flip(-1)), label)
            for images, label in zip(pool, labels, strict=True)
        ]
    return list(zip(pool, labels, strict=True))


def measure(step: TrainerStep, batches: list, steps: int, warmup: int, device: torch.device) -> dict:
    """Warm up (compilation included), then time ``steps`` steps: img/s, peak memory, loss checks."""
    start = time.perf_counter()
    for index in range(warmup):
        step(batches[index % len(batches)])
    synchronize(device)
    warmup_seconds = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses = []
    start = time.perf_counter()
    for index in range(steps):
        losses.append(step(batches[index % len(batches)]))
    synchronize(device)
    elapsed = time.perf_counter() - start
    values = torch.stack(losses).float().cpu()
    window = max(1, steps // 5)
    batch = len(batches[0][1])
    return {
        "images_per_second": steps * batch / elapsed,
        "step_ms": 1000 * elapsed / steps,
        "warmup_seconds": warmup_seconds,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0,
        "loss_first": values[:window].mean().item(),
        "loss_last": values[-window:].mean().item(),
        "loss_finite": bool(torch.isfinite(values).all()),
        "loss_decreasing": bool(values[-window:].mean() < values[:window].mean()),
    }


def one_precision(args: argparse.Namespace) -> None:
    """Both phases in every mode at ``args.precision``, in this process; one JSON line per result."""
    cpu = args.dry_run or not torch.cuda.is_available()
    accelerator = Accelerator(mixed_precision="no" if cpu else PRECISIONS[args.precision], cpu=cpu)
    torch.backends.cuda.matmul.allow_tf32 = (
        True  # fp32 rows: TF32 matrix products (cuDNN's convolutions use TF32 anyway)
    )
    pool = synthetic_pool(args, accelerator.device)
    modes = [mode for mode in args.modes if mode != "compile" or args.precision in args.compile_precisions]
    for phase in args.phases:
        for mode in modes:
            torch.manual_seed(0)
            record = {"phase": phase, "precision": args.precision, "mode": mode}
            try:
                step = build(phase, mode, args, accelerator)
                batches = batches_for(phase, pool, args.classes)
                record.update(measure(step, batches, args.steps, args.warmup, accelerator.device))
                del step, batches
            except Exception as error:  # a mode that fails is reported, the others still run
                record["error"] = "".join(traceback.format_exception_only(error)).strip()[-2000:]
            print(json.dumps(record), flush=True)
            accelerator.free_memory()  # drop the references prepare() keeps, before the next measurement


def summarise(records: list[dict], device: str) -> dict:
    """The committed layout: per phase and precision, the fastest finite mode's figures and every mode."""
    summary: dict = {"device": device}
    for record in records:
        modes = summary.setdefault(record["phase"], {}).setdefault(record["precision"], {"modes": {}})["modes"]
        modes[record["mode"]] = {k: v for k, v in record.items() if k not in ("phase", "precision", "mode")}
    for phase in ("teacher", "student"):
        for entry in summary.get(phase, {}).values():
            good = {m: r for m, r in entry["modes"].items() if r.get("loss_finite")}
            if good:
                best = max(good, key=lambda m: good[m]["images_per_second"])
                entry.update({"mode": best, **good[best]})
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny model, 32 px, a few steps, on CPU")
    parser.add_argument("--architecture", default="vipriors_resnet50")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--queue-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--pool", type=int, default=4, help="fixed synthetic batches cycled through")
    parser.add_argument("--phases", nargs="+", default=["teacher", "student"], choices=["teacher", "student"])
    parser.add_argument("--modes", nargs="+", default=["eager", "compile"], choices=["eager", "compile"])
    parser.add_argument("--precisions", nargs="+", default=["bf16", "fp32"], choices=list(PRECISIONS))
    parser.add_argument(
        "--compile-precisions",
        nargs="+",
        default=list(PRECISIONS),
        choices=list(PRECISIONS),
        help="compile mode only at these",
    )
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    parser.add_argument("--json-out", help="write the summary here (rewritten after every measurement)")
    args = parser.parse_args()
    if args.dry_run:
        args.architecture, args.resolution, args.batch_size = "vipriors_resnet_tiny", 32, 8
        args.classes, args.steps, args.warmup, args.queue_size = 10, 6, 2, 16
    if args.precision:
        one_precision(args)
        return

    device = torch.cuda.get_device_name() if torch.cuda.is_available() and not args.dry_run else "cpu"
    records: list[dict] = []
    passed = [a for i, a in enumerate(sys.argv[1:]) if a != "--json-out" and sys.argv[i] != "--json-out"]
    for precision in args.precisions:
        command = [sys.executable, os.path.abspath(__file__), *passed, "--precision", precision]
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
            for line in process.stdout:
                if line.startswith("{"):
                    records.append(json.loads(line))
                    record = records[-1]
                    figure = f"{record['images_per_second']:9.1f} img/s" if "error" not in record else "FAILED"
                    print(f"{record['phase']:<8} {precision:<5} {record['mode']:<8} {figure}", flush=True)
                    if args.json_out:
                        Path(args.json_out).write_text(json.dumps(summarise(records, device), indent=2))
        if process.returncode:
            records.append({"phase": "all", "precision": precision, "mode": "-", "error": f"exit {process.returncode}"})
            print(f"the {precision} process failed (exit status {process.returncode})", flush=True)
    summary = summarise(records, device)
    print(json.dumps(summary, indent=2))
    ok = all(r.get("loss_finite") for r in records)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
