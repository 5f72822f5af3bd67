"""The settings every training run shares (timm's flag names), each validated where it is declared.

Light to import (timm loads only to check an optimizer or model name): the command line builds its
flags from these classes before anything heavy is imported.
"""

from dataclasses import dataclass, field
from typing import Any

from ..config import check_settings
from ..errors import VipriorsError

__all__ = [
    "LATEST_CHECKPOINT",
    "MIXED_PRECISION",
    "TARGET_EFFECTIVE_BATCH",
    "TRACKERS",
    "RunSettings",
    "TrainSettings",
    "check_architecture",
    "phase_default",
]


MIXED_PRECISION = ("no", "fp16", "bf16")
LATEST_CHECKPOINT = "latest"
TRACKERS = ("tensorboard", "wandb", "mlflow", "comet_ml", "none")
"""accelerate's trackers (``--report-to``); each but ``none`` needs its package installed."""


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
        metadata={"help": "accelerate tracker (none: metrics.jsonl only)", "choices": TRACKERS},
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
    dry_run: bool = field(
        default=False,
        metadata={
            "help": "time a few real steps of this run (data path included), print the estimated wall time of "
            "the whole run and what bounds it; write nothing",
            "action": True,
        },
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
    seed: int | None = field(
        default=None,
        metadata={
            "help": "seed of training: initialisation, data order, augmentations (none given: --data-seed's)",
            "min": 0,
            "max": 2**32 - 1,
        },
    )
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
        import timm.optim

        if self.opt not in timm.optim.list_optimizers():
            raise VipriorsError(
                f"--opt {self.opt!r}: not a timm optimizer; choose one of timm.optim.list_optimizers() "
                "(e.g. sgd, momentum, adamw, lamb)."
            )


def check_architecture(name: str) -> None:
    """Refuse a model name that is not a member of the family, listing the members."""
    import timm

    family = timm.list_models("vipriors_*")
    if name not in family:
        raise VipriorsError(f"--model {name}: not a member of the family. Choose one of: {', '.join(family)}.")
