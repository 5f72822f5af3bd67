"""``vipriors-hub demo``: the whole method on real data-deficient data, offline, on a CPU.

Fashion-MNIST (shipped with the package: 50 training images per class and the official 10k test
set) is learned three ways with the same architecture and input size:

* baseline: supervised from scratch (cross-entropy only);
* teacher: MoCo v2 with the margin loss on the 500 training images, without labels, scored by
  kNN and a linear probe on its frozen features;
* student: started from the teacher and trained with cross-entropy + OFD distillation.

Every arm trains on the training part (40 images per class) and is scored on the 10k test set;
the held-out part (10 per class) is only used for the per-epoch validation curves.
"""

import importlib.resources
import json
from dataclasses import dataclass, field
from pathlib import Path

from .config import check_settings
from .data import DataConfig
from .errors import VipriorsError
from .evaluate import TeacherEvalConfig, evaluate_students, evaluate_teacher
from .hub import export_run
from .outputs import check_model_destination, write_text_atomically
from .train.student import StudentConfig, train_student
from .train.teacher import TeacherConfig, train_teacher

__all__ = ["DemoConfig", "check_demo_destination", "demo_data_config", "run_arms", "run_demo"]


@dataclass
class DemoConfig:
    """Budgets of the demo; the defaults fit in about 15 minutes on 2 CPU cores."""

    output: str = field(default="vipriors-demo", metadata={"help": "output folder"})
    architecture: str = field(default="vipriors_resnet_tiny", metadata={"help": "a vipriors_* model"})
    resolution: int = field(default=32, metadata={"help": "input size in px", "min": 8, "max": 4096})
    teacher_epochs: int = field(default=150, metadata={"help": "teacher epochs", "min": 1})
    student_epochs: int = field(default=60, metadata={"help": "student and baseline epochs", "min": 1})
    batch_size: int = field(default=64, metadata={"help": "images per step", "min": 1})
    margin: float = field(default=0.4, metadata={"help": "margin of the contrastive loss", "min": 0})
    queue_size: int = field(default=256, metadata={"help": "teacher queue size", "min": 0, "max": 2**20})
    num_workers: int = field(default=0, metadata={"help": "DataLoader workers", "min": 0, "max": 256})
    overwrite: bool = field(default=False, metadata={"help": "replace the runs of an earlier demo in --output"})

    def __post_init__(self) -> None:
        check_settings(self)


def demo_data_config() -> DataConfig:
    """The shipped Fashion-MNIST subset: 50 training images per class (10 held out), seed 0."""
    folder = importlib.resources.files("vipriors_hub.demo_data")
    return DataConfig(dataset="fashion-mnist", data_dir=str(folder), per_class=50, val_per_class=10, seed=0)


def _teacher_config(config: DemoConfig, output: Path) -> TeacherConfig:
    return TeacherConfig(
        output=str(output),
        architecture=config.architecture,
        resolution=config.resolution,
        epochs=config.teacher_epochs,
        batch_size=config.batch_size,
        base_lr=0.12,
        margin=config.margin,
        queue_size=config.queue_size,
        key_momentum=0.99,
        gradient_accumulation_steps=1,
        num_workers=config.num_workers,
        log_every=5,
        checkpoint_every=10_000,
        report_to="none",
        overwrite=config.overwrite,
    )


def _student_config(config: DemoConfig, output: Path, teacher: Path | None) -> StudentConfig:
    return StudentConfig(
        output=str(output),
        teacher=str(teacher) if teacher else None,
        architecture=config.architecture,
        init="teacher" if teacher else "scratch",
        distill_weight=1e-4 if teacher else 0.0,
        resolution=config.resolution,
        epochs=config.student_epochs,
        no_distill_epochs=5,
        batch_size=config.batch_size,
        schedule="cosine",
        warmup_epochs=2,
        gradient_accumulation_steps=1,
        num_workers=config.num_workers,
        log_every=5,
        checkpoint_every=10_000,
        report_to="none",
        overwrite=config.overwrite,
    )


