"""What the benchmarks share: the trainer's own phases, set up as ``fit`` sets them up, without data."""

from pathlib import Path
from typing import Any

import timm
import torch
from accelerate import Accelerator
from torch import nn

import vipriors_hub  # noqa: F401  (registers the family)
from vipriors_hub.data import DataSplits
from vipriors_hub.train.loop import train_micro_step
from vipriors_hub.train.phase import StepPosition, TrainingPhase
from vipriors_hub.train.prepare import prepare_phase
from vipriors_hub.train.student import StudentConfig, StudentPhase
from vipriors_hub.train.teacher import TeacherConfig, TeacherPhase


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()


class TrainerStep:
    """One optimizer step of a trainer's phase, exactly as ``fit`` runs it (``train_micro_step``)."""

    def __init__(self, phase: TrainingPhase, settings: Any, accelerator: Accelerator) -> None:
        self.phase, self.accelerator = phase, accelerator
        self.model, self.optimizer, _ = prepare_phase(
            phase, settings, accelerator, steps_per_epoch=1_000_000, total_steps=1_000_000, output=Path(".")
        )
        self.micro_step = 0
        phase.train()

    def __call__(self, batch: Any) -> torch.Tensor:
        """Train on ``batch`` (as the phase's loader gives it) and return the detached loss."""
        position = StepPosition(self.micro_step, epoch=0)
        output = train_micro_step(self.accelerator, self.phase, self.model, self.optimizer, batch, position)
        self.micro_step += 1
        return output.loss.detach()


def teacher_step(accelerator: Accelerator, **settings: Any) -> TrainerStep:
    """The teacher phase's step (``TeacherConfig`` fields as keyword arguments; one micro-batch per step)."""
    config = TeacherConfig(gradient_accumulation_steps=1, cpu=accelerator.device.type == "cpu", **settings)
    return TrainerStep(TeacherPhase(config, accelerator, seed=0), config, accelerator)


def student_step(accelerator: Accelerator, classes: int, teacher: nn.Module | None, **settings: Any) -> TrainerStep:
    """The student phase's step distilling from ``teacher`` from the first step (``StudentConfig`` fields
    as keyword arguments); ``teacher=None`` with ``init="scratch"`` is the plain cross-entropy step."""
    cpu = accelerator.device.type == "cpu"
    config = StudentConfig(gradient_accumulation_steps=1, no_distill_epochs=0, cpu=cpu, **settings)
    architecture = settings["architecture"]
    data = DataSplits(splits={}, class_names=[str(index) for index in range(classes)])
    return TrainerStep(StudentPhase(config, architecture, teacher, data), config, accelerator)


def random_teacher(architecture: str) -> nn.Module:
    """A teacher backbone with random weights (MoCo's initialisation: ``zero_init_last=False``)."""
    return timm.create_model(architecture, num_classes=0, zero_init_last=False)
