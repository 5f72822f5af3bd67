"""Phase 1's settings (``vipriors-hub train-teacher``), light to import like every settings module."""

from dataclasses import dataclass, field

from .settings import TrainSettings, phase_default

__all__ = ["TeacherConfig"]


@dataclass
class TeacherConfig(TrainSettings):
    """Phase-1 settings; defaults are the paper's (MoCo v2 + margin 0.4, queue 4096, 800 epochs)."""

    output: str = phase_default(TrainSettings, "output", "runs/teacher")
    epochs: int = phase_default(TrainSettings, "epochs", 800)
    base_lr: float = phase_default(TrainSettings, "base_lr", 0.03)
    opt: str = phase_default(TrainSettings, "opt", "momentum")
    temperature: float = field(default=0.2, metadata={"help": "softmax temperature T", "above": 0})
    margin: float = field(default=0.4, metadata={"help": "margin m subtracted from the positive logit", "min": 0})
    queue_size: int = field(
        default=4096, metadata={"help": "negative keys in the queue; 0: in-batch negatives", "min": 0, "max": 2**20}
    )
    key_momentum: float = field(default=0.999, metadata={"help": "momentum of the key encoder", "min": 0, "max": 1})
    projection_dim: int = field(
        default=128, metadata={"help": "output dimension of the MLP head", "min": 1, "max": 65536}
    )
    shuffle_bn_groups: int = field(
        default=2, metadata={"help": "one process: key batch chunks for shuffle-BN", "min": 1, "max": 256}
    )
