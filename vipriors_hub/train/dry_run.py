"""``--dry-run``: the cost of a run before paying it. A few real micro-steps of the configured run
(its data path, model, precision and compilation) are timed for each kind of step the run has (the
student's steps before distillation and with it), and the whole run's wall time is estimated from
them. Nothing is written to the run folder (the decoded cache may be built: the run needs it and
reuses it)."""

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from ..data import DataConfig, DataSplits, ResumableLoader
from .loop import train_micro_step
from .phase import StepPosition, TrainingPhase
from .prepare import prepare_phase
from .run_setup import set_up_run
from .settings import TrainSettings

__all__ = ["DATA_BOUND_SHARE", "RunEstimate", "StepTiming", "estimate_run"]

WARMUP_MICRO_STEPS = 3
"""Micro-steps of each kind run before timing (worker start-up, compilation, cuDNN's kernel search)."""
TIMED_MICRO_STEPS = 10
DATA_BOUND_SHARE = 0.1
"""A run whose steps wait for data more than this share of their time is bounded by its data path."""


@dataclass(frozen=True)
class StepTiming:
    """What the dry run measured of one kind of micro-step, and how many of them the run has."""

    micro_steps: int
    seconds_per_micro_step: float
    data_wait_per_micro_step: float
    warmup_seconds: float


@dataclass(frozen=True)
class RunEstimate:
    """What a dry run measured and what it predicts for the whole run (``main_process``: whether this
    process reports it)."""

    phase: str
    pipeline: str
    processes: int
    images: int
    steps: int
    timings: dict[str, StepTiming] = field(default_factory=dict)
    main_process: bool = True

    @property
    def micro_steps(self) -> int:
        """Micro-steps of the whole run."""
        return sum(timing.micro_steps for timing in self.timings.values())

    @property
    def predicted_seconds(self) -> float:
        """Estimated wall time of the whole run's steps: of each kind, its first
        :data:`WARMUP_MICRO_STEPS` as long as the dry run's (worker start-up and compilation
        included), the others at the timed rate."""
        return sum(
            timing.warmup_seconds + max(0, timing.micro_steps - WARMUP_MICRO_STEPS) * timing.seconds_per_micro_step
            for timing in self.timings.values()
        )

    @property
    def data_share(self) -> float:
        """The share of the timed steps' time spent waiting for batches, weighted by the run's steps."""
        waiting = sum(t.micro_steps * t.data_wait_per_micro_step for t in self.timings.values())
        total = sum(t.micro_steps * t.seconds_per_micro_step for t in self.timings.values())
        return waiting / total if total else 0.0

    @property
    def bound_by(self) -> str:
        """``data`` when the steps wait for batches more than :data:`DATA_BOUND_SHARE` of the time, else ``step``."""
        return "data" if self.data_share > DATA_BOUND_SHARE else "step"

    def report(self) -> str:
        """The dry run's lines for the terminal."""
        minutes, seconds = divmod(round(self.predicted_seconds), 60)
        hours, minutes = divmod(minutes, 60)
        bound = "the data path bounds it" if self.bound_by == "data" else "the training step bounds it"
        kinds = "; ".join(
            f"{kind}: {t.seconds_per_micro_step:.3f} s each, {t.micro_steps:,} in the run"
            for kind, t in self.timings.items()
        )
        warmup = sum(t.warmup_seconds for t in self.timings.values())
        return (
            f"Dry run of the {self.phase} ({self.pipeline} data pipeline, {self.processes} process(es)): "
            f"{self.images:,} images in {self.steps:,} optimizer steps ({self.micro_steps:,} micro-steps).\n"
            f"Timed {TIMED_MICRO_STEPS} micro-steps of each kind ({kinds}); {100 * self.data_share:.0f}% of the "
            f"time waiting for data: {bound}.\n"
            f"Estimated wall time of the whole run: {hours} h {minutes:02d} min {seconds:02d} s (training steps, "
            f"of which {warmup:.0f} s for the first steps with start-up and compilation; validation and "
            "checkpoints not included). Nothing was written."
        )


def _timed_batches(loader: ResumableLoader) -> Iterator[tuple[Any, float]]:
    """Batches of the loader, epoch after epoch, each with the seconds the host waited for it."""
    while True:
        batches = iter(loader)
        while True:
            started = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                break
            yield batch, time.perf_counter() - started


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_kind(
    run: Callable[[Any, StepPosition], None], batches: Iterator[tuple[Any, float]], epoch: int, device: torch.device
) -> tuple[float, float, float]:
    """Warm-up seconds, seconds per micro-step and data wait per micro-step of steps at ``epoch``."""
    began = time.perf_counter()
    waited = started = warmup = 0.0
    for index in range(WARMUP_MICRO_STEPS + TIMED_MICRO_STEPS):
        if index == WARMUP_MICRO_STEPS:
            _synchronize(device)
            waited, started = 0.0, time.perf_counter()
            warmup = started - began
        batch, wait = next(batches)
        waited += wait
        run(batch, StepPosition(index, epoch))
    _synchronize(device)
    return warmup, (time.perf_counter() - started) / TIMED_MICRO_STEPS, waited / TIMED_MICRO_STEPS


def estimate_run(
    settings: TrainSettings,
    data_config: DataConfig,
    build_phase: Callable[[Accelerator, DataSplits, TrainSettings], TrainingPhase],
    splits: tuple[str, ...] = ("train",),
) -> RunEstimate:
    """For each kind of micro-step of the run (:meth:`TrainingPhase.step_kind` over its epochs), time
    :data:`TIMED_MICRO_STEPS` after :data:`WARMUP_MICRO_STEPS` (the device synchronised around them),
    and predict the whole run from them.

    Raises:
        VipriorsError: bad configuration or data.
    """
    setup = set_up_run(settings, data_config, build_phase, splits)
    accelerator, settings, phase, loader = setup.accelerator, setup.settings, setup.phase, setup.loader
    model, optimizer, _ = prepare_phase(
        phase, settings, accelerator, setup.steps_per_epoch, setup.total_steps, Path(settings.output), {}
    )
    phase.train()
    per_epoch = setup.steps_per_epoch * settings.gradient_accumulation_steps
    run_micro_steps = setup.total_steps * settings.gradient_accumulation_steps
    counts: Counter[str] = Counter()
    first_epoch: dict[str, int] = {}
    for micro_step in range(0, run_micro_steps, per_epoch):
        epoch = micro_step // per_epoch
        kind = phase.step_kind(StepPosition(micro_step, epoch))
        counts[kind] += min(per_epoch, run_micro_steps - micro_step)
        first_epoch.setdefault(kind, epoch)

    def run(batch: Any, position: StepPosition) -> None:
        train_micro_step(accelerator, phase, model, optimizer, batch, position)

    timings = {}
    try:
        batches = _timed_batches(loader)
        for kind, epoch in first_epoch.items():
            warmup, seconds, waited = _time_kind(run, batches, epoch, accelerator.device)
            timings[kind] = StepTiming(counts[kind], seconds, waited, warmup)
    finally:
        loader.close()
        accelerator.end_training()
    return RunEstimate(
        phase=phase.name,
        pipeline=setup.pipeline,
        processes=accelerator.num_processes,
        images=run_micro_steps * settings.batch_size * accelerator.num_processes,
        steps=setup.total_steps,
        timings=timings,
        main_process=accelerator.is_main_process,
    )
