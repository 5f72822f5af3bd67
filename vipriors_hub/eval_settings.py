"""Settings of ``vipriors-hub eval-teacher`` and ``evaluate``, light to import like every settings module."""

from dataclasses import dataclass, field

from .config import check_settings
from .errors import VipriorsError

__all__ = ["EvaluateConfig", "TeacherEvalConfig"]


@dataclass
class TeacherEvalConfig:
    """Settings of ``vipriors-hub eval-teacher``."""

    checkpoint: str = field(default="runs/teacher/final", metadata={"help": "a teacher folder (OUTPUT/final)"})
    output: str = field(default="teacher_eval.json", metadata={"help": "results JSON file"})
    split: str = field(
        default="val", metadata={"help": "split to score: val or test", "choices": ("train", "val", "test")}
    )
    resolution: int | None = field(
        default=None, metadata={"help": "input size (default: the training size)", "min": 8, "max": 4096}
    )
    batch_size: int = field(default=256, metadata={"help": "images per forward pass", "min": 1})
    knn_k: int = field(default=200, metadata={"help": "neighbours of the kNN classifier", "min": 1})
    knn_temperature: float = field(default=0.07, metadata={"help": "temperature of the kNN votes", "above": 0})
    linear_epochs: int = field(default=100, metadata={"help": "L-BFGS iterations of the linear probe", "min": 1})
    linear_weight_decay: float = field(default=1e-4, metadata={"help": "L2 penalty of the linear probe", "min": 0})
    num_workers: int = field(default=2, metadata={"help": "DataLoader workers", "min": 0, "max": 256})

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass
class EvaluateConfig:
    """Settings of ``vipriors-hub evaluate``."""

    checkpoint: list[str] = field(
        default_factory=list,
        metadata={"help": "student folder; repeat to ensemble", "required": True, "metavar": "FOLDER"},
    )
    split: str = field(default="val", metadata={"help": "split to score", "choices": ("val", "test")})
    ten_crop: bool = field(default=False, metadata={"help": "average the softmax of ten crops"})
    resolution: int | None = field(
        default=None,
        metadata={
            "help": "test input size (none: each model's)",
            "min": 8,
            "max": 4096,
            "flags": ("--img-size", "--resolution"),
        },
    )
    output: str = field(default="results.json", metadata={"help": "results JSON file"})
    submission: str | None = field(default=None, metadata={"help": "also write the VIPriors submission CSV here"})
    batch_size: int = field(
        default=32, metadata={"help": "images per forward pass (10-crop: views per pass)", "min": 1}
    )
    num_workers: int = field(default=2, metadata={"help": "DataLoader workers", "min": 0, "max": 256})

    def __post_init__(self) -> None:
        check_settings(self)
        if not self.checkpoint:
            raise VipriorsError("--checkpoint is required: name a student folder (repeat it to ensemble).")
