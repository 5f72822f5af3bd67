"""The one training loop of both phases, on ``accelerate``.

A phase (teacher, student) is a :class:`TrainingPhase`: its trained module, its transform and its
``training_step``, plus the state it keeps beside the optimizer and what ``final/`` holds. The loop
does the rest, identically for both: start or resume the run, stream the data, accumulate, step,
schedule, guard against divergence, log, checkpoint, finish. Every run writes::

    OUTPUT/config.yaml      the resolved configuration (``--config`` takes it back)
    OUTPUT/metrics.jsonl    one JSON object per logged step and per evaluation
    OUTPUT/checkpoints/     ``step-XXXXXXXX`` folders written by ``accelerator.save_state``
    OUTPUT/final/           a Hub-ready folder (model.safetensors + timm config.json + card)
"""

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import timm.optim
import torch
from accelerate import Accelerator
from timm.scheduler import CosineLRScheduler, StepLRScheduler
from timm.scheduler.scheduler import Scheduler
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..data import DataConfig, DataSplits, ExampleStream, ResumableLoader, load_data
from ..errors import VipriorsError
from .run import (
    CheckpointManager,
    MetricsWriter,
    NonFiniteGuard,
    TrainSettings,
    gradient_accumulation,
    learning_rate,
    open_run,
    plan_steps,
    start_record,
    start_run,
    tracker_config,
)

FUSED_OPTIMIZERS = ("sgd", "nesterov", "momentum", "adam", "adamw")
"""timm optimizer names whose torch optimizer has a fused CUDA kernel (used on a GPU)."""

