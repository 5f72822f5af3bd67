"""What every run shares: its settings, its output folder and its lock, the accelerator, the plan of steps.

The output layout is described once, in :mod:`vipriors_hub.train.loop`.
"""

import contextlib
import dataclasses
import json
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import timm
import timm.optim
import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import (
    ProjectConfiguration,
    broadcast_object_list,
    is_comet_ml_available,
    is_mlflow_available,
    is_tensorboard_available,
    is_wandb_available,
    set_seed,
)

from ..config import check_settings, primary_flag, recorded_settings, upgrade_settings
from ..errors import VipriorsError
from ..outputs import LOCK_FILE, check_run_destination, write_failure, write_text_atomically
from .checkpoints import CHECKPOINT_NAME
from .run_lock import RunLock

__all__ = [
    "LATEST_CHECKPOINT",
    "RESUMABLE_CHANGES",
    "TARGET_EFFECTIVE_BATCH",
    "RunSettings",
    "TrainSettings",
    "check_architecture",
    "check_tracker",
    "document",
    "gradient_accumulation",
    "hold_run_folder",
    "learning_rate",
    "make_accelerator",
    "open_run",
    "phase_default",
    "plan_steps",
    "prepare_output_dir",
    "resume_checkpoint_path",
    "start_record",
    "start_run",
    "step_generator",
    "tracker_config",
]


MIXED_PRECISION = ("no", "fp16", "bf16")
LATEST_CHECKPOINT = "latest"
TRACKERS = {
    "tensorboard": (is_tensorboard_available, "tensorboard"),
    "wandb": (is_wandb_available, "wandb"),
    "mlflow": (is_mlflow_available, "mlflow"),
    "comet_ml": (is_comet_ml_available, "comet_ml"),
    "none": (lambda: True, ""),
}


TARGET_EFFECTIVE_BATCH = 256
"""The effective batch (per-process batch x processes x accumulation) both phases aim at by default,
the original code's; reached by gradient accumulation when a device cannot hold it."""


@dataclass
class RunSettings:
    """Settings every trainer shares: hardware, precision, logging, checkpoints, output folder."""

    mixed_precision: str | None = field(
        default=None,
        metadata={
            "help": "override accelerate's setting (launcher flag or config file; none given: no). "
            "bf16 is ~30x slower on CPUs without bf16 units",
            "choices": MIXED_PRECISION,
        },
    )
    gradient_accumulation_steps: int | None = field(
        default=None,
        metadata={
            "help": f"micro-batches per optimizer step (none given: up to an effective batch of "
            f"{TARGET_EFFECTIVE_BATCH}, a divisor of an epoch's batches)",
            "min": 1,
            "flags": ("--grad-accum-steps", "--gradient-accumulation-steps"),
        },
    )
    num_workers: int = field(
        default=4,
        metadata={
            "help": "DataLoader workers per process",
            "min": 0,
            "max": 256,
            "flags": ("-j", "--workers", "--num-workers"),
        },
    )
    channels_last: bool | None = field(
        default=None, metadata={"help": "channels_last memory format (none given: on a GPU, not on a CPU)"}
    )
    torch_compile: bool | None = field(
        default=None,
        metadata={
            "help": "torch.compile the networks of the step (weights and checkpoints unchanged; none given: on a "
            "GPU, where it makes both steps ~1.5x faster, not on a CPU)",
            "flags": ("--torchcompile", "--torch-compile"),
        },
    )
    checkpoint_every: int = field(
        default=1000, metadata={"help": "checkpoint every N steps (and every epoch)", "min": 1}
    )
    log_every: int = field(
        default=10, metadata={"help": "log every N steps", "min": 1, "flags": ("--log-interval", "--log-every")}
    )
    cpu: bool = field(default=False, metadata={"help": "train on CPU even if a GPU is present"})
    report_to: str = field(
        default="tensorboard",
        metadata={"help": "accelerate tracker (none: metrics.jsonl only)", "choices": tuple(TRACKERS)},
    )
    resume: str | None = field(
        default=None,
        metadata={
            "help": "continue the run in --output from its newest checkpoint; with a PATH (a run folder or one "
            "of its checkpoints/step-*), continue that run from there",
            "action": True,
            "nargs": "?",
            "const": LATEST_CHECKPOINT,
            "metavar": "PATH",
        },
    )
    overwrite: bool = field(
        default=False, metadata={"help": "replace the training run in --output (nothing else)", "action": True}
    )

    def __post_init__(self) -> None:
        if isinstance(self.resume, bool):
            self.resume = LATEST_CHECKPOINT if self.resume else None
        check_settings(self)


def phase_default(settings: type, name: str, default: Any) -> Any:
    """A field of ``settings`` redeclared by a phase with its own ``default`` (same help and limits)."""
    return field(default=default, metadata=settings.__dataclass_fields__[name].metadata)


