"""The data-deficient benchmark: does the distilled student beat supervised training from scratch?

Fashion-MNIST (real photos, read from the IDX files), K training images per class drawn with
each seed (a fifth of them held out for validation curves), scored on the official 10k test set.
For every seed: the baseline (supervised from scratch), and for every margin a teacher (MoCo +
margin; kNN and linear probe) and the student distilled from it, all with the same architecture,
input size and epoch budgets. Prints a Markdown table (mean +- std over seeds), writes JSON.

    python benchmarks/data_deficient.py --data-dir ../shared/data/fashion-mnist --seeds 0 1 2 --margins 0.4 0.0
"""

import argparse
import json
import statistics
from pathlib import Path

from vipriors_hub.data import DataConfig
from vipriors_hub.demo import DemoConfig, run_arms

COLUMNS = ("baseline_top1", "teacher_knn_top1", "teacher_linear_top1", "student_top1")


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} +- {spread:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--margins", type=float, nargs="+", default=[0.4, 0.0])
    parser.add_argument("--teacher-epochs", type=int, default=150)
    parser.add_argument("--student-epochs", type=int, default=60)
    parser.add_argument("--queue-size", type=int, default=256)
    parser.add_argument("--architecture", default="vipriors_resnet_tiny")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--output", default="runs/data_deficient")
    args = parser.parse_args()

    rows: dict[str, list[dict[str, float]]] = {}
    for seed in args.seeds:
        data = DataConfig(dataset="fashion-mnist", data_dir=args.data_dir, per_class=args.per_class, seed=seed)
        for index, margin in enumerate(args.margins):
            config = DemoConfig(
                output=str(Path(args.output) / f"seed{seed}" / f"margin{margin}"),
                architecture=args.architecture,
                resolution=args.resolution,
                teacher_epochs=args.teacher_epochs,
                student_epochs=args.student_epochs,
                margin=margin,
                queue_size=args.queue_size,
                overwrite=True,
            )
            arms = ("baseline", "teacher", "student") if index == 0 else ("teacher", "student")
            result = run_arms(config, data, arms)
            if index == 0:
                baseline = {k: v for k, v in result.items() if k.startswith("baseline")}
            rows.setdefault(f"margin {margin}", []).append({**baseline, **result, "seed": seed})
            print(json.dumps({"seed": seed, "margin": margin, **result}), flush=True)

    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / "results.json").write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=2))
    print(f"\n{args.per_class} images/class, seeds {args.seeds}, test top-1 % (mean +- std over seeds)\n")
    print("| teacher margin | " + " | ".join(COLUMNS) + " | student - baseline |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for name, results in rows.items():
        cells = [mean_std([r[c] for r in results]) for c in COLUMNS]
        gain = mean_std([r["student_top1"] - r["baseline_top1"] for r in results])
        print(f"| {name} | " + " | ".join(cells) + f" | {gain} |")


if __name__ == "__main__":
    main()
