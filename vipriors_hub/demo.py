"""``vipriors-hub demo``: the whole method on real data-deficient data, offline, on a CPU.

Fashion-MNIST (shipped with the package: 50 training images per class and the official 10k test
set; or the full IDX files with ``--data-dir`` and another draw with ``--seed``) is learned with the
same architecture, input size and batch by four arms:

* baseline, paper protocol: supervised from scratch for the student's epochs;
* teacher: MoCo v2 with the margin loss on the training images, without labels, scored by kNN and a
  linear probe on its frozen features;
* student: started from the teacher and trained with cross-entropy + OFD distillation;
* baseline, equal compute: supervised from scratch for as much training compute as the teacher's
  and the student's training took together, counted in FLOPs (forward and backward of every network
  each step runs, ``torch.utils.flop_counter``): its steps are the pipeline's training FLOPs over the
  paper-protocol baseline's FLOPs per step. Counted, not timed, so that the same seed gives the
  same budget and the same table on every machine; the wall seconds are reported beside them.

Every arm trains on the training part and is scored on the 10k test set; the held-out part
(``val_per_class`` images per class) gives the validation curves, and the defaults were chosen on
such a held-out part by ``benchmarks/tune_demo.py``, never on the test set.
"""

import importlib.resources
import json
import math
from pathlib import Path

import torch

from .data import DataConfig
from .demo_figure import plot_results
from .demo_settings import ALIASES, DemoConfig, baseline_run_config, student_run_config, teacher_run_config
from .errors import VipriorsError
from .evaluate import EvaluateConfig, TeacherEvalConfig, evaluate_students, evaluate_teacher
from .hub import export_run
from .outputs import check_model_destination, write_text_atomically
from .train.result import FitResult
from .train.student import train_student
from .train.teacher import train_teacher

__all__ = [
    "ALIASES",
    "ARMS",
    "RESULT_KEYS",
    "DemoConfig",
    "baseline_run_config",
    "check_demo_destination",
    "demo_data_config",
    "equal_compute_budget",
    "run_arms",
    "run_demo",
    "student_run_config",
    "teacher_run_config",
]

ARMS = ("baseline", "teacher", "student", "baseline_equal_compute")
RESULT_KEYS = (
    "baseline_top1",
    "baseline_equal_compute_top1",
    "teacher_knn_top1",
    "teacher_linear_top1",
    "student_top1",
)


def demo_data_config(config: DemoConfig | None = None) -> DataConfig:
    """The demo's data: the shipped Fashion-MNIST subset (50 training images per class, 10 held out,
    seed 0) unless ``config`` names other IDX files, another draw or other sizes."""
    config = config or DemoConfig()
    folder = config.data_dir or str(importlib.resources.files("vipriors_hub.demo_data"))
    return DataConfig(
        dataset="fashion-mnist",
        data_dir=folder,
        per_class=config.per_class,
        val_per_class=config.val_per_class,
        seed=config.seed,
        data_pipeline=config.data_pipeline,
        cache_dir=config.cache_dir,
        decode_max_side=config.decode_max_side,
    )


def _compute(result: FitResult) -> dict[str, float | int | None]:
    """What an arm's training cost: FLOPs, optimizer steps, images drawn and (as information) wall seconds."""
    return {
        "train_flops": result.train_flops,
        "steps": result.steps,
        "images_seen": result.images_seen,
        "train_seconds": result.train_seconds,
    }


def equal_compute_budget(teacher: FitResult, student: FitResult, baseline: FitResult) -> dict[str, float | int]:
    """The equal-compute baseline's budget: as many of the paper-protocol ``baseline``'s steps as the
    ``teacher``'s and the ``student``'s training FLOPs together pay for (at least one), and its epochs;
    the wall seconds of the same runs beside it, as information.

    Raises:
        VipriorsError: a run whose FLOPs were not counted (resumed from an older version's checkpoint).
    """
    runs = {"teacher": teacher, "student": student, "baseline": baseline}
    uncounted = [name for name, run in runs.items() if run.train_flops is None]
    if uncounted:
        raise VipriorsError(
            f"The {', '.join(uncounted)} run(s) did not count their FLOPs (resumed from an older version's "
            "checkpoint): run the demo again with --overwrite."
        )
    pipeline = teacher.train_flops + student.train_flops
    per_step = baseline.train_flops / baseline.steps
    steps = max(1, round(pipeline / per_step))
    return {
        "pipeline_train_flops": pipeline,
        "baseline_flops_per_step": per_step,
        "steps": steps,
        "epochs": steps / baseline.steps_per_epoch,
        "budget_flops": steps * per_step,
        "pipeline_train_seconds": teacher.train_seconds + student.train_seconds,
        "baseline_seconds_per_step": baseline.train_seconds / baseline.steps,
    }


