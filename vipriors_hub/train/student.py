"""Phase 2: self-distillation of the teacher into a student classifier (OFD + cross-entropy).

The student has the teacher's architecture and starts from its weights (``--init teacher``); the
frozen teacher's pre-ReLU stage features are distilled with OFD from epoch ``no_distill_epochs``
on, next to label-smoothed cross-entropy. With ``--init scratch --distill-weight 0`` and no
teacher it is the plain supervised baseline.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import timm
import torch
from accelerate import Accelerator
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from torch import Tensor, nn

from ..data import DataConfig, DataSplits, student_views
from ..data.settings import check_batch_policy, pipeline_for
from ..errors import VipriorsError
from ..evaluate import validation_scores
from ..hub import family_architecture, load_model_folder, write_run_model
from ..losses import partial_l2
from .distill import FrozenTeacher, StudentWithConnectors, student_from_teacher
from .loop import fit, write_model_folder_of
from .phase import RunContext, StepOutput, StepPosition, TrainingPhase
from .result import FitResult

if TYPE_CHECKING:
    from .dry_run import RunEstimate
from .run_folder import document
from .settings import check_architecture
from .student_settings import StudentConfig

__all__ = ["StudentConfig", "StudentPhase", "train_student"]


class StudentPhase(TrainingPhase):
    """Label-smoothed cross-entropy (or mixup's soft targets) plus, from epoch ``no_distill_epochs``
    on, ``distill_weight`` x OFD against the frozen teacher. Batches are ``(images (B, 3, H, W),
    labels (B,))``. Validates every epoch and keeps the best classifier in ``OUTPUT/best``."""

    name = "student"

    def __init__(self, config: StudentConfig, arch: str, teacher: nn.Module | None, data: DataSplits) -> None:
        self.config, self.architecture, self.data = config, arch, data
        distill = teacher is not None and config.distill_weight > 0
        student = student_from_teacher(arch, teacher, len(data.class_names), config.init)
        self.model = StudentWithConnectors(student, teacher if distill else None)
        if distill and config.compile_loss:
            self.model.ofd.distance = torch.compile(partial_l2)
        self.teacher = FrozenTeacher(teacher, config.teacher_bn) if distill else None
        data_config = timm.data.resolve_data_config({}, model=student)
        self.views = student_views(config.resolution, data_config, config.auto_augment, config.reprob)
        mixing = dict(mixup_alpha=config.mixup, cutmix_alpha=config.cutmix, label_smoothing=config.label_smoothing)
        self.mixup = Mixup(**mixing, num_classes=len(data.class_names)) if config.mixup or config.cutmix else None
        self.criterion = SoftTargetCrossEntropy() if self.mixup else LabelSmoothingCrossEntropy(config.label_smoothing)
        self.best_top1, self.scores = -1.0, {}

    def start(self, context: RunContext, model: nn.Module) -> None:
        super().start(context, model)
        self.accelerator = context.accelerator
        if self.teacher is not None:
            self.teacher.to(context.accelerator.device, memory_format=context.memory_format)

    def compile(self) -> None:
        super().compile()
        if self.teacher is not None:
            self.teacher.compile()

    def step_kind(self, position: StepPosition) -> str:
        """``distill`` once the teacher runs in the step, ``supervised`` before."""
        return "distill" if self._distilling(position.epoch) else "supervised"

    def _distilling(self, epoch: int) -> bool:
        return self.teacher is not None and epoch >= self.config.no_distill_epochs

    def training_step(self, batch: Any, position: StepPosition) -> StepOutput:
        images, labels = (tensor.to(self.accelerator.device, non_blocking=True) for tensor in batch)
        images = targets = images.contiguous(memory_format=self.context.memory_format)
        images, targets = self.mixup(images, labels) if self.mixup is not None else (images, labels)
        distilling = self._distilling(position.epoch)
        with self.accelerator.autocast():
            teacher_features = self.teacher(images) if distilling else None
            logits, distance = self.model(images, teacher_features)
            cross_entropy = self.criterion(logits.float(), targets)
            distillation = self.config.distill_weight * distance if distilling else distance
        metrics = {"cross_entropy": cross_entropy.detach(), "distillation": distillation.detach()}
        return StepOutput(cross_entropy + distillation, metrics)

    def end_of_epoch(self, step: int) -> dict[str, float]:
        """Top-1 / top-5 on the held-out split (if any); a new best is exported to ``OUTPUT/best``."""
        if "val" not in self.data.splits:
            return {}
        student, config = self.accelerator.unwrap_model(self.model).student, self.config
        loading = (config.resolution, config.batch_size, config.num_workers, self.accelerator)
        self.scores = validation_scores(student, self.data.splits["val"], *loading)
        if self.scores["top1"] > self.best_top1:
            self.best_top1 = self.scores["top1"]
            epochs = step / self.context.steps_per_epoch
            write_model_folder_of(self, self.context.output / "best", self.accelerator, epochs)
        return {f"val_{name}": value for name, value in self.scores.items()}

    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        return {}, {"best_top1": self.best_top1, "scores": self.scores}

    def load_state(self, tensors: Mapping[str, Tensor], progress: Mapping[str, Any]) -> None:
        self.best_top1, self.scores = progress["best_top1"], progress.get("scores", {})

    def write_final(self, folder: Path, epochs: float) -> None:
        """The classifier (without connectors), with a card that reports the last validation scores."""
        student = self.accelerator.unwrap_model(self.model).student
        results = [{"split": "val", **self.scores}] if self.scores else []
        run = (document(self.context.sections), epochs, results, self.data.class_names)
        write_run_model(student, folder, "student", self.architecture, self.config.resolution, *run)


def train_student(config: StudentConfig, data_config: DataConfig) -> "FitResult | RunEstimate":
    """Train the student; return what the run did (its ``final``: ``OUTPUT/final``, the classifier of
    the last epoch, Hub-ready).

    ``OUTPUT/best`` holds the classifier with the best validation top-1.

    With ``--dry-run`` it returns the run's :class:`~vipriors_hub.train.dry_run.RunEstimate` instead
    (nothing written).

    Raises:
        VipriorsError: bad configuration or data, a different run in the output folder (or one still
            running there), nothing to resume, divergence or a write the disk refused (the last good
            checkpoint is kept).
        RunPreempted: SIGTERM / SIGUSR1; ``--resume`` continues from the checkpoint it names.
    """
    teacher = load_model_folder(config.teacher, expect="teacher") if config.teacher else None
    architecture = config.architecture or (family_architecture(config.teacher) if teacher is not None else None)
    if architecture is None:
        raise VipriorsError("Without --teacher, name the student's --model.")
    check_architecture(architecture)
    device_type = "cuda" if torch.cuda.is_available() and not config.cpu else "cpu"
    if pipeline_for(data_config.data_pipeline, device_type) == "device":
        check_batch_policy(config.auto_augment)

    def build(accelerator: Accelerator, data: DataSplits, settings: StudentConfig) -> StudentPhase:
        return StudentPhase(settings, architecture, teacher, data)

    if config.dry_run:
        from .dry_run import estimate_run

        return estimate_run(config, data_config, build, ("train", "val"))
    return fit(config, data_config, build, ("train", "val"))
