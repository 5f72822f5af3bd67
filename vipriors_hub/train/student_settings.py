"""Phase 2's settings (``vipriors-hub train-student``), light to import like every settings module."""

from dataclasses import dataclass, field

from ..data.settings import CIFAR10_POLICY
from ..errors import VipriorsError
from .settings import TrainSettings, phase_default

__all__ = ["TEACHER_BN_MODES", "StudentConfig"]

TEACHER_BN_MODES = ("eval", "train")
"""How the frozen teacher's BatchNorm normalises: ``eval`` with its running statistics, ``train``
with each batch's statistics (the original code and OFD's)."""


@dataclass
class StudentConfig(TrainSettings):
    """Phase-2 settings; defaults are the paper's (448 px, 100 epochs, OFD weight 1e-4, step schedule)."""

    output: str = phase_default(TrainSettings, "output", "runs/student")
    teacher: str | None = field(default=None, metadata={"help": "teacher folder (train-teacher OUTPUT/final)"})
    architecture: str | None = phase_default(TrainSettings, "architecture", None)
    init: str = field(default="teacher", metadata={"help": "start from", "choices": ("teacher", "scratch")})
    resolution: int = phase_default(TrainSettings, "resolution", 448)
    batch_size: int = phase_default(TrainSettings, "batch_size", 64)
    schedule: str = phase_default(TrainSettings, "schedule", "step")
    no_distill_epochs: int = field(default=5, metadata={"help": "first epochs with cross-entropy only", "min": 0})
    distill_weight: float = field(default=1e-4, metadata={"help": "OFD loss weight; 0: no distillation", "min": 0})
    teacher_bn: str = field(
        default="eval", metadata={"help": "frozen teacher's BatchNorm statistics", "choices": TEACHER_BN_MODES}
    )
    label_smoothing: float = field(
        default=0.1,
        metadata={"help": "label smoothing", "min": 0, "below": 1, "flags": ("--smoothing", "--label-smoothing")},
    )
    auto_augment: str | None = field(
        default="original",
        metadata={
            "help": f"AutoAugment policy: a timm policy (original, rand-m9-mstd0.5, ...), {CIFAR10_POLICY} "
            "(torchvision's, the original code's) or none",
            "flags": ("--aa",),
            "switches": {"--auto-augment": "original", "--no-auto-augment": None},
            "metavar": "POLICY",
        },
    )
    reprob: float = field(default=0.0, metadata={"help": "random erasing probability (cutout)", "min": 0, "max": 1})
    mixup: float = field(default=0.0, metadata={"help": "mixup alpha (0: off)", "min": 0})
    cutmix: float = field(default=0.0, metadata={"help": "cutmix alpha (0: off)", "min": 0})
    compile_loss: bool = field(default=False, metadata={"help": "torch.compile the OFD distance (GPU: ~3x faster)"})

    def __post_init__(self) -> None:
        self.auto_augment = None if self.auto_augment in ("none", "") else self.auto_augment
        super().__post_init__()
        from ..data.transforms import check_auto_augment

        check_auto_augment(self.auto_augment)
        if (self.mixup or self.cutmix) and self.batch_size % 2:
            raise VipriorsError(f"--mixup/--cutmix mix pairs of images: --batch-size {self.batch_size} must be even.")