def run_arms(config: DemoConfig, data: DataConfig, arms: tuple[str, ...] = ARMS) -> dict:
    """Train and score the requested arms under ``config.output``.

    Returns the test top-1 of each arm (percent, keys of :data:`RESULT_KEYS`), the last validation
    top-1 of each supervised arm (``*_val_top1``), ``compute`` (per arm: training FLOPs, optimizer
    steps, images drawn, wall seconds) and, with the equal-compute arm, ``equal_compute`` (how its
    budget was set from the counted costs, :func:`equal_compute_budget`).

    Raises:
        VipriorsError: the equal-compute arm asked for without the three arms it is measured against.
    """
    config.check_pipeline("cuda" if torch.cuda.is_available() else "cpu")
    output = Path(config.output)
    evaluations = output / "evaluations"
    evaluations.mkdir(parents=True, exist_ok=True)
    results: dict = {"compute": {}}
    runs: dict[str, FitResult] = {}

    def score_classifier(arm: str, run: FitResult) -> None:
        runs[arm] = run
        results["compute"][arm] = _compute(run)
        scoring = EvaluateConfig(
            checkpoint=[str(run.final)],
            split="test",
            output=str(evaluations / f"{arm}.json"),
            num_workers=config.num_workers,
        )
        scores = evaluate_students(scoring, data)
        results[f"{arm}_top1"] = scores["top1"]
        results[f"{arm}_val_top1"] = run.validation["top1"]

    if "baseline" in arms:
        score_classifier("baseline", train_student(baseline_run_config(config, output / "baseline"), data))
    if "teacher" in arms:
        runs["teacher"] = train_teacher(teacher_run_config(config, output / "teacher"), data)
        results["compute"]["teacher"] = _compute(runs["teacher"])
        probe = TeacherEvalConfig(
            checkpoint=str(runs["teacher"].final),
            output=str(evaluations / "teacher.json"),
            split="test",
            num_workers=config.num_workers,
        )
        scores = evaluate_teacher(probe, data)
        results["teacher_knn_top1"], results["teacher_linear_top1"] = scores["knn"]["top1"], scores["linear"]["top1"]
    if "student" in arms:
        student_config = student_run_config(config, output / "student", output / "teacher" / "final")
        score_classifier("student", train_student(student_config, data))
    if "baseline_equal_compute" in arms:
        if not {"baseline", "teacher", "student"} <= set(runs):
            raise VipriorsError(
                "The equal-compute baseline is measured against the baseline, teacher and student arms."
            )
        budget = equal_compute_budget(runs["teacher"], runs["student"], runs["baseline"])
        results["equal_compute"] = budget
        epochs = math.ceil(budget["steps"] / runs["baseline"].steps_per_epoch)
        arm_config = baseline_run_config(config, output / "baseline_equal_compute", epochs, max_steps=budget["steps"])
        score_classifier("baseline_equal_compute", train_student(arm_config, data))
    return results


DEMO_ENTRIES = frozenset({*ARMS, "evaluations", "hub", "results.json", "results.png"})


def check_demo_destination(output: Path) -> None:
    """Refuse, before any training, an output that is a file or holds what the demo does not write."""
    if output.exists() and not output.is_dir():
        raise VipriorsError(f"--output {output} is a file: name a folder for the demo.")
    if output.is_dir():
        foreign = sorted(entry.name for entry in output.iterdir() if entry.name not in DEMO_ENTRIES)
        if foreign:
            raise VipriorsError(
                f"--output {output} holds files the demo does not write ({', '.join(foreign[:5])}): "
                "choose a new or empty folder (nothing in it is deleted)."
            )
    for phase in ("teacher", "student"):
        check_model_destination(output / "hub" / phase)


def run_demo(config: DemoConfig) -> dict:
    """Run the four arms; write ``results.json``, ``results.png`` and Hub-ready ``hub/teacher``, ``hub/student``.

    Returns what ``results.json`` holds: the five test accuracies of :data:`RESULT_KEYS` (percent),
    the validation accuracies, the compute each arm used, how the equal-compute budget was set, and
    the data and settings of the run.
    """
    output = Path(config.output)
    check_demo_destination(output)
    data = demo_data_config(config)
    measured = run_arms(config, data)
    results = {key: measured[key] for key in RESULT_KEYS}
    results.update({key: value for key, value in measured.items() if key not in results})
    results["data"] = {
        "source": "shipped subset" if config.data_dir is None else "Fashion-MNIST IDX files",
        "seed": config.seed,
        "train_per_class": config.per_class - config.val_per_class,
        "val_per_class": config.val_per_class,
        "test_images": 10_000,
    }
    write_text_atomically(output / "results.json", json.dumps(results, indent=2))
    plot_results(output, results)
    evaluations = output / "evaluations"
    export_run(output / "teacher", output / "hub" / "teacher", [evaluations / "teacher.json"])
    export_run(output / "student", output / "hub" / "student", [evaluations / "student.json"])
    return results
