"""The start of a run: its accelerator and seed, the accumulation and learning rate, the plan of steps."""

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import accelerate.utils
import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed

from ..data.settings import DataConfig
from ..errors import VipriorsError
from ..outputs import check_run_destination
from .consensus import raise_on_any
from .run_folder import resume_checkpoint_path
from .run_lock import RunLock
from .settings import TARGET_EFFECTIVE_BATCH, TrainSettings

__all__ = [
    "check_tracker",
    "gradient_accumulation",
    "learning_rate",
    "make_accelerator",
    "plan_steps",
    "resolve_seeds",
    "start_record",
    "start_run",
    "step_generator",
    "tracker_config",
]


def check_tracker(report_to: str) -> str | None:
    """The accelerate tracker to log with (``None`` for ``none``), refusing one that is not installed."""
    if report_to != "none" and not getattr(accelerate.utils, f"is_{report_to}_available")():
        raise VipriorsError(
            f"--report-to {report_to}: {report_to} is not installed. Install it (pip install {report_to}) "
            "or pass --report-to none (metrics.jsonl is always written)."
        )
    return None if report_to == "none" else report_to


def make_accelerator(output: Path, cpu: bool, mixed_precision: str | None, report_to: str) -> Accelerator:
    """An ``Accelerator`` on CPU when asked or when no GPU is present.

    ``mixed_precision=None`` keeps what accelerate's launcher or config file set
    (``ACCELERATE_MIXED_PRECISION``); a value overrides it. Nothing is written to ``output`` here.
    """
    tracker = check_tracker(report_to)
    try:
        return Accelerator(
            cpu=cpu or not torch.cuda.is_available(),
            mixed_precision=mixed_precision,
            log_with=tracker,
            project_config=ProjectConfiguration(project_dir=str(output), logging_dir=str(output / "logs")),
        )
    except (ValueError, ImportError) as error:
        # accelerate's own check, e.g. ACCELERATE_MIXED_PRECISION=fp8 without an fp8 backend installed.
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise VipriorsError(
            f"accelerate refused this machine's settings: {reason} Pass --mixed-precision bf16 (or no), or change "
            "the launcher's settings (accelerate config, ACCELERATE_* variables)."
        ) from error


def resolve_seeds(settings: TrainSettings, data_config: DataConfig) -> tuple[TrainSettings, DataConfig]:
    """The training seed and the data-selection seed, each defaulting to the other (then 0), as the
    run records them: one ``--seed`` (or an earlier version's data seed) sets both."""
    seed = settings.seed if settings.seed is not None else (data_config.seed or 0)
    data_seed = data_config.seed if data_config.seed is not None else seed
    return dataclasses.replace(settings, seed=seed), dataclasses.replace(data_config, seed=data_seed)


def start_run(settings: TrainSettings, seed: int) -> tuple[Accelerator, TrainSettings, Path | None]:
    """Create the accelerator, check the output folder (nothing written; a run still going there is
    refused first; a dry run is refused where the run would be) and seed every generator.

    Returns the accelerator, the settings with the run folder of ``--resume PATH`` as ``output``, and
    the checkpoint to resume from (``None``: the newest, or a new run). The run's folder is written
    by :func:`open_run` once the data and the plan have been checked.
    """
    output, checkpoint = resume_checkpoint_path(settings)
    accelerator = make_accelerator(output, settings.cpu, settings.mixed_precision, settings.report_to)
    refusal = None
    if accelerator.is_main_process:  # the one process that writes the folder checks it
        try:
            RunLock(output).probe()  # a run still going there is named, whatever the folder holds
            check_run_destination(output, bool(settings.resume), settings.overwrite)
        except (VipriorsError, OSError) as error:
            refusal = error if isinstance(error, VipriorsError) else VipriorsError(f"--output {output}: {error}")
    raise_on_any(accelerator, refusal)
    set_seed(seed)
    return accelerator, dataclasses.replace(settings, output=str(output)), checkpoint


def gradient_accumulation(settings: TrainSettings, num_processes: int, batches_per_epoch: int) -> int:
    """``--grad-accum-steps``, or the largest number of micro-batches up to the one that makes the
    effective batch :data:`TARGET_EFFECTIVE_BATCH` that divides an epoch's batches (so that no
    accumulation cycle spans two epochs; at least one)."""
    accumulation = settings.gradient_accumulation_steps
    if accumulation is None:
        target = max(1, TARGET_EFFECTIVE_BATCH // (settings.batch_size * num_processes))
        accumulation = max(
            n for n in range(1, min(target, max(1, batches_per_epoch)) + 1) if batches_per_epoch % n == 0
        )
    return accumulation


def learning_rate(settings: TrainSettings, num_processes: int) -> float:
    """``--lr``, or the linear scaling rule ``lr_base * effective_batch / 256``."""
    if settings.lr is not None:
        return settings.lr
    effective_batch = settings.batch_size * num_processes * settings.gradient_accumulation_steps
    return settings.base_lr * effective_batch / 256


def tracker_config(sections: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    """The scalar settings of every section, as ``section/field`` (for the trackers' hyperparameters)."""
    return {
        f"{name}/{key}": value
        for name, section in sections.items()
        for key, value in dataclasses.asdict(section).items()
        if isinstance(value, bool | int | float | str)
    }


def plan_steps(
    loader_batches: int, examples: int, batch_size: int, accumulation: int, epochs: int, max_steps: int | None
) -> tuple[int, int]:
    """Optimizer steps per epoch and in all, refusing a split too small for one step."""
    steps_per_epoch = loader_batches // accumulation
    if steps_per_epoch == 0:
        raise VipriorsError(
            f"The training split has {examples} images per process, fewer than one step of "
            f"{batch_size} x {accumulation}: lower --batch-size."
        )
    total = epochs * steps_per_epoch
    return steps_per_epoch, total if max_steps is None else min(total, max_steps)


def start_record(accelerator: Accelerator, settings: TrainSettings, lr: float, step: int, total: int) -> dict[str, Any]:
    """The first line of ``metrics.jsonl``: processes, effective batch and learning rate of the run."""
    return {
        "event": "resume" if settings.resume else "start",
        "step": step,
        "processes": accelerator.num_processes,
        "effective_batch_size": settings.batch_size * accelerator.num_processes * settings.gradient_accumulation_steps,
        "base_lr": settings.base_lr,
        "lr": lr,
        "steps_total": total,
    }


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator seeded from ``(seed, step)``: identical on every process, nothing to checkpoint."""
    value = int(np.random.SeedSequence([seed, step]).generate_state(1)[0])
    return torch.Generator().manual_seed(value)
