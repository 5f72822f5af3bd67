"""What every run shares: its settings, its output folder, accelerator, metrics, checkpoints, guard.

Every trainer writes::

    OUTPUT/config.yaml      the resolved configuration (``--config`` takes it back)
    OUTPUT/metrics.jsonl    one JSON object per logged step and per evaluation
    OUTPUT/checkpoints/     ``step-XXXXXXXX`` folders written by ``accelerator.save_state``
    OUTPUT/final/           a Hub-ready folder (model.safetensors + timm config.json)
"""

import dataclasses
import json
import os
import re
import shutil
import time
from collections.abc import Mapping
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
    is_comet_ml_available,
    is_mlflow_available,
    is_tensorboard_available,
    is_wandb_available,
    set_seed,
)
from safetensors.torch import load_file, save_file

from ..config import check_settings, primary_flag, recorded_settings, upgrade_settings
from ..errors import VipriorsError
from ..outputs import check_run_destination, write_text_atomically

__all__ = [
    "LATEST_CHECKPOINT",
    "RESUMABLE_CHANGES",
    "TARGET_EFFECTIVE_BATCH",
    "CheckpointManager",
    "MetricsWriter",
    "NonFiniteGuard",
    "RunSettings",
    "TrainSettings",
    "check_architecture",
    "check_tracker",
    "document",
    "gradient_accumulation",
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


_CHECKPOINT = re.compile(r"^step-(\d{8})$")
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
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    write_text_atomically(config_file, yaml.safe_dump(resolved, sort_keys=False))


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
    return Accelerator(
        cpu=cpu or not torch.cuda.is_available(),
        mixed_precision=mixed_precision,
        log_with=check_tracker(report_to),
        project_config=ProjectConfiguration(project_dir=str(output), logging_dir=str(output / "logs")),
    )


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
    if _CHECKPOINT.match(path.name) and path.parent.name == "checkpoints" and path.is_dir():
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


class NonFiniteGuard:
    """Watches a run for divergence without a host synchronisation per step.

    ``observe`` records the first step with a NaN / inf loss in a device tensor. ``check`` (called
    when the trainer synchronises anyway: logging, before a checkpoint, at the end) stops the run
    with a sentence naming that step, or when the weights are no longer finite or their norm grew
    past ``growth_limit`` times the norm at the start (a loss can stay finite while the weights
    explode: MoCo's normalised embeddings hide them), before a checkpoint could store them.
    """

    def __init__(self, accelerator: Accelerator, model: torch.nn.Module, growth_limit: float = 100.0) -> None:
        self.accelerator = accelerator
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.growth_limit = growth_limit
        self.start_norm = float(self.weight_norm())
        self.first_bad = torch.full((1,), -1, dtype=torch.long, device=accelerator.device)

    @torch.no_grad()
    def weight_norm(self) -> torch.Tensor:
        """The L2 norm of all trainable weights (a device scalar)."""
        return torch.nn.utils.get_total_norm(self.parameters, norm_type=2.0)

    def observe(self, loss: torch.Tensor, step: int) -> None:
        """Remember ``step`` if ``loss`` (a scalar tensor) is not finite and no earlier step was."""
        bad = ~torch.isfinite(loss.detach()).reshape(1) & (self.first_bad < 0)
        self.first_bad = torch.where(bad, torch.full_like(self.first_bad, step), self.first_bad)

    def check(self, checkpoints: "CheckpointManager", step: int) -> None:
        """Raise if any process saw a non-finite loss, or the weights diverged; the last good
        checkpoint is kept."""
        norm = self.weight_norm().reshape(1).to(self.first_bad.device, torch.float64)
        first, largest = (
            self.accelerator.gather(torch.cat([self.first_bad.double(), norm])).view(-1, 2).max(dim=0).values
        )
        last_good = checkpoints.latest() or "none"
        if first >= 0:
            raise VipriorsError(
                f"The loss became non-finite at step {int(first)}; training stopped. "
                f"Last good checkpoint: {last_good}. Lower the learning rate (--resume --base-lr ...) or check data."
            )
        if not torch.isfinite(largest) or largest > self.growth_limit * self.start_norm:
            raise VipriorsError(
                f"The weights diverged by step {step} (norm {float(largest):.3g}, {self.start_norm:.3g} at the start); "
                f"training stopped. Last good checkpoint: {last_good}. "
                "Lower the learning rate (--resume --base-lr ...)."
            )


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


class MetricsWriter:
    """Appends one JSON object per call to ``OUTPUT/metrics.jsonl`` (main process only)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled

    def write(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` with a wall-clock timestamp."""
        if self.enabled:
            with self.path.open("a") as handle:
                handle.write(json.dumps({**record, "time": round(time.time(), 3)}) + "\n")


class CheckpointManager:
    """Atomic ``accelerator.save_state`` checkpoints under ``OUTPUT/checkpoints/step-XXXXXXXX``.

    A checkpoint is written into a temporary folder and renamed once complete, so a kill during a
    save leaves the previous checkpoint intact and :meth:`latest` never returns a partial one.
    Besides accelerate's state, a checkpoint holds ``extra.safetensors`` (tensors outside the
    prepared objects, e.g. the key encoder and queue) and ``progress.json`` (counters, loader state).
    """

    def __init__(self, accelerator: Accelerator, directory: Path, keep: int = 2) -> None:
        self.accelerator = accelerator
        self.directory = directory
        self.keep = keep

    def latest(self) -> Path | None:
        """The newest complete checkpoint, or ``None``."""
        if not self.directory.is_dir():
            return None
        complete = sorted(p for p in self.directory.iterdir() if _CHECKPOINT.match(p.name) and p.is_dir())
        return complete[-1] if complete else None

    def save(self, step: int, tensors: Mapping[str, torch.Tensor], progress: Mapping[str, Any]) -> Path:
        """Save the accelerator state plus ``tensors`` and ``progress`` as checkpoint ``step``."""
        final = self.directory / f"step-{step:08d}"
        temporary = self.directory / f".partial-step-{step:08d}"
        if self.accelerator.is_main_process:
            shutil.rmtree(temporary, ignore_errors=True)
            temporary.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        self.accelerator.save_state(str(temporary))
        if self.accelerator.is_main_process:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, temporary / "extra.safetensors")
            (temporary / "progress.json").write_text(json.dumps(dict(progress)))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(temporary, final)
            for old in sorted(p for p in self.directory.iterdir() if _CHECKPOINT.match(p.name))[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return final

    def discard_after(self, step: int) -> list[Path]:
        """Delete this run's checkpoints of steps after ``step`` (main process): a run continued from an
        older checkpoint replaces its abandoned future, so that ``latest`` never returns to it."""
        later = [p for p in self.directory.glob("step-*") if _CHECKPOINT.match(p.name) and int(p.name[5:]) > step]
        if self.accelerator.is_main_process:
            for path in later:
                shutil.rmtree(path, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return later

    def load(self, checkpoint: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Restore the accelerator state of ``checkpoint``; return its extra tensors and progress.

        Raises:
            VipriorsError: the folder is not a complete checkpoint of this package.
        """
        if not (checkpoint / "progress.json").is_file() or not (checkpoint / "extra.safetensors").is_file():
            raise VipriorsError(
                f"{checkpoint} is not a complete checkpoint (progress.json and extra.safetensors): "
                "resume from another one (--resume RUN continues from the newest)."
            )
        self.accelerator.load_state(str(checkpoint))
        tensors = load_file(checkpoint / "extra.safetensors", device=str(self.accelerator.device))
        return tensors, json.loads((checkpoint / "progress.json").read_text())
