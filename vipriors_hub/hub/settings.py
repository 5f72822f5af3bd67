"""Settings of ``vipriors-hub export``, ``push`` and ``convert``, declared like the trainers' (see
:mod:`vipriors_hub.config`): the command line is built from them and every value is checked here."""

from dataclasses import dataclass, field

from ..config import check_settings

__all__ = ["ConvertConfig", "ExportConfig", "PushConfig"]


@dataclass
class ExportConfig:
    """Settings of ``vipriors-hub export``."""

    run_dir: str | None = field(
        default=None, metadata={"help": "a trainer's OUTPUT folder", "positional": True, "required": True}
    )
    output: str | None = field(default=None, metadata={"help": "folder to write", "required": True})
    results: list[str] = field(
        default_factory=list,
        metadata={
            "help": "evaluation JSON (eval-teacher / evaluate) of this checkpoint; repeatable",
            "metavar": "FILE",
        },
    )
    repo_id: str | None = field(
        default=None, metadata={"help": "the Hub repository it is meant for (none: the family's)"}
    )
    base_model: str | None = field(
        default=None, metadata={"help": "a student's teacher on the Hub (none: the family's)"}
    )
    source: str = field(default="final", metadata={"help": "which model of the run", "choices": ("final", "best")})

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass
class PushConfig:
    """Settings of ``vipriors-hub push``."""

    folder: str | None = field(
        default=None,
        metadata={"help": "a trainer's OUTPUT folder or an exported folder", "positional": True, "required": True},
    )
    repo_id: str | None = field(default=None, metadata={"help": "ORG/NAME", "required": True})
    private: bool = field(default=False, metadata={"help": "create the repository private"})
    revision: str | None = field(default=None, metadata={"help": "branch to push to (created if missing)"})
    commit_message: str | None = field(default=None, metadata={"help": "message of the Hub commit"})

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass
class ConvertConfig:
    """Settings of ``vipriors-hub convert``."""

    checkpoint: str | None = field(
        default=None,
        metadata={"help": "MoCo .pth.tar or phase-2 student checkpoint", "positional": True, "required": True},
    )
    architecture: str = field(
        default="vipriors_resnet50",
        metadata={"help": "family member to load it into", "flags": ("--model", "--architecture")},
    )
    num_classes: int = field(
        default=0, metadata={"help": "0: a teacher backbone; N: a classifier", "min": 0, "max": 1_000_000}
    )
    output: str | None = field(default=None, metadata={"help": "model folder to write", "required": True})

    def __post_init__(self) -> None:
        check_settings(self)
