"""vipriors_hub: "Distilling Visual Priors from Self-Supervised Learning" for timm and the Hub.

Importing the package registers the ``vipriors_*`` model family with timm::

    import timm
    import vipriors_hub  # noqa: F401

    model = timm.create_model("vipriors_resnet50", pretrained=True)

The trainers and evaluation load on first use (``from vipriors_hub import train_teacher,
train_student, evaluate``), so that registering the family stays light.
"""

import importlib
from typing import Any

from .errors import PretrainedWeightsUnavailableError, VipriorsError
from .models import ARCHITECTURES, HUB_ORGANIZATION, forward_pre_relu_features, hub_repo_id, stage_channels
from .version import __version__

_LAZY = {
    "DataConfig": "vipriors_hub.data",
    "StudentConfig": "vipriors_hub.train.student",
    "TeacherConfig": "vipriors_hub.train.teacher",
    "train_student": "vipriors_hub.train.student",
    "train_teacher": "vipriors_hub.train.teacher",
}


def __getattr__(name: str) -> Any:
    """The trainers, their settings and ``evaluate`` (the module), imported when first asked for."""
    if name == "evaluate":
        return importlib.import_module("vipriors_hub.evaluate")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vipriors_hub' has no attribute '{name}'")


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