@dataclass
class TrainSettings(RunSettings):
    """The model, schedule and optimizer settings both phases share (timm's flag names)."""

    output: str = field(default="runs/train", metadata={"help": "output folder"})
    architecture: str = field(
        default="vipriors_resnet50", metadata={"help": "a vipriors_* model", "flags": ("--model", "--architecture")}
    )
    resolution: int = field(
        default=224,
        metadata={"help": "input size in px", "min": 8, "max": 4096, "flags": ("--img-size", "--resolution")},
    )
    epochs: int = field(default=100, metadata={"help": "training epochs", "min": 1})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many optimizer steps", "min": 1})
    batch_size: int = field(default=256, metadata={"help": "images per process and micro-batch", "min": 1})
    base_lr: float = field(
        default=0.1,
        metadata={
            "help": "learning rate for an effective batch of 256 (scaled linearly)",
            "above": 0,
            "flags": ("--lr-base", "--base-lr"),
        },
    )
    lr: float | None = field(
        default=None, metadata={"help": "absolute learning rate (replaces --lr-base and its scaling)", "above": 0}
    )
    opt: str = field(
        default="sgd", metadata={"help": "timm optimizer (create_optimizer_v2): sgd = Nesterov SGD, momentum = SGD"}
    )
    momentum: float = field(default=0.9, metadata={"help": "optimizer momentum", "min": 0, "below": 1})
    weight_decay: float = field(default=1e-4, metadata={"help": "weight decay (on every parameter)", "min": 0})
    schedule: str = field(
        default="cosine",
        metadata={
            "help": "learning-rate schedule: cosine, or step (x0.1 every --step-epochs)",
            "choices": ("cosine", "step"),
            "flags": ("--sched", "--schedule"),
        },
    )
    step_epochs: int = field(default=30, metadata={"help": "epochs between learning-rate drops (step)", "min": 1})
    warmup_epochs: int = field(default=0, metadata={"help": "linear warm-up epochs", "min": 0})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.opt not in timm.optim.list_optimizers():
            raise VipriorsError(
                f"--opt {self.opt!r}: not a timm optimizer; choose one of timm.optim.list_optimizers() "
                "(e.g. sgd, momentum, adamw, lamb)."
            )


# Settings a resumption may change (recorded in OUTPUT/history.jsonl); every other one must match.
# ``output`` is the run folder itself, whatever its spelling or location.
RESUMABLE_CHANGES = (
    "base_lr",
    "lr",
    "epochs",
    "max_steps",
    "log_every",
    "checkpoint_every",
    "num_workers",
    "report_to",
    "mixed_precision",
    "channels_last",
    "torch_compile",
)
_NOT_COMPARED = {"output"}


