"""The demo's settings: its own, and each arm's trainer settings with the demo's defaults (one place).

Light to import like every settings module.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import check_settings
from .data.settings import DATA_PIPELINES, check_batch_policy, pipeline_for
from .errors import VipriorsError
from .train.student_settings import StudentConfig
from .train.teacher_settings import TeacherConfig

__all__ = [
    "ALIASES",
    "BASELINE_DEFAULTS",
    "OWNED_BY_THE_BASELINE",
    "OWNED_BY_THE_DEMO",
    "RUN_DEFAULTS",
    "STUDENT_DEFAULTS",
    "TEACHER_DEFAULTS",
    "DemoConfig",
    "baseline_run_config",
    "student_run_config",
    "teacher_run_config",
]

RUN_DEFAULTS = dict(gradient_accumulation_steps=1, log_every=5, checkpoint_every=10_000, report_to="none")
"""What the demo changes of every arm's trainer defaults: one micro-batch per step, frequent logs, a
checkpoint per epoch only, no tracker."""

TEACHER_DEFAULTS = dict(epochs=50, base_lr=0.12, margin=0.4, queue_size=256, key_momentum=0.99, **RUN_DEFAULTS)
STUDENT_DEFAULTS = dict(
    epochs=180,
    base_lr=0.1,
    distill_weight=1e-4,
    no_distill_epochs=5,
    teacher_bn="eval",
    auto_augment="cifar10",
    reprob=0.0,
    schedule="cosine",
    warmup_epochs=2,
    **RUN_DEFAULTS,
)
BASELINE_DEFAULTS = dict(
    init="scratch",
    distill_weight=0.0,
    base_lr=0.4,
    auto_augment="cifar10",
    reprob=0.0,
    schedule="cosine",
    warmup_epochs=2,
    **RUN_DEFAULTS,
)
"""The demo's defaults of each arm, where they differ from the trainers' (``benchmarks/tune_demo.py``
chose the learning rates, epochs and augmentations on held-out data)."""

OWNED_BY_THE_DEMO = frozenset(
    {"output", "architecture", "resolution", "batch_size", "num_workers", "mixed_precision", "torch_compile"}
    | {"overwrite", "resume", "teacher", "max_steps", "seed"}
)
"""Trainer settings the demo sets for every arm alike (the same network, input and batch for a fair
comparison) or from its own plan (folders, the teacher the student learns from, the equal-compute
arm's steps, the seed of the draw and of training): not settings of an arm."""

OWNED_BY_THE_BASELINE = frozenset({"init", "distill_weight", "epochs"})
"""What makes the baseline the paper's supervised baseline: from scratch, no distillation, the
student's epochs."""

ALIASES = {
    "teacher_epochs": ("teacher", "epochs"),
    "teacher_lr": ("teacher", "base_lr"),
    "margin": ("teacher", "margin"),
    "queue_size": ("teacher", "queue_size"),
    "student_epochs": ("student", "epochs"),
    "student_lr": ("student", "base_lr"),
    "distill_weight": ("student", "distill_weight"),
    "no_distill_epochs": ("student", "no_distill_epochs"),
    "teacher_bn": ("student", "teacher_bn"),
    "student_aa": ("student", "auto_augment"),
    "student_reprob": ("student", "reprob"),
    "baseline_lr": ("baseline", "base_lr"),
    "baseline_aa": ("baseline", "auto_augment"),
    "baseline_reprob": ("baseline", "reprob"),
}
"""The demo's flat setting names of earlier versions (``--teacher-epochs``) and the arm setting each is
now (``--teacher.epochs``)."""


def _arm(name: str, config_class: type, defaults: dict, owned: frozenset[str], help_text: str) -> Any:
    """The demo field of the arm ``name``: its trainer's settings (``--NAME.FLAG`` on the command line),
    the demo's ``defaults``, the settings it does not take (``owned``) and its earlier flat flags."""
    aliases = {setting: ("--" + flat.replace("_", "-"),) for flat, (arm, setting) in ALIASES.items() if arm == name}
    return field(
        default_factory=lambda: config_class(**defaults),
        metadata={"help": help_text, "arm": True, "owned": owned, "aliases": aliases, "defaults": defaults},
    )


@dataclass
class DemoConfig:
    """Data, budgets and settings of the demo; the defaults take about 11 minutes on 2 CPU cores and
    are those ``benchmarks/tune_demo.py`` chose on held-out data.

    ``teacher``, ``student`` and ``baseline`` are the trainers' own settings of each arm (every one
    reachable, ``--teacher.X`` / ``--student.X`` / ``--baseline.X``) but for those the demo sets
    for all arms alike (:data:`OWNED_BY_THE_DEMO`); the equal-compute arm is the baseline's settings
    with the budget the demo counts.
    """

    output: str = field(default="vipriors-demo", metadata={"help": "output folder"})
    data_dir: str | None = field(
        default=None, metadata={"help": "folder with the Fashion-MNIST IDX files (none: the shipped subset)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the draw and of training", "min": 0, "max": 2**32 - 1})
    per_class: int = field(default=50, metadata={"help": "training images per class, held-out included", "min": 2})
    val_per_class: int = field(default=10, metadata={"help": "of --per-class, held out for validation", "min": 1})
    architecture: str = field(default="vipriors_resnet_tiny", metadata={"help": "every arm's vipriors_* model"})
    resolution: int = field(default=32, metadata={"help": "every arm's input size in px", "min": 8, "max": 4096})
    batch_size: int = field(default=64, metadata={"help": "every arm's images per step", "min": 1})
    num_workers: int = field(default=0, metadata={"help": "DataLoader workers", "min": 0, "max": 256})
    data_pipeline: str = field(
        default="device",
        metadata={
            "help": "every arm's data pipeline (device: measured 1.4x faster than pil for the demo's 32 px arms on a "
            "2-core CPU; auto: device on a GPU, pil on a CPU)",
            "choices": DATA_PIPELINES,
        },
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "folder of the decoded cache (none: HF_DATASETS_CACHE)"}
    )
    decode_max_side: int = field(
        default=512,
        metadata={"help": "longer side (px) of images in the decoded cache (device pipeline)", "min": 8, "max": 8192},
    )
    mixed_precision: str | None = field(
        default=None,
        metadata={"help": "every arm's precision (none: accelerate's setting)", "choices": ("no", "fp16", "bf16")},
    )
    torch_compile: bool | None = field(
        default=None,
        metadata={"help": "torch.compile every arm's step (none: on a GPU, not a CPU)", "flags": ("--torchcompile",)},
    )
    overwrite: bool = field(default=False, metadata={"help": "replace the runs of an earlier demo in --output"})
    teacher: TeacherConfig = _arm(
        "teacher", TeacherConfig, TEACHER_DEFAULTS, OWNED_BY_THE_DEMO, "teacher arm (train-teacher's settings)"
    )
    student: StudentConfig = _arm(
        "student", StudentConfig, STUDENT_DEFAULTS, OWNED_BY_THE_DEMO, "student arm (train-student's settings)"
    )
    baseline: StudentConfig = _arm(
        "baseline",
        StudentConfig,
        BASELINE_DEFAULTS,
        OWNED_BY_THE_DEMO | OWNED_BY_THE_BASELINE,
        "baseline arms (train-student's settings; from scratch, no teacher, the student's epochs)",
    )

    def __post_init__(self) -> None:
        check_settings(self)
        if self.val_per_class >= self.per_class:
            raise VipriorsError(f"--val-per-class {self.val_per_class} must be below --per-class {self.per_class}.")
        if self.data_dir is None and self.per_class > 50:
            raise VipriorsError("The shipped subset has 50 images per class: pass --data-dir for more.")
        # Each arm as it will train (with the settings the demo gives every arm), checked before any trains.
        where = Path(self.output)
        runs = {
            "teacher": lambda: teacher_run_config(self, where / "teacher"),
            "student": lambda: student_run_config(self, where / "student", where / "teacher" / "final"),
            "baseline": lambda: baseline_run_config(self, where / "baseline"),
        }
        for arm, build in runs.items():
            try:
                build()
            except VipriorsError as error:
                raise VipriorsError(f"The {arm} arm (--{arm}.*): {error}") from error
        if self.data_pipeline == "device":
            self.check_pipeline("cuda")

    def check_pipeline(self, device_type: str) -> None:
        """Refuse arms the demo's data pipeline on a ``device_type`` device cannot run (an AutoAugment
        policy the device pipeline lacks), before any arm trains.

        Raises:
            VipriorsError: the arm and what it needs.
        """
        if pipeline_for(self.data_pipeline, device_type) != "device":
            return
        for arm in ("student", "baseline"):
            try:
                check_batch_policy(getattr(self, arm).auto_augment)
            except VipriorsError as error:
                raise VipriorsError(f"The {arm} arm (--{arm}.*): {error}") from error

    def setting(self, name: str) -> Any:
        """The value of a demo setting, an arm's (``"teacher.epochs"``) or an earlier version's flat
        name (``"teacher_epochs"``)."""
        arm, _, setting = name.partition(".")
        arm, setting = ALIASES.get(name, (arm, setting))
        return getattr(getattr(self, arm), setting) if setting else getattr(self, arm)

    def with_settings(self, **settings: Any) -> "DemoConfig":
        """A copy with ``settings`` changed, named as :meth:`setting` reads them (``**{"student.aa": ...}``
        by field name: ``**{"student.auto_augment": "original"}``).

        Raises:
            VipriorsError: a value its setting does not allow, or a setting the demo owns.
        """
        demo: dict[str, Any] = {}
        arms: dict[str, dict[str, Any]] = {}
        for name, value in settings.items():
            arm, _, setting = name.partition(".")
            arm, setting = ALIASES.get(name, (arm, setting))
            if not setting:
                demo[name] = value
                continue
            if setting in DemoConfig.__dataclass_fields__[arm].metadata["owned"]:
                raise VipriorsError(f"--{arm}.{setting.replace('_', '-')} is set by the demo for every arm.")
            arms.setdefault(arm, {})[setting] = value
        demo.update({arm: dataclasses.replace(getattr(self, arm), **values) for arm, values in arms.items()})
        return dataclasses.replace(self, **demo)


def _owned(config: DemoConfig, output: Path) -> dict[str, Any]:
    """The settings the demo gives every arm alike."""
    return dict(
        output=str(output),
        architecture=config.architecture,
        resolution=config.resolution,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        mixed_precision=config.mixed_precision,
        torch_compile=config.torch_compile,
        overwrite=config.overwrite,
    )


def teacher_run_config(config: DemoConfig, output: Path) -> TeacherConfig:
    """The demo teacher's settings."""
    return dataclasses.replace(config.teacher, **_owned(config, output))


def student_run_config(config: DemoConfig, output: Path, teacher: Path) -> StudentConfig:
    """The demo student's settings: distilled from ``teacher`` (a teacher's ``final/``)."""
    return dataclasses.replace(config.student, teacher=str(teacher), **_owned(config, output))


def baseline_run_config(
    config: DemoConfig, output: Path, epochs: int | None = None, max_steps: int | None = None
) -> StudentConfig:
    """The supervised baseline's settings: from scratch, no teacher, the student's epochs unless
    ``epochs`` / ``max_steps`` say otherwise (the equal-compute arm)."""
    return dataclasses.replace(
        config.baseline,
        epochs=epochs or config.student.epochs,
        max_steps=max_steps,
        **_owned(config, output),
    )