__all__ = [
    "RunContext",
    "StepOutput",
    "TrainingPhase",
    "create_scheduler",
    "fit",
    "prepare_phase",
    "train_micro_step",
]


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
    optimizer trains) and ``transform`` and implement :meth:`training_step`; the other hooks do
    nothing unless overridden."""

    name: str
    model: nn.Module
    transform: Callable[[Any], Any]

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

    def training_step(self, batch: Any, micro_step: int) -> StepOutput:
        """Forward one micro-batch (as the loader gives it, on the CPU) and return its loss."""
        raise NotImplementedError

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

    def write_final(self, folder: Path) -> None:
        """Write the Hub-ready folder of the finished run (main process only)."""
        raise NotImplementedError


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


def train_micro_step(
    accelerator: Accelerator,
    phase: TrainingPhase,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Any,
    micro_step: int,
) -> StepOutput:
    """One micro-batch of training: forward, backward and, when ``accelerator`` ends an accumulation
    cycle, the optimizer step and the phase's post-step hook. The benchmarks time this function."""
    with accelerator.accumulate(model):
        output = phase.training_step(batch, micro_step)
        accelerator.backward(output.loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    phase.after_micro_step()
    if accelerator.sync_gradients:
        phase.after_optimizer_step()
    return output


def fit(
    settings: TrainSettings,
    data_config: DataConfig,
    build_phase: Callable[[Accelerator, DataSplits], TrainingPhase],
) -> Path:
    """Train the phase that ``build_phase`` makes for the accelerator and data; return ``OUTPUT/final``.

    Raises:
        VipriorsError: bad configuration or data, a different run in the output folder, nothing to
            resume, or divergence (the last good checkpoint is kept).
    """
    accelerator, settings, resume_from = start_run(settings, data_config.seed)
    output = Path(settings.output)
    with accelerator.main_process_first():
        data = load_data(data_config)
    phase = build_phase(accelerator, data)
    stream = ExampleStream(
        data.splits["train"],
        phase.transform,
        shuffle=True,
        seed=data_config.seed,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        batch_size=settings.batch_size,
    )
    loader = ResumableLoader(
        stream, num_workers=settings.num_workers, drop_last=True, pin_memory=accelerator.device.type == "cuda"
    )
    accumulation = gradient_accumulation(settings, accelerator, len(loader))
    on_gpu = accelerator.device.type == "cuda"
    settings = dataclasses.replace(
        settings,
        gradient_accumulation_steps=accumulation,
        channels_last=on_gpu if settings.channels_last is None else settings.channels_last,
        torch_compile=on_gpu if settings.torch_compile is None else settings.torch_compile,
    )
    steps_per_epoch, total_steps = plan_steps(
        len(loader), len(stream), settings.batch_size, accumulation, settings.epochs, settings.max_steps
    )
    sections = open_run(accelerator, output, {"data": data_config, "train": settings}, settings)
    model, optimizer, scheduler = prepare_phase(
        phase, settings, accelerator, steps_per_epoch, total_steps, output, sections
    )

    checkpoints = CheckpointManager(accelerator, output / "checkpoints")
    metrics = MetricsWriter(output / "metrics.jsonl", accelerator.is_main_process)
    guard = NonFiniteGuard(accelerator, model)
    step = micro_step = 0
    if settings.resume:
        checkpoint = resume_from or checkpoints.latest()
        if checkpoint is None:
            raise VipriorsError(f"--resume: no complete checkpoint in {output / 'checkpoints'}.")
        tensors, progress = checkpoints.load(checkpoint)
        phase.load_state(tensors, progress)
        step = progress["step"]
        micro_step = progress.get("micro_step", step * accumulation)
        loader.load_state_dict(progress["loader"])
        for abandoned in checkpoints.discard_after(step):
            accelerator.print(f"Deleted {abandoned}: the run continues from the older {checkpoint.name}.")
        accelerator.print(f"Resumed from {checkpoint} at step {step}.")
    metrics.write(
        start_record(accelerator, settings, learning_rate(settings, accelerator.num_processes), step, total_steps)
    )
    scheduler.step_update(step)
    accelerator.init_trackers(phase.name, config=tracker_config(sections))

    with tqdm(
        total=total_steps, initial=step, disable=not accelerator.is_local_main_process, desc=phase.name
    ) as progress_bar:
        phase.train()
        window_start, window_images = time.perf_counter(), 0
        while step < total_steps:
            for batch in loader:
                output_step = train_micro_step(accelerator, phase, model, optimizer, batch, micro_step)
                micro_step += 1
                window_images += settings.batch_size * accelerator.num_processes
                if not accelerator.sync_gradients:
                    continue
                step += 1
                scheduler.step_update(step)
                guard.observe(output_step.loss, step)
                progress_bar.update(1)
                if step % settings.log_every == 0 or step == total_steps:
                    guard.check(checkpoints, step)
                    record = {
                        "step": step,
                        "epoch": step / steps_per_epoch,
                        "loss": accelerator.reduce(output_step.loss.detach().float(), reduction="mean").item(),
                        **{
                            name: accelerator.reduce(value.detach().float(), reduction="mean").item()
                            for name, value in output_step.metrics.items()
                        },
                        "lr": optimizer.param_groups[0]["lr"],
                        "images_per_second": window_images / (time.perf_counter() - window_start),
                    }
                    metrics.write(record)
                    accelerator.log({k: v for k, v in record.items() if k != "step"}, step=step)
                    progress_bar.set_postfix(loss=f"{record['loss']:.3f}")
                    window_start, window_images = time.perf_counter(), 0
                end_of_epoch = step % steps_per_epoch == 0 or step == total_steps
                if end_of_epoch or step % settings.checkpoint_every == 0:
                    guard.check(checkpoints, step)
                if end_of_epoch:
                    scores = phase.end_of_epoch(step)
                    if scores:
                        metrics.write({"step": step, "epoch": step / steps_per_epoch, **scores})
                        accelerator.log(scores, step=step)
                if end_of_epoch or step % settings.checkpoint_every == 0:
                    tensors, progress = phase.state()
                    state = {**progress, "step": step, "micro_step": micro_step, "loader": loader.state_dict()}
                    checkpoints.save(step, tensors, state)
                if step >= total_steps:
                    break

    final = output / "final"
    if accelerator.is_main_process:
        phase.write_final(final)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final