def document(sections: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The configuration sections as plain dictionaries (the content of ``config.yaml``): settings
    only, no action flags such as ``resume``."""
    return {name: recorded_settings(value) for name, value in sections.items()}


def prepare_output_dir(output: Path, sections: Mapping[str, Any], resume: bool, overwrite: bool) -> None:
    """Create ``output`` and write ``config.yaml``, once every check of the run has passed.

    A folder that holds a run is continued only with ``resume`` and the same configuration but for
    :data:`RESUMABLE_CHANGES` (each change appended to ``OUTPUT/history.jsonl`` and written into
    ``config.yaml``; settings its ``config.yaml`` does not hold, added by a later version, are not
    compared), and replaced only with ``overwrite`` when it holds that run and nothing else
    (:func:`~vipriors_hub.outputs.check_run_destination`). Call it on the main process only.
    """
    check_run_destination(output, resume, overwrite)
    config_file = output / "config.yaml"
    resolved = document(sections)
    if resume:
        previous = {
            section: upgrade_settings(values) if isinstance(values, dict) else values
            for section, values in (yaml.safe_load(config_file.read_text()) or {}).items()
        }
        # A setting the run's config.yaml does not hold did not exist in the version that wrote it.
        changed = {
            f"{section}.{key}": [previous.get(section, {}).get(key), value]
            for section, fields in resolved.items()
            for key, value in fields.items()
            if key not in _NOT_COMPARED
            and key in previous.get(section, {})
            and previous.get(section, {}).get(key) != value
        }
        refused = sorted(name for name in changed if name.split(".", 1)[1] not in RESUMABLE_CHANGES)
        if refused:
            flags = ", ".join(primary_flag(TrainSettings.__dataclass_fields__[name]) for name in RESUMABLE_CHANGES)
            raise VipriorsError(
                f"Cannot resume {output}: its run was configured differently ({', '.join(refused)}); a resumption "
                f"may only change {flags}. "
                f"Resume with --config {config_file}, or start a new run in another --output."
            )
        for section in resolved:
            resolved[section].update(
                {key: previous.get(section, {}).get(key) for key in _NOT_COMPARED & set(resolved[section])}
            )
        if changed:
            with (output / "history.jsonl").open("a") as handle:
                handle.write(json.dumps({"event": "resume", "changed": changed, "time": round(time.time(), 3)}) + "\n")
    elif overwrite and config_file.is_file():
        for entry in output.iterdir():
            if entry.name != LOCK_FILE:  # held by this run
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    try:
        write_text_atomically(config_file, yaml.safe_dump(resolved, sort_keys=False))
    except OSError as error:
        raise write_failure("config.yaml", output, error, "Free space or choose another --output.") from error


def check_tracker(report_to: str) -> str | None:
    """The accelerate tracker to log with (``None`` for ``none``), refusing one that is not installed."""
    available, package = TRACKERS[report_to]
    if not available():
        raise VipriorsError(
            f"--report-to {report_to}: {package} is not installed. Install it (pip install {package}) "
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


def check_architecture(name: str) -> None:
    """Refuse a model name that is not a member of the family, listing the members."""
    family = timm.list_models("vipriors_*")
    if name not in family:
        raise VipriorsError(f"--model {name}: not a member of the family. Choose one of: {', '.join(family)}.")


def resume_checkpoint_path(settings: RunSettings) -> tuple[Path, Path | None]:
    """The run folder a start writes into and, for ``--resume PATH`` naming a checkpoint, that checkpoint.

    ``--resume`` alone continues ``--output`` from its newest checkpoint; ``--resume RUN`` continues the
    run in ``RUN`` (``--output`` is then that folder) and ``--resume RUN/checkpoints/step-N`` that run
    from step ``N``.

    Raises:
        VipriorsError: a PATH that is neither a training run nor one of its complete checkpoints.
    """
    output = Path(settings.output)
    if settings.resume in (None, LATEST_CHECKPOINT):
        return output, None
    path = Path(settings.resume).resolve()
    if CHECKPOINT_NAME.match(path.name) and path.parent.name == "checkpoints" and path.is_dir():
        return path.parent.parent, path
    if (path / "config.yaml").is_file():
        return path, None
    raise VipriorsError(
        f"--resume {path}: neither a training run (a folder with config.yaml) nor one of its complete "
        "checkpoints (RUN/checkpoints/step-NNNNNNNN). Pass --resume alone to continue --output."
    )


def start_run(settings: TrainSettings, seed: int) -> tuple[Accelerator, TrainSettings, Path | None]:
    """Check the output folder (nothing written), create the accelerator and seed every generator.

    Returns the accelerator, the settings with the run folder of ``--resume PATH`` as ``output``, and
    the checkpoint to resume from (``None``: the newest, or a new run). The run's folder is written
    by :func:`open_run` once the data and the plan have been checked.
    """
    output, checkpoint = resume_checkpoint_path(settings)
    check_run_destination(output, bool(settings.resume), settings.overwrite)
    accelerator = make_accelerator(output, settings.cpu, settings.mixed_precision, settings.report_to)
    set_seed(seed)
    return accelerator, dataclasses.replace(settings, output=str(output)), checkpoint


@contextlib.contextmanager
def hold_run_folder(accelerator: Accelerator, output: Path, settings: RunSettings) -> Iterator[None]:
    """Hold the run folder's lock (main process) while the block runs: one writer per run folder.

    Under the lock the destination is checked again, so of two runs started into one folder at the
    same moment the second is refused with the first's process named, or finds the first's run.
    Every process learns the outcome, so all of them stop with the same line.

    Raises:
        VipriorsError: another process holds the folder, the folder cannot be created, or the
            second check fails.
    """
    lock = RunLock(output) if accelerator.is_main_process else None
    outcome = [None]
    if lock is not None:
        try:
            lock.acquire()
            check_run_destination(output, bool(settings.resume), settings.overwrite)
        except VipriorsError as error:
            lock.release()
            outcome = [str(error)]
    if accelerator.num_processes > 1:
        broadcast_object_list(outcome)
    if outcome[0] is not None:
        raise VipriorsError(outcome[0])
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def gradient_accumulation(settings: TrainSettings, accelerator: Accelerator, batches_per_epoch: int) -> int:
    """``--grad-accum-steps``, or the largest number of micro-batches up to the one that makes the
    effective batch :data:`TARGET_EFFECTIVE_BATCH` that divides an epoch's batches (so that no
    accumulation cycle spans two epochs; at least one); set on ``accelerator``."""
    accumulation = settings.gradient_accumulation_steps
    if accumulation is None:
        target = max(1, TARGET_EFFECTIVE_BATCH // (settings.batch_size * accelerator.num_processes))
        accumulation = max(
            n for n in range(1, min(target, max(1, batches_per_epoch)) + 1) if batches_per_epoch % n == 0
        )
    accelerator.gradient_accumulation_steps = accumulation
    return accumulation


def open_run(accelerator: Accelerator, output: Path, sections: Mapping[str, Any], settings: RunSettings) -> dict:
    """Write the run's ``config.yaml`` (main process) with the precision in effect, and say it.

    Returns the sections as recorded.
    """
    sections = {
        name: dataclasses.replace(value, mixed_precision=accelerator.mixed_precision)
        if isinstance(value, RunSettings)
        else value
        for name, value in sections.items()
    }
    if accelerator.is_main_process:
        prepare_output_dir(output, sections, settings.resume, settings.overwrite)
    accelerator.wait_for_everyone()
    accelerator.print(
        f"{accelerator.num_processes} process(es) on {accelerator.device}, mixed precision: "
        f"{accelerator.mixed_precision}, tracker: {settings.report_to}"
    )
    return sections


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
