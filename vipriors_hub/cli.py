"""The ``vipriors-hub`` command line: one subcommand per task of the package; all argument parsing lives here."""

import argparse
import dataclasses
import json
import sys
import typing
from collections.abc import Sequence
from typing import Any

from .config import field_type, primary_flag, read_config_section
from .data.settings import DataConfig
from .demo_settings import DemoConfig
from .errors import EXIT_PREEMPTED, RunPreempted, VipriorsError
from .eval_settings import EvaluateConfig, TeacherEvalConfig
from .hub.settings import ConvertConfig, ExportConfig, PushConfig
from .train.student_settings import StudentConfig
from .train.teacher_settings import TeacherConfig
from .version import __version__


class OneLineArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``PROG: error: ...; see --help``), exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _add_field_argument(
    group: argparse._ArgumentGroup,
    field: dataclasses.Field,
    dest: str,
    arm: str = "",
    extra: tuple[str, ...] = (),
    default: Any = None,
) -> None:
    """The flag(s) of one settings field, stored at ``dest``: its ``flags`` (timm's spelling first, else
    ``--field-name``), or for an ``arm`` of the demo ``--ARM.FLAG`` with the arm's ``default``, then
    the ``extra`` spellings."""
    meta = field.metadata
    flags = meta.get("flags", (primary_flag(field),))
    flags = tuple(f"--{arm}.{flag.lstrip('-')}" for flag in flags[:1]) if arm else flags
    # An earlier spelling another setting of the command already owns stays that setting's
    # (``--seed`` is the training seed on the trainers, the data seed elsewhere).
    taken = group._option_string_actions  # the parser's registry, shared by its groups
    flags = flags[:1] + tuple(flag for flag in (*flags[1:], *extra) if flag not in taken)
    kind = field_type(field)
    if not arm:
        default = field.default if field.default is not dataclasses.MISSING else None
    help_text = f"{meta['help']} (default: {default})" if meta.get("help") else f"default: {default}"
    if len(flags) > 1:
        help_text += f"; also {', '.join(flags[1:])}"
    if meta.get("positional"):
        group.add_argument(dest, help=meta.get("help"), metavar=field.name.upper())
        return
    if kind is bool:
        action: dict[str, Any] = {"action": argparse.BooleanOptionalAction}
    elif typing.get_origin(kind) is list:
        action = {"action": "append", "type": typing.get_args(kind)[0], "metavar": meta.get("metavar")}
    else:
        metavar = meta.get("metavar") or (field.name.upper() if "choices" not in meta else None)
        action = {"type": kind, "choices": meta.get("choices"), "metavar": metavar}
        action.update({key: meta[key] for key in ("nargs", "const") if key in meta})
    # A required setting may come from --config too: the settings class refuses it missing.
    group.add_argument(*flags, dest=dest, default=argparse.SUPPRESS, help=help_text, **action)
    for switch, value in meta.get("switches", {}).items():
        switches = (f"--{arm}.{switch.lstrip('-')}",) if arm else (switch,)
        group.add_argument(
            *switches, dest=dest, action="store_const", const=value, default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type, title: str) -> None:
    """Expose every field of ``config_class`` as a flag, stored as ``CLASS.FIELD`` (settings of two
    classes may share a name: the training and the data ``seed``); unset flags keep the ``--config``
    YAML or default value. A field marked ``arm`` (the demo's teacher, student and baseline) holds
    another settings class: each of its fields but those ``owned`` by the outer one becomes
    ``--ARM.FLAG``."""
    group = parser.add_argument_group(title)
    arms = []
    for field in dataclasses.fields(config_class):
        if field.metadata.get("arm"):
            arms.append(field)
        else:
            _add_field_argument(group, field, f"{config_class.__name__}.{field.name}")
    for arm in arms:
        arm_group = parser.add_argument_group(f"{arm.name}: {arm.metadata['help']}")
        for field in dataclasses.fields(field_type(arm)):
            if field.name not in arm.metadata["owned"] and not field.metadata.get("action"):
                dest = f"{config_class.__name__}.{arm.name}.{field.name}"
                extra = arm.metadata["aliases"].get(field.name, ())
                default = arm.metadata["defaults"].get(field.name, field.default)
                _add_field_argument(arm_group, field, dest, arm.name, extra, default)


