"""Set-up of a phase for training: timm's optimizer and schedule, accelerate's preparation, compilation."""

from pathlib import Path
from typing import Any

import timm.optim
import torch
from accelerate import Accelerator
from timm.scheduler import CosineLRScheduler, StepLRScheduler
from timm.scheduler.scheduler import Scheduler
from torch import nn

from .phase import RunContext, TrainingPhase
from .run import learning_rate
from .settings import TrainSettings

__all__ = ["FUSED_OPTIMIZERS", "create_scheduler", "prepare_phase"]

FUSED_OPTIMIZERS = ("sgd", "nesterov", "momentum", "adam", "adamw")
"""timm optimizer names whose torch optimizer has a fused CUDA kernel (used on a GPU)."""


def create_scheduler(
    optimizer: torch.optim.Optimizer, settings: TrainSettings, steps_per_epoch: int, total_steps: int
) -> Scheduler:
    """timm's cosine or step schedule, updated per optimizer step, with linear warm-up."""
    warmup = settings.warmup_epochs * steps_per_epoch
    if settings.schedule == "step":
        return StepLRScheduler(
            optimizer,
            decay_t=settings.step_epochs * steps_per_epoch,
            decay_rate=0.1,
            warmup_t=warmup,
            t_in_epochs=False,
        )
    return CosineLRScheduler(optimizer, t_initial=total_steps, lr_min=0.0, warmup_t=warmup, t_in_epochs=False)


def prepare_phase(
    phase: TrainingPhase,
    settings: TrainSettings,
    accelerator: Accelerator,
    steps_per_epoch: int,
    total_steps: int,
    output: Path = Path("."),
    sections: dict[str, Any] | None = None,
) -> tuple[nn.Module, torch.optim.Optimizer, Scheduler]:
    """Create the optimizer (timm's ``create_optimizer_v2``; weight decay on every parameter, as the
    paper; fused kernels on a GPU) and the schedule, prepare the model with ``accelerator``, start the
    phase and compile it. channels_last and compilation are on on a GPU and off on a CPU unless the
    settings say otherwise. Returns the prepared model, optimizer and scheduler."""
    on_gpu = accelerator.device.type == "cuda"
    if on_gpu:
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    optimizer = timm.optim.create_optimizer_v2(
        phase.model,
        opt=settings.opt,
        lr=learning_rate(settings, accelerator.num_processes),
        weight_decay=settings.weight_decay,
        momentum=settings.momentum,
        filter_bias_and_bn=False,
        **({"fused": True} if on_gpu and settings.opt in FUSED_OPTIMIZERS else {}),
    )
    scheduler = create_scheduler(optimizer, settings, steps_per_epoch, total_steps)
    channels_last = on_gpu if settings.channels_last is None else settings.channels_last
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model, optimizer = accelerator.prepare(phase.model.to(memory_format=memory_format), optimizer)
    phase.start(RunContext(accelerator, output, sections or {}, steps_per_epoch, memory_format), model)
    if on_gpu if settings.torch_compile is None else settings.torch_compile:
        phase.compile()
    return model, optimizer, scheduler
