"""The data-deficient benchmark: does the distilled student beat supervised training from scratch,
given the same training compute?

Fashion-MNIST from the IDX files, ``--per-class`` training images per class drawn with each seed
(``--val-per-class`` of them held out), scored on the official 10k test set. For every seed, the
demo's four arms with the demo's defaults (chosen on held-out data by ``tune_demo.py``): the baseline
for the student's epochs (paper protocol), the teacher (kNN, linear probe), the student, and the
baseline given the pipeline's measured training time (equal compute). Prints a Markdown table
(mean +- std over seeds) and says whether the student beat the equal-compute baseline; writes JSON.

    python benchmarks/data_deficient.py --data-dir ../shared/data/fashion-mnist --seeds 0 1 2
"""

import argparse
import json
import statistics
from pathlib import Path

from vipriors_hub.demo import RESULT_KEYS, DemoConfig, demo_data_config, run_arms


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} +- {spread:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--val-per-class", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", default="runs/data_deficient")
    args = parser.parse_args()

    rows = []
    for seed in args.seeds:
        config = DemoConfig(
            output=str(Path(args.output) / f"seed{seed}"),
            data_dir=args.data_dir,
            seed=seed,
            per_class=args.per_class,
            val_per_class=args.val_per_class,
            overwrite=True,
        )
        result = run_arms(config, demo_data_config(config))
        rows.append({"seed": seed, **result})
        print(json.dumps({"seed": seed, **{key: result[key] for key in RESULT_KEYS}}), flush=True)

    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / "results.json").write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=2))
    gaps = [r["student_top1"] - r["baseline_equal_compute_top1"] for r in rows]
    print(f"\n{args.per_class} images/class, seeds {args.seeds}, test top-1 % (mean +- std over seeds)\n")
    print("| " + " | ".join(RESULT_KEYS) + " | student - equal-compute baseline |")
    print("|---" * (len(RESULT_KEYS) + 1) + "|")
    print("| " + " | ".join(mean_std([r[key] for r in rows]) for key in RESULT_KEYS) + f" | {mean_std(gaps)} |")
    wins = sum(gap > 0 for gap in gaps)
    verdict = "beats" if statistics.mean(gaps) > 0 else "does NOT beat"
    print(f"\nThe student {verdict} the equal-compute baseline on average; it is ahead on {wins} of {len(gaps)} seeds.")


if __name__ == "__main__":
    main()
