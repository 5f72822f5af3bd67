"""vipriors_hub: "Distilling Visual Priors from Self-Supervised Learning" for timm and the Hub.

Importing the package registers the ``vipriors_*`` model family with timm::

    import timm
    import vipriors_hub  # noqa: F401

    model = timm.create_model("vipriors_resnet50", pretrained=True)

(in either order: the family registers when timm is imported, see
:mod:`vipriors_hub._timm_registration`). Everything else loads on first use (``from vipriors_hub
import train_teacher, train_student, evaluate``), so that ``import vipriors_hub`` and the command
line's ``--help`` stay light.
"""

import importlib
from typing import Any

from ._timm_registration import register_with_timm
from .errors import PretrainedWeightsUnavailableError, VipriorsError
from .version import __version__

register_with_timm()

_LAZY = {
    "ARCHITECTURES": "vipriors_hub.models",
    "HUB_ORGANIZATION": "vipriors_hub.models",
    "forward_pre_relu_features": "vipriors_hub.models",
    "hub_repo_id": "vipriors_hub.models",
    "stage_channels": "vipriors_hub.models",
    "DataConfig": "vipriors_hub.data.settings",
    "StudentConfig": "vipriors_hub.train.student_settings",
    "TeacherConfig": "vipriors_hub.train.teacher_settings",
    "train_student": "vipriors_hub.train.student",
    "train_teacher": "vipriors_hub.train.teacher",
}


def __getattr__(name: str) -> Any:
    """The models' names, the trainers, their settings and ``evaluate`` (the module), imported when
    first asked for."""
    if name == "evaluate":
        return importlib.import_module("vipriors_hub.evaluate")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vipriors_hub' has no attribute '{name}'")


def __dir__() -> list[str]:
    """The package's public names (loaded or not)."""
    return __all__


__all__ = [
    "ARCHITECTURES",
    "DataConfig",
    "StudentConfig",
    "TeacherConfig",
    "HUB_ORGANIZATION",
    "PretrainedWeightsUnavailableError",
    "VipriorsError",
    "__version__",
    "evaluate",
    "forward_pre_relu_features",
    "hub_repo_id",
    "stage_channels",
    "train_student",
    "train_teacher",
]
