"""Linear-probe (and kNN-score) a teacher's frozen features on any data source.

python examples/linear_probe.py runs/teacher/final --dataset vipriors --split val
python examples/linear_probe.py runs/teacher/final --dataset fashion-mnist --data-dir DIR --per-class 50 --split test
"""

import argparse

from vipriors_hub.data import DataConfig
from vipriors_hub.evaluate import TeacherEvalConfig, evaluate_teacher


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher", help="a teacher folder (train-teacher OUTPUT/final, or an export)")
    parser.add_argument("--dataset", default="vipriors")
    parser.add_argument("--data-dir")
    parser.add_argument("--per-class", type=int)
    parser.add_argument("--split", default="val")
    parser.add_argument("--output", default="linear_probe.json")
    args = parser.parse_args(argv)

    data = DataConfig(dataset=args.dataset, data_dir=args.data_dir, per_class=args.per_class)
    config = TeacherEvalConfig(checkpoint=args.teacher, split=args.split, output=args.output, num_workers=0)
    results = evaluate_teacher(config, data)
    print(f"linear probe top-1 {results['linear']['top1']:.2f}%  kNN top-1 {results['knn']['top1']:.2f}%")
    return results


if __name__ == "__main__":
    main()