def _read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def plot(output: Path, results: dict[str, float]) -> Path:
    """Learning curves of the three arms and the test accuracies as bars, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (curves, losses, bars) = plt.subplots(1, 3, figsize=(15, 4.2))
    for arm in ("baseline", "student"):
        records = [r for r in _read_metrics(output / arm) if "val_top1" in r]
        curves.plot([r["epoch"] for r in records], [r["val_top1"] for r in records], label=arm)
    curves.set(title="held-out validation top-1 (%)", xlabel="epoch")
    curves.legend()
    records = [r for r in _read_metrics(output / "teacher") if "loss" in r]
    losses.plot([r["epoch"] for r in records], [r["loss"] for r in records], color="tab:green")
    losses.set(title="teacher: margin contrastive loss", xlabel="epoch")
    names = {
        "baseline_top1": "baseline\n(scratch)",
        "teacher_knn_top1": "teacher\nkNN",
        "teacher_linear_top1": "teacher\nlinear",
        "student_top1": "student\n(distilled)",
    }
    bars.bar(
        list(names.values()), [results[key] for key in names], color=["grey", "tab:green", "tab:olive", "tab:blue"]
    )
    for index, key in enumerate(names):
        bars.text(index, results[key] + 0.5, f"{results[key]:.1f}", ha="center")
    bars.set(title="Fashion-MNIST test top-1 (%), 50 images/class", ylim=(0, 100))
    figure.tight_layout()
    path = output / "results.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def run_arms(config: DemoConfig, data: DataConfig, arms: tuple[str, ...] = ("baseline", "teacher", "student")) -> dict:
    """Train and score the requested arms under ``config.output``; return their test accuracies (percent)
    and the validation accuracy of the last epoch of each supervised arm."""
    output = Path(config.output)
    evaluations = output / "evaluations"
    evaluations.mkdir(parents=True, exist_ok=True)
    results: dict[str, float] = {}
    if "baseline" in arms:
        baseline = train_student(_student_config(config, output / "baseline", None), data)
        scores = evaluate_students([str(baseline)], data, "test", evaluations / "baseline.json", num_workers=0)
        results["baseline_top1"] = scores["top1"]
        results["baseline_val_top1"] = _last_validation(output / "baseline")
    if "teacher" in arms:
        teacher = train_teacher(_teacher_config(config, output / "teacher"), data)
        probe = TeacherEvalConfig(
            checkpoint=str(teacher), output=str(evaluations / "teacher.json"), split="test", num_workers=0
        )
        scores = evaluate_teacher(probe, data)
        results["teacher_knn_top1"], results["teacher_linear_top1"] = scores["knn"]["top1"], scores["linear"]["top1"]
    if "student" in arms:
        student = train_student(_student_config(config, output / "student", output / "teacher" / "final"), data)
        scores = evaluate_students([str(student)], data, "test", evaluations / "student.json", num_workers=0)
        results["student_top1"] = scores["top1"]
        results["student_val_top1"] = _last_validation(output / "student")
    return results


def _last_validation(run: Path) -> float:
    return [r for r in _read_metrics(run) if "val_top1" in r][-1]["val_top1"]


DEMO_ENTRIES = frozenset({"baseline", "teacher", "student", "evaluations", "hub", "results.json", "results.png"})


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


def run_demo(config: DemoConfig) -> dict[str, float]:
    """Run the three arms; write ``results.json``, ``results.png`` and Hub-ready ``hub/teacher``, ``hub/student``.

    Returns the four test accuracies (percent): ``baseline_top1``, ``teacher_knn_top1``,
    ``teacher_linear_top1``, ``student_top1``.
    """
    output = Path(config.output)
    check_demo_destination(output)
    measured = run_arms(config, demo_data_config())
    keys = ("baseline_top1", "teacher_knn_top1", "teacher_linear_top1", "student_top1")
    results = {key: measured[key] for key in keys}
    write_text_atomically(output / "results.json", json.dumps(results, indent=2))
    plot(output, results)
    evaluations = output / "evaluations"
    export_run(output / "teacher", output / "hub" / "teacher", [evaluations / "teacher.json"])
    export_run(output / "student", output / "hub" / "student", [evaluations / "student.json"])
    return results
