"""What a phase of the method gives the training loop: its module, transform and step, and its hooks."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from accelerate import Accelerator
from torch import Tensor, nn

from ..data.batch_transforms import Views

__all__ = ["RunContext", "StepOutput", "StepPosition", "TrainingPhase"]


class StepPosition(NamedTuple):
    """Where a micro-step lies in its run, as the loop passes it: the micro-step's number from the
    start of the run (0-based) and the epoch it belongs to."""

    micro_step: int
    epoch: int


class StepOutput(NamedTuple):
    """What one micro-batch of a phase produced: the scalar loss to back-propagate and named scalar
    metrics (device tensors, averaged over processes when logged)."""

    loss: Tensor
    metrics: Mapping[str, Tensor]


@dataclass
class RunContext:
    """What a phase may read of its run once the loop has set it up."""

    accelerator: Accelerator
    output: Path
    sections: dict[str, Any]
    steps_per_epoch: int
    memory_format: torch.memory_format


class TrainingPhase:
    """A phase of the method as the loop drives it. Subclasses set ``name``, ``model`` (the module the
    optimizer trains) and ``views`` (its training augmentation in both data pipelines) and implement
    :meth:`training_step`; the other hooks do nothing unless overridden."""

    name: str
    model: nn.Module
    views: Views

    def start(self, context: RunContext, model: nn.Module) -> None:
        """Called once before the first step with the run and the prepared (wrapped) ``model``."""
        self.context = context
        self.model = model

    def train(self) -> None:
        """Put the phase's modules into training mode."""
        self.model.train()

    def compile(self) -> None:
        """``torch.compile`` the networks of the step in place (``--torchcompile``)."""
        self.model.compile()

    def training_step(self, batch: Any, position: StepPosition) -> StepOutput:
        """Forward one micro-batch (as the loader gives it: images on the device, labels on the CPU)
        and return its loss."""
        raise NotImplementedError

    def step_kind(self, position: StepPosition) -> str:
        """The kind of micro-step at ``position``: micro-steps of one kind run the same networks on
        the same shapes, so they cost the same FLOPs (e.g. a student before and after distillation
        starts)."""
        return self.name

    def after_micro_step(self) -> None:
        """Called after every micro-batch's backward (e.g. to enqueue keys)."""

    def after_optimizer_step(self) -> None:
        """Called after every optimizer step (e.g. a momentum update)."""

    def end_of_epoch(self, step: int) -> dict[str, float]:
        """Called at the end of every epoch; returns scores to log (e.g. validation top-1)."""
        return {}

    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Tensors and JSON-able values a checkpoint keeps besides the model and optimizer."""
        return {}, {}

    def load_state(self, tensors: Mapping[str, Tensor], progress: Mapping[str, Any]) -> None:
        """Restore what :meth:`state` returned."""

    def write_final(self, folder: Path, epochs: float) -> None:
        """Write the Hub-ready folder of the model after ``epochs`` epochs (main process only)."""
        raise NotImplementedError
