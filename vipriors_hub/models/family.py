"""The ``vipriors_*`` family's table: its members, their pretrained tags and Hub repositories.

Every member has two pretrained tags, one per phase of the method:

* ``student`` (the default): the 1000-class classifier distilled in phase 2 on the VIPriors
  ImageNet subset (50 images per class), evaluated at the paper's larger input resolution.
* ``teacher``: the phase-1 MoCo v2 backbone trained with the margin loss, without classifier
  (``num_classes=0``), for feature extraction, linear probes and as the phase-2 starting point.

A member is one file of this package that builds the model with timm's builder, declares itself
with :func:`add_member` (its plain-timm twin, so exported checkpoints load without this package,
and its model class, whose constructor says which options it takes) and passes
:func:`pretrained_cfgs` (with its output stride) to ``generate_default_cfgs``; nothing here names a
network.
"""

import inspect
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, ImageNetInfo

__all__ = [
    "HUB_ORGANIZATION",
    "PAPER_ID",
    "PAPER_NAME",
    "PRETRAINED_TAGS",
    "TAG_RESOLUTIONS",
    "TIMM_EQUIVALENTS",
    "add_member",
    "constructor_takes",
    "hub_repo_id",
    "pretrained_cfgs",
]

HUB_ORGANIZATION = "vipriors-hub"
"""The Hugging Face Hub organisation that hosts every published checkpoint of the family."""

PAPER_ID = "arXiv:2008.00261"
PAPER_NAME = "Distilling Visual Priors from Self-Supervised Learning"

PRETRAINED_TAGS = ("student", "teacher")
"""Tags of each member, the default (phase-2 student) first."""

TAG_RESOLUTIONS = {"student": 448, "teacher": 224}
"""Input size of each tag's published weights: the paper distils and tests at 448 px."""

TIMM_EQUIVALENTS: dict[str, tuple[str, dict[str, Any]]] = {}
"""Each member as a plain timm model with identical weights: ``(timm name, model_args)``, filled by
:func:`add_member`. Exported ``config.json`` files name these."""


def hub_repo_id(architecture: str, tag: str) -> str:
    """Return the Hub repository id that hosts ``architecture.tag``, e.g. ``vipriors-hub/vipriors_resnet50.teacher``."""
    return f"{HUB_ORGANIZATION}/{architecture}.{tag}"


_MODEL_CLASSES: dict[str, type] = {}


def add_member(architecture: str, model_class: type, timm_name: str, timm_args: dict[str, Any] | None = None) -> None:
    """Declare ``architecture`` a member built as ``model_class`` whose weights are those of timm's
    ``timm_name(**timm_args)``."""
    TIMM_EQUIVALENTS[architecture] = (timm_name, dict(timm_args or {}))
    _MODEL_CLASSES[architecture] = model_class


def constructor_takes(architecture: str, argument: str) -> bool:
    """Whether the model class of the member ``architecture`` takes ``argument`` (e.g. ``zero_init_last``);
    ``False`` for an architecture outside the family."""
    model_class = _MODEL_CLASSES.get(architecture)
    return model_class is not None and argument in inspect.signature(model_class.__init__).parameters


def _cfg(architecture: str, tag: str, classifier: str, first_conv: str, reduction: int) -> dict[str, Any]:
    resolution = TAG_RESOLUTIONS[tag]
    phase = (
        "phase-2 self-distilled student, 1000-class VIPriors ImageNet classifier"
        if tag == "student"
        else "phase-1 MoCo v2 teacher trained with the margin loss (backbone without classifier)"
    )
    return {
        "hf_hub_id": hub_repo_id(architecture, tag),
        "num_classes": 1000 if tag == "student" else 0,
        "label_names": tuple(ImageNetInfo().label_names()) if tag == "student" else None,
        "input_size": (3, resolution, resolution),
        "test_input_size": (3, resolution, resolution),
        "pool_size": (resolution // reduction, resolution // reduction),
        "crop_pct": 0.875,
        "interpolation": "bilinear",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": first_conv,
        "classifier": classifier,
        "license": "apache-2.0",
        "description": f"{architecture}: {phase}.",
        "paper_name": PAPER_NAME,
        "paper_ids": PAPER_ID,
    }


def pretrained_cfgs(
    architectures: list[str], classifier: str, first_conv: str, reduction: int
) -> dict[str, dict[str, Any]]:
    """``{"ARCH.TAG": cfg}`` for every tag of ``architectures`` (the input of timm's
    ``generate_default_cfgs``); ``reduction`` is the members' output stride (the last entry of their
    ``feature_info``), which sets each cfg's ``pool_size``."""
    return {
        f"{arch}.{tag}": _cfg(arch, tag, classifier, first_conv, reduction)
        for arch in architectures
        for tag in PRETRAINED_TAGS
    }
