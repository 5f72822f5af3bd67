"""The ``vipriors-hub`` command line: one subcommand per task of the package."""

import argparse
import json
import sys
from collections.abc import Sequence

import timm

from .config import add_config_arguments, resolve_config
from .data.sources import add_data_arguments, data_config_from_args, describe, load_data
from .errors import VipriorsError
from .models import ARCHITECTURES
from .version import __version__


def family_table() -> list[dict[str, object]]:
    """One row per pretrained tag of the family: name, architecture, tag, default flag, classes,
    input size and Hub repo id."""
    rows = []
    for architecture in ARCHITECTURES:
        default_tag = timm.models.get_pretrained_cfg(architecture).tag
        for name in timm.list_pretrained(f"{architecture}.*"):
            cfg = timm.models.get_pretrained_cfg(name)
            rows.append(
                {
                    "name": name,
                    "architecture": architecture,
                    "tag": cfg.tag,
                    "default": cfg.tag == default_tag,
                    "num_classes": cfg.num_classes,
                    "input_size": list(cfg.input_size),
                    "hf_hub_id": cfg.hf_hub_id,
                }
            )
    return rows


def _run_models(args: argparse.Namespace) -> int:
    rows = family_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<36} {'phase':<8} {'classes':>7} {'input':>7}  hub repo id")
    for row in rows:
        phase = f"{row['tag']}*" if row["default"] else row["tag"]
        size = f"{row['input_size'][-1]}px"
        print(f"{row['name']:<36} {phase:<8} {row['num_classes']:>7} {size:>7}  {row['hf_hub_id']}")
    print("* default tag: timm.create_model(ARCHITECTURE, pretrained=True) loads it.")
    return 0


def _run_data_info(args: argparse.Namespace) -> int:
    report = describe(load_data(data_config_from_args(args)))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['description']}: {report['classes']} classes")
    for name, split in report["splits"].items():
        print(f"  {name:<6} {split['images']:>8} images  {split['skipped']:>4} skipped  sha256 {split['sha256'][:16]}")
    return 0


def _run_train_teacher(args: argparse.Namespace) -> int:
    from .train.teacher import TeacherConfig, train_teacher

    final = train_teacher(resolve_config(args, TeacherConfig, "train"), data_config_from_args(args))
    print(f"Teacher written to {final}")
    return 0


def _run_eval_teacher(args: argparse.Namespace) -> int:
    from .train.evaluate import TeacherEvalConfig, evaluate_teacher

    results = evaluate_teacher(resolve_config(args, TeacherEvalConfig, "eval"), data_config_from_args(args))
    print(
        f"{results['split']} ({results['images']} images): "
        f"kNN top-1 {results['knn']['top1']:.2f}% top-5 {results['knn']['top5']:.2f}% | "
        f"linear top-1 {results['linear']['top1']:.2f}% top-5 {results['linear']['top5']:.2f}%"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="vipriors-hub",
        description="Distilling Visual Priors from Self-Supervised Learning: models, training, Hub.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    models = commands.add_parser("models", help="list the model family, its pretrained tags and Hub repo ids")
    models.add_argument("--json", action="store_true", help="print machine-readable JSON")
    models.set_defaults(run=_run_models)

    data_info = commands.add_parser("data-info", help="count the images, classes and unreadable files of a source")
    add_data_arguments(data_info)
    data_info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    data_info.set_defaults(run=_run_data_info)

    from .train.teacher import TeacherConfig

    teacher = commands.add_parser(
        "train-teacher", help="phase 1: MoCo v2 + margin loss teacher (also under accelerate launch -m vipriors_hub)"
    )
    teacher.add_argument("--config", help="YAML file with data: and train: sections (e.g. a run's config.yaml)")
    add_data_arguments(teacher)
    add_config_arguments(teacher, TeacherConfig, "teacher")
    teacher.set_defaults(run=_run_train_teacher)

    from .train.evaluate import TeacherEvalConfig

    eval_teacher = commands.add_parser("eval-teacher", help="kNN and linear probe on a teacher's frozen features")
    eval_teacher.add_argument("--config", help="YAML file with data: and eval: sections")
    add_data_arguments(eval_teacher)
    add_config_arguments(eval_teacher, TeacherEvalConfig, "evaluation")
    eval_teacher.set_defaults(run=_run_eval_teacher)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vipriors-hub``; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except VipriorsError as error:
        print(f"vipriors-hub {args.command}: error: {error}", file=sys.stderr)
        return 2
