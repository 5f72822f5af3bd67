"""The data-deficient benchmark: does the distilled student beat supervised training from scratch,
given the same training compute?

Fashion-MNIST from the IDX files, ``--per-class`` training images per class drawn with each seed
(``--val-per-class`` of them held out), scored on the official 10k test set. For every seed, the
demo's four arms with the demo's settings (chosen on held-out data by ``tune_demo.py``) unless a flag
changes one: the baseline for the student's epochs (paper protocol), the teacher (kNN, linear
probe), the student, and the baseline given the pipeline's training FLOPs (equal compute, counted).
Every flag is a ``DemoConfig`` setting, so the architecture, input size, epochs, precision and
compilation are the same for all arms. Prints a Markdown table (mean +- std over seeds) and says
whether the student beat the equal-compute baseline; writes JSON after every seed (a run cut short
keeps the seeds it finished).

    python benchmarks/data_deficient.py --data-dir ../shared/data/fashion-mnist --seeds 0 1 2
    python benchmarks/data_deficient.py --model vipriors_resnet50 --img-size 224 --mixed-precision bf16 \\
        --teacher-epochs 50 --student-epochs 100 --workers 6 --seeds 0 1      # a GPU
    python benchmarks/data_deficient.py --dry-run --data-dir shipped          # CPU, tiny, a few steps (tested)
"""

import argparse
import dataclasses
import datetime
import json
import platform
import statistics
from pathlib import Path
from typing import Any

import torch

from vipriors_hub.demo import RESULT_KEYS, DemoConfig, demo_data_config, run_arms

# Flag -> DemoConfig setting (``DemoConfig.setting``); unset flags keep the demo's defaults.
FLAGS = {
    "--model": "architecture",
    "--img-size": "resolution",
    "--batch-size": "batch_size",
    "--teacher-epochs": "teacher_epochs",
    "--student-epochs": "student_epochs",
    "--per-class": "per_class",
    "--val-per-class": "val_per_class",
    "--mixed-precision": "mixed_precision",
    "--workers": "num_workers",
    "--data-pipeline": "data_pipeline",
}
DRY_RUN = {
    "architecture": "vipriors_resnet_tiny",
    "resolution": 32,
    "batch_size": 16,
    "teacher_epochs": 1,
    "student_epochs": 2,
    "no_distill_epochs": 1,
    "per_class": 6,
    "val_per_class": 2,
    "mixed_precision": "no",
    "torch_compile": False,
    "num_workers": 0,
}
"""What ``--dry-run`` sets: the same arms and accounting in a few steps of a tiny model on a CPU."""


def mean_std(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def device_name() -> str:
    """The accelerator the arms trained on, in words."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    return f"cpu: {platform.processor() or platform.machine()} (torch {torch.__version__})"


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean +- std over seeds of every test top-1 and of the student's gap to the equal-compute baseline."""
    summary = {key: mean_std([row[key] for row in rows]) for key in RESULT_KEYS}
    gaps = [row["student_top1"] - row["baseline_equal_compute_top1"] for row in rows]
    summary["student_minus_equal_compute"] = {**mean_std(gaps), "per_seed": gaps, "ahead": sum(g > 0 for g in gaps)}
    return summary


def parse_args() -> argparse.Namespace:
    """The command line: every flag a ``DemoConfig`` setting, unset ones keep the demo's default."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist", help="IDX files, or 'shipped'")
    defaults = DemoConfig()
    for flag, name in FLAGS.items():
        default = defaults.setting(name)
        kind = int if isinstance(default, int) else str
        parser.add_argument(
            flag, dest=name, type=kind, help=f"the demo's {name.replace('_', ' ')} (default: {default})"
        )
    parser.add_argument("--torchcompile", dest="torch_compile", action=argparse.BooleanOptionalAction)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", default="runs/data_deficient", help="folder of the runs")
    parser.add_argument("--json-out", help="results JSON (default: OUTPUT/results.json)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="replace the model, size, epochs, data sizes, precision, compilation and workers by a tiny CPU run "
        "of a few steps (tests the command; the JSON records both)",
    )
    return parser.parse_args()


def main() -> None:
    """Run the arms for every seed, rewrite the JSON after each, print the table and the verdict."""
    args = parse_args()
    names = [*FLAGS.values(), "torch_compile"]
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    chosen = DRY_RUN if args.dry_run else given
    data_dir = None if args.data_dir == "shipped" else args.data_dir
    json_out = Path(args.json_out or Path(args.output) / "results.json")
    json_out.parent.mkdir(parents=True, exist_ok=True)

    rows: list[dict[str, Any]] = []
    settings: dict[str, Any] = {}
    for seed in args.seeds:
        config = DemoConfig(output=str(Path(args.output) / f"seed{seed}"), data_dir=data_dir, seed=seed, overwrite=True)
        config = config.with_settings(**chosen)
        settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("output", "seed", "overwrite")}
        result = run_arms(config, demo_data_config(config))
        rows.append({"seed": seed, **result})
        print(json.dumps({"seed": seed, **{key: result[key] for key in RESULT_KEYS}}), flush=True)
        report = {
            "device": device_name(),
            "date": datetime.date.today().isoformat(),
            "command": {"seeds": args.seeds, "dry_run": args.dry_run, **given},
            "settings": settings,
            "summary": summarize(rows),
            "rows": rows,
        }
        json_out.write_text(json.dumps(report, indent=2))

    summary = report["summary"]
    where = f"{settings['architecture']} at {settings['resolution']} px, seeds {args.seeds}"
    print(f"\n{where}: test top-1 % (mean +- std)\n")
    print("| " + " | ".join(RESULT_KEYS) + " | student - equal-compute baseline |")
    print("|---" * (len(RESULT_KEYS) + 1) + "|")
    keys = [*RESULT_KEYS, "student_minus_equal_compute"]
    cells = [f"{summary[key]['mean']:.2f} +- {summary[key]['std']:.2f}" for key in keys]
    print("| " + " | ".join(cells) + " |")
    gap = summary["student_minus_equal_compute"]
    verdict = "beats" if gap["mean"] > 0 else "does NOT beat"
    print(
        f"\nThe student {verdict} the equal-compute baseline on average ({gap['mean']:+.2f} points); it is ahead "
        f"on {gap['ahead']} of {len(rows)} seeds. Results: {json_out}"
    )


if __name__ == "__main__":
    main()
