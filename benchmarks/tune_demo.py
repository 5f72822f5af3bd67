"""Tune the demo's arms on held-out data, with the same budget for each: the defaults of ``vipriors-hub demo``.

Fashion-MNIST from the IDX files, a draw of its own (``--seed``, 100 by default, none of the
evaluation seeds 0-2): ``--train-per-class`` training images and ``--val-per-class`` held-out
images per class, both from the official training set. Every configuration trains on the training
part and is scored on the held-out part only (top-1 of its last epoch); the test set is never read.

A coordinate search in rounds, each arm with the same number of configurations in every round: a
round changes one setting at a time (or one pair that keeps the budget) from its starting point;
round 1 starts from ``DemoConfig``'s values before this search, each later round from the previous
round's best of the arm (read from ``--results``, which the round extends; that start is one of the
round's configurations, scored by the previous round, not trained again; ties go to the earlier row,
so to the start). The budget is the equal-compute arm's measure of the starting pipeline (teacher 150
epochs + student 60): a 300-epoch baseline. The pipeline's splits trade teacher epochs for student
epochs, and a larger input resolution pays its pixels with fewer epochs, in both arms. Each row
records its training wall seconds, which include a validation pass on the held-out part after every
epoch. The best of the last round becomes the demo's default (a test checks it). Configurations with
the same teacher settings share one teacher.

    python benchmarks/tune_demo.py --round 1 --data-dir ../shared/data/fashion-mnist --output runs/tune_demo
    python benchmarks/tune_demo.py --round 2 --data-dir ../shared/data/fashion-mnist --output runs/tune_demo
"""

import argparse
import json
from pathlib import Path

from vipriors_hub.data import DataConfig
from vipriors_hub.demo import (
    DemoConfig,
    baseline_run_config,
    student_run_config,
    teacher_run_config,
)
from vipriors_hub.train.result import FitResult
from vipriors_hub.train.student import train_student
from vipriors_hub.train.teacher import train_teacher

BASELINE_START = {"baseline_lr": 0.2, "baseline_aa": "cifar10", "student_epochs": 300}
BASELINE_ROUND_1 = [
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
PIPELINE_ROUND_1 = [
    {},
    {"teacher_epochs": 100, "student_epochs": 120},
    {"teacher_epochs": 50, "student_epochs": 180},
    {"student_lr": 0.05},
    {"distill_weight": 1e-3},
    {"margin": 0.2},
    {"student_lr": 0.2},
    {"resolution": 48, "teacher_epochs": 67, "student_epochs": 27},
]
BASELINE_ROUND_2 = [
    {},
    {"baseline_lr": 0.6},
    {"baseline_lr": 0.8},
    {"baseline_reprob": 0.25},
    {"baseline_aa": "original"},
]
PIPELINE_ROUND_2 = [
    {},
    {"student_lr": 0.2},
    {"student_lr": 0.4},
    {"student_reprob": 0.25},
    {"teacher_epochs": 25, "student_epochs": 210},
]
BASELINE_ROUNDS = [BASELINE_ROUND_1, BASELINE_ROUND_2]
PIPELINE_ROUNDS = [PIPELINE_ROUND_1, PIPELINE_ROUND_2]
START = {"baseline": BASELINE_START, "pipeline": PIPELINE_START}
TEACHER_SETTINGS = ("resolution", "teacher_epochs", "teacher_lr", "margin", "queue_size")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round", type=int, choices=range(1, len(BASELINE_ROUNDS) + 1), default=1)
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
    draw = {
        "seed": args.seed,
        "train_per_class": args.train_per_class,
        "val_per_class": args.val_per_class,
        "held_out_images": 10 * args.val_per_class,
        "scale": args.scale,
    }
    report = {"data": draw, "rounds": []}
    if args.round > 1:
        report = json.loads(Path(args.results).read_text())
        if report["data"] != draw or len(report["rounds"]) < args.round - 1:
            raise SystemExit(f"{args.results} does not hold round {args.round - 1} of this draw: run that round first.")
        report["rounds"] = report["rounds"][: args.round - 1]
    output = Path(args.output) / f"round-{args.round}"
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
        return base.with_settings(**settings)

    starts, rows = {}, {}
    teachers: dict[tuple, FitResult] = {}
    for arm in ("baseline", "pipeline"):
        changes = (BASELINE_ROUNDS if arm == "baseline" else PIPELINE_ROUNDS)[args.round - 1]
        starts[arm], rows[arm] = dict(START[arm]), []
        if report["rounds"]:
            previous = report["rounds"][-1]
            starts[arm] = {**previous["start"][arm], **previous["chosen"][arm]["change"]}
        for index, change in enumerate(changes):
            if not change and report["rounds"]:
                row = {**report["rounds"][-1]["chosen"][arm], "change": {}}
                rows[arm].append(row)
                continue
            config = configured(starts[arm], change)
            run = output / f"{arm}-{index}"
            if arm == "baseline":
                result = train_student(baseline_run_config(config, run), data)
                seconds = result.train_seconds
            else:
                key = tuple(config.setting(name) for name in TEACHER_SETTINGS)
                if key not in teachers:
                    teacher_run = teacher_run_config(config, output / f"teacher-{len(teachers)}")
                    teachers[key] = train_teacher(teacher_run, data)
                teacher = teachers[key]
                result = train_student(student_run_config(config, run, teacher.final), data)
                seconds = result.train_seconds + teacher.train_seconds
            rows[arm].append({"change": change, "val_top1": result.validation["top1"], "train_seconds": seconds})
            print(json.dumps({"round": args.round, "arm": arm, **rows[arm][-1]}), flush=True)

    chosen = {arm: max(results, key=lambda r: r["val_top1"]) for arm, results in rows.items()}
    report["rounds"].append({"start": starts, "results": rows, "chosen": chosen})
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(report, indent=2))
    print(f"\nheld-out top-1 (%), {10 * args.val_per_class} held-out images, draw seed {args.seed}\n")
    for number, tuning_round in enumerate(report["rounds"], start=1):
        for arm, results in tuning_round["results"].items():
            for row in results:
                change = ", ".join(f"{k}={v}" for k, v in row["change"].items()) or "(start of the round)"
                mark = "  <- chosen" if row == tuning_round["chosen"][arm] else ""
                line = f"round {number} {arm:<9} {change:<52} {row['train_seconds']:6.0f} s {row['val_top1']:6.2f}"
                print(line + mark)


if __name__ == "__main__":
    main()
