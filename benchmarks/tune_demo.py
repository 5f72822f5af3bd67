"""Tune the demo's arms on held-out data, with the same budget for each: the defaults of ``vipriors-hub demo``.

Fashion-MNIST from the IDX files, a draw of its own (``--seed``, 100 by default, none of the
evaluation seeds 0-2): ``--train-per-class`` training images and ``--val-per-class`` held-out
images per class, both from the official training set. Every configuration trains on the training
part and is scored on the held-out part only (top-1 of its last epoch); the test set is never read.

Each arm gets the same number of configurations: its declared grid below, one setting changed at a
time from the arm's starting point (``DemoConfig``'s values before this search). Every configuration
costs about the same training compute, that of the default pipeline (teacher 150 epochs + student
60, about a baseline of 300 epochs): the pipeline's splits trade teacher epochs for student epochs,
and a larger input resolution costs its pixels in epochs, in both arms. The best configuration of
each arm on the held-out part becomes the demo's default. Configurations with the same teacher
settings share one teacher.

    python benchmarks/tune_demo.py --data-dir ../shared/data/fashion-mnist --output runs/tune_demo
"""

import argparse
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

from vipriors_hub.data import DataConfig
from vipriors_hub.demo import DemoConfig, baseline_run_config, student_run_config, teacher_run_config
from vipriors_hub.train.student import train_student
from vipriors_hub.train.teacher import train_teacher

BASELINE_EPOCHS = 300
BASELINE_START = {"baseline_lr": 0.2, "baseline_aa": "cifar10", "student_epochs": BASELINE_EPOCHS}
BASELINE_CHANGES = [
    {},
    {"baseline_lr": 0.05},
    {"baseline_lr": 0.1},
    {"baseline_lr": 0.4},
    {"baseline_aa": "original"},
    {"baseline_aa": "none"},
    {"student_epochs": 200},
    {"resolution": 48, "student_epochs": 133},
]
PIPELINE_START = {
    "teacher_epochs": 150,
    "margin": 0.4,
    "queue_size": 256,
    "student_epochs": 60,
    "student_lr": 0.1,
    "distill_weight": 1e-4,
    "teacher_bn": "eval",
    "student_aa": "cifar10",
}
PIPELINE_CHANGES = [
    {},
    {"teacher_epochs": 100, "student_epochs": 120},
    {"teacher_epochs": 50, "student_epochs": 180},
    {"student_lr": 0.05},
    {"distill_weight": 1e-3},
    {"margin": 0.2},
    {"student_lr": 0.2},
    {"resolution": 48, "teacher_epochs": 67, "student_epochs": 27},
]
TEACHER_SETTINGS = ("resolution", "teacher_epochs", "teacher_lr", "margin", "queue_size")


def last_validation(run: Path) -> float:
    """Held-out top-1 of a supervised run's last epoch."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "val_top1" in r][-1]["val_top1"]


def timed(train: Callable[..., Path], *args: object) -> tuple[Path, float]:
    """Run ``train(*args)``; return its result and its wall seconds."""
    start = time.perf_counter()
    result = train(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--train-per-class", type=int, default=40)
    parser.add_argument("--val-per-class", type=int, default=50)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every epoch count (a smoke run: 0.02)")
    parser.add_argument("--output", default="runs/tune_demo")
    parser.add_argument("--results", default="benchmarks/results/tune_demo.json")
    args = parser.parse_args()
    per_class = args.train_per_class + args.val_per_class
    data = DataConfig(
        dataset="fashion-mnist",
        data_dir=args.data_dir,
        per_class=per_class,
        val_per_class=args.val_per_class,
        seed=args.seed,
    )
    output = Path(args.output)
    base = DemoConfig(
        output=str(output),
        data_dir=args.data_dir,
        seed=args.seed,
        per_class=per_class,
        val_per_class=args.val_per_class,
        overwrite=True,
    )

    def configured(start: dict, change: dict) -> DemoConfig:
        settings = {**start, **change}
        for key in ("teacher_epochs", "student_epochs"):
            if key in settings:
                settings[key] = max(1, round(settings[key] * args.scale))
        return dataclasses.replace(base, **settings)

    rows: dict[str, list[dict]] = {"baseline": [], "pipeline": []}
    for index, change in enumerate(BASELINE_CHANGES):
        config = configured(BASELINE_START, change)
        run = output / f"baseline-{index}"
        _, seconds = timed(train_student, baseline_run_config(config, run), data)
        rows["baseline"].append({"change": change, "val_top1": last_validation(run), "train_seconds": seconds})
        print(json.dumps({"arm": "baseline", **rows["baseline"][-1]}), flush=True)

    teachers: dict[tuple, tuple[Path, float]] = {}
    for index, change in enumerate(PIPELINE_CHANGES):
        config = configured(PIPELINE_START, change)
        key = tuple(getattr(config, name) for name in TEACHER_SETTINGS)
        if key not in teachers:
            teachers[key] = timed(train_teacher, teacher_run_config(config, output / f"teacher-{len(teachers)}"), data)
        teacher, teacher_seconds = teachers[key]
        run = output / f"student-{index}"
        _, seconds = timed(train_student, student_run_config(config, run, teacher), data)
        row = {"change": change, "val_top1": last_validation(run), "train_seconds": teacher_seconds + seconds}
        rows["pipeline"].append(row)
        print(json.dumps({"arm": "pipeline", **row}), flush=True)

    chosen = {arm: max(results, key=lambda r: r["val_top1"]) for arm, results in rows.items()}
    report = {
        "data": {
            "seed": args.seed,
            "train_per_class": args.train_per_class,
            "val_per_class": args.val_per_class,
            "held_out_images": 10 * args.val_per_class,
        },
        "start": {"baseline": BASELINE_START, "pipeline": PIPELINE_START},
        "scale": args.scale,
        "results": rows,
        "chosen": chosen,
    }
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(report, indent=2))
    print(f"\nheld-out top-1 (%), {10 * args.val_per_class} held-out images, draw seed {args.seed}\n")
    for arm, results in rows.items():
        for row in results:
            change = ", ".join(f"{k}={v}" for k, v in row["change"].items()) or "(starting point)"
            mark = "  <- chosen" if row is chosen[arm] else ""
            print(f"{arm:<9} {change:<44} {row['train_seconds']:6.0f} s {row['val_top1']:6.2f}{mark}")


if __name__ == "__main__":
    main()