def resolve_config(args: argparse.Namespace, config_class: type, section: str) -> Any:
    """Build ``config_class`` from (lowest to highest priority) defaults, the ``--config`` YAML file's
    ``section`` and the flags given; an ``arm`` field from its default with its ``--ARM.FLAG`` flags given."""
    values = read_config_section(args.config, section, config_class) if getattr(args, "config", None) else {}
    given = vars(args)
    for field in dataclasses.fields(config_class):
        dest = f"{config_class.__name__}.{field.name}"
        if field.metadata.get("arm"):
            changes = {key[len(dest) + 1 :]: value for key, value in given.items() if key.startswith(f"{dest}.")}
            if changes:
                values[field.name] = dataclasses.replace(field.default_factory(), **changes)
        elif dest in given:
            values[field.name] = given[dest]
    return config_class(**values)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the data flags every subcommand shares (:class:`~vipriors_hub.data.DataConfig`)."""
    add_config_arguments(parser, DataConfig, "data")


def data_config_from_args(args: argparse.Namespace) -> DataConfig:
    """The :class:`~vipriors_hub.data.DataConfig` of the command line and its ``--config`` file's ``data:`` section."""
    return resolve_config(args, DataConfig, "data")


def _run_models(args: argparse.Namespace) -> int:
    from .models import family_table

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
    from .data import describe, load_data

    report = describe(load_data(data_config_from_args(args)))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['description']}: {report['classes']} classes")
    for name, split in report["splits"].items():
        print(f"  {name:<6} {split['images']:>8} images  {split['skipped']:>4} skipped  sha256 {split['sha256'][:16]}")
    return 0


def _run_train_teacher(args: argparse.Namespace) -> int:
    from .train.teacher import train_teacher

    result = train_teacher(resolve_config(args, TeacherConfig, "train"), data_config_from_args(args))
    if hasattr(result, "report"):  # --dry-run: the estimate, reported by the main process
        if result.main_process:
            print(result.report())
    else:
        print(f"Teacher written to {result.final}")
    return 0


