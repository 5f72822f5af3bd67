"""Tune the demo's arms on held-out data, with the same budget for each: the defaults of ``vipriors-hub demo``.

Fashion-MNIST from the IDX files, a draw of its own (``--seed``, 100 by default, none of the
evaluation seeds 0-2): ``--train-per-class`` training images and ``--val-per-class`` held-out
images per class, both from the official training set. Every configuration trains on the training
part and is scored on the held-out part only (top-1 of its last epoch); the test set is never read.
Each arm gets the same number of configurations (its declared grid below), and the best on the
held-out part becomes the demo's default. The baseline's grid trains for ``--baseline-epochs``,
about the measured compute of the default pipeline (teacher + student); the pipeline's configurations
share one teacher, so they cost a teacher once and a student each.

    python benchmarks/tune_demo.py --data-dir ../shared/data/fashion-mnist --output runs/tune_demo
"""

import argparse
import json
import time
from pathlib import Path

from vipriors_hub.data import DataConfig
from vipriors_hub.demo import DemoConfig, baseline_run_config, student_run_config, teacher_run_config
from vipriors_hub.train.student import train_student
from vipriors_hub.train.teacher import train_teacher

BASELINE_GRID = [
    {"baseline_lr": lr, "baseline_aa": augment} for lr in (0.1, 0.2) for augment in ("original", "cifar10")
]
PIPELINE_GRID = [
    {"teacher_bn": bn, "student_aa": augment} for bn in ("eval", "train") for augment in ("original", "cifar10")
]


def last_validation(run: Path) -> float:
    """Held-out top-1 of a supervised run's last epoch."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "val_top1" in r][-1]["val_top1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--train-per-class", type=int, default=40)
    parser.add_argument("--val-per-class", type=int, default=50)
    parser.add_argument("--baseline-epochs", type=int, default=300)
    parser.add_argument("--teacher-epochs", type=int, default=DemoConfig.teacher_epochs)
    parser.add_argument("--student-epochs", type=int, default=DemoConfig.student_epochs)
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
    base = dict(
        data_dir=args.data_dir, seed=args.seed, per_class=per_class, val_per_class=args.val_per_class, overwrite=True
    )
    budgets = dict(teacher_epochs=args.teacher_epochs, student_epochs=args.student_epochs)
    output = Path(args.output)
    rows: dict[str, list[dict]] = {"baseline": [], "pipeline": []}

    for index, settings in enumerate(BASELINE_GRID):
        config = DemoConfig(output=str(output), student_epochs=args.baseline_epochs, **base, **settings)
        run = output / f"baseline-{index}"
        start = time.perf_counter()
        train_student(baseline_run_config(config, run), data)
        row = {**settings, "epochs": args.baseline_epochs, "val_top1": last_validation(run)}
        rows["baseline"].append({**row, "seconds": time.perf_counter() - start})
        print(json.dumps({"arm": "baseline", **rows["baseline"][-1]}), flush=True)

    config = DemoConfig(output=str(output), **base, **budgets)
    start = time.perf_counter()
    teacher = train_teacher(teacher_run_config(config, output / "teacher"), data)
    teacher_seconds = time.perf_counter() - start
    for index, settings in enumerate(PIPELINE_GRID):
        config = DemoConfig(output=str(output), **base, **budgets, **settings)
        run = output / f"student-{index}"
        start = time.perf_counter()
        train_student(student_run_config(config, run, teacher), data)
        row = {**settings, "val_top1": last_validation(run), "seconds": time.perf_counter() - start}
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
        "grids": {"baseline": BASELINE_GRID, "pipeline": PIPELINE_GRID},
        "baseline_epochs": args.baseline_epochs,
        "teacher_seconds": teacher_seconds,
        "results": rows,
        "chosen": chosen,
    }
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(report, indent=2))
    print(f"\nheld-out top-1 (%), {10 * args.val_per_class} held-out images, draw seed {args.seed}\n")
    for arm, results in rows.items():
        for row in results:
            settings = ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("val_top1", "seconds"))
            mark = "  <- chosen" if row is chosen[arm] else ""
            print(f"{arm:<9} {settings:<48} {row['val_top1']:6.2f}{mark}")


if __name__ == "__main__":
    main()