def _run_eval_teacher(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_teacher

    results = evaluate_teacher(resolve_config(args, TeacherEvalConfig, "eval"), data_config_from_args(args))
    print(
        f"{results['split']} ({results['images']} images): "
        f"kNN top-1 {results['knn']['top1']:.2f}% top-5 {results['knn']['top5']:.2f}% | "
        f"linear top-1 {results['linear']['top1']:.2f}% top-5 {results['linear']['top5']:.2f}%"
    )
    return 0


def _run_train_student(args: argparse.Namespace) -> int:
    from .train.student import train_student

    result = train_student(resolve_config(args, StudentConfig, "train"), data_config_from_args(args))
    if hasattr(result, "report"):  # --dry-run: the estimate, reported by the main process
        if result.main_process:
            print(result.report())
    else:
        print(f"Student written to {result.final}")
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_students

    config = resolve_config(args, EvaluateConfig, "evaluate")
    results = evaluate_students(config, data_config_from_args(args))
    name = "ensemble" if len(config.checkpoint) > 1 else "student"
    scores = f"top-1 {results['top1']:.2f}% top-5 {results['top5']:.2f}%"
    print(f"{name} on {results['split']} ({results['images']} images): {scores}")
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from .hub import export_run

    config = resolve_config(args, ExportConfig, "export")
    folder = export_run(config.run_dir, config.output, config.results, config.repo_id, config.base_model, config.source)
    print(f"Hub-ready folder written to {folder}")
    return 0


def _run_push(args: argparse.Namespace) -> int:
    from .hub import push_to_hub

    config = resolve_config(args, PushConfig, "push")
    url = push_to_hub(config.folder, config.repo_id, config.private, config.revision, config.commit_message)
    print(f"Pushed to {config.repo_id}: {url}")
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    from .hub import convert_checkpoint

    config = resolve_config(args, ConvertConfig, "convert")
    report = convert_checkpoint(config.checkpoint, config.architecture, config.output, config.num_classes)
    print(f"Converted {report['loaded']} tensors (key prefix '{report['prefix']}') into {config.output}.")
    if report["unexpected"]:
        print(
            f"Ignored {len(report['unexpected'])} keys that {config.architecture} has no place for: "
            f"{', '.join(report['unexpected'][:10])}"
        )
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    config = resolve_config(args, DemoConfig, "demo")
    results = run_demo(config)
    data, equal = results["data"], results["equal_compute"]
    print(
        f"\nFashion-MNIST ({data['source']}, seed {data['seed']}), {data['train_per_class']} training images per "
        f"class, official 10k test set ({config.output}):"
    )
    rows = {
        f"baseline, the student's {config.student.epochs} epochs": "baseline_top1",
        f"baseline, equal compute ({equal['epochs']:.0f} epochs)": "baseline_equal_compute_top1",
        "teacher, kNN on frozen features": "teacher_knn_top1",
        "teacher, linear probe": "teacher_linear_top1",
        "student, distilled from the teacher": "student_top1",
    }
    for name, key in rows.items():
        print(f"  {name:<44} top-1 {results[key]:6.2f}%")
    gap = results["student_top1"] - results["baseline_equal_compute_top1"]
    verdict = "beats" if gap > 0 else "does NOT beat"
    print(
        f"The distilled student {verdict} the supervised baseline given the same training compute "
        f"({equal['pipeline_train_flops'] / 1e12:.2f} TFLOP, counted; {equal['pipeline_train_seconds']:.0f} s here): "
        f"{gap:+.2f} points in this one run."
    )
    print(f"Results: {config.output}/results.json, {config.output}/results.png; Hub-ready: {config.output}/hub/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = OneLineArgumentParser(
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

    teacher = commands.add_parser(
        "train-teacher", help="phase 1: MoCo v2 + margin loss teacher (also under accelerate launch -m vipriors_hub)"
    )
    teacher.add_argument("--config", help="YAML file with data: and train: sections (e.g. a run's config.yaml)")
    add_config_arguments(teacher, TeacherConfig, "teacher")
    add_data_arguments(teacher)
    teacher.set_defaults(run=_run_train_teacher)

    student = commands.add_parser("train-student", help="phase 2: distil the teacher into a student classifier")
    student.add_argument("--config", help="YAML file with data: and train: sections (e.g. a run's config.yaml)")
    add_config_arguments(student, StudentConfig, "student")
    add_data_arguments(student)
    student.set_defaults(run=_run_train_student)

    eval_teacher = commands.add_parser("eval-teacher", help="kNN and linear probe on a teacher's frozen features")
    eval_teacher.add_argument("--config", help="YAML file with data: and eval: sections")
    add_data_arguments(eval_teacher)
    add_config_arguments(eval_teacher, TeacherEvalConfig, "evaluation")
    eval_teacher.set_defaults(run=_run_eval_teacher)

    evaluate = commands.add_parser("evaluate", help="top-1/top-5 of a student or an ensemble; submission CSV")
    evaluate.add_argument("--config", help="YAML file with data: and evaluate: sections")
    add_config_arguments(evaluate, EvaluateConfig, "evaluation")
    add_data_arguments(evaluate)
    evaluate.set_defaults(run=_run_evaluate)

    demo = commands.add_parser("demo", help="the whole method on Fashion-MNIST (shipped), offline, on CPU")
    add_config_arguments(demo, DemoConfig, "demo")
    demo.set_defaults(run=_run_demo)

    export = commands.add_parser("export", help="write the Hub-ready folder (weights, config, model card) of a run")
    add_config_arguments(export, ExportConfig, "export")
    export.set_defaults(run=_run_export)

    push = commands.add_parser("push", help="upload a run or a Hub-ready folder to the Hugging Face Hub")
    add_config_arguments(push, PushConfig, "push")
    push.set_defaults(run=_run_push)

    convert = commands.add_parser("convert", help="import a checkpoint of the original research code")
    add_config_arguments(convert, ConvertConfig, "convert")
    convert.set_defaults(run=_run_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vipriors-hub``; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except VipriorsError as error:
        message = " ".join(str(error).split())
        print(f"vipriors-hub {args.command}: error: {message}", file=sys.stderr)
        return 2
    except RunPreempted as stop:
        again = "run the demo again with --overwrite" if args.command == "demo" else "run it again with --resume"
        if stop.main_process:
            print(f"vipriors-hub {args.command}: {stop}; {again} (exit status {EXIT_PREEMPTED}).", file=sys.stderr)
        return EXIT_PREEMPTED
