"""The ``vipriors_*`` family's table: its members, their pretrained tags and Hub repositories.

Every member has two pretrained tags, one per phase of the method:

* ``student`` (the default): the 1000-class classifier distilled in phase 2 on the VIPriors
  ImageNet subset (50 images per class), evaluated at the paper's larger input resolution.
* ``teacher``: the phase-1 MoCo v2 backbone trained with the margin loss, without classifier
  (``num_classes=0``), for feature extraction, linear probes and as the phase-2 starting point.

A member is one file of this package that builds the model with timm's builder, declares itself
with :func:`add_member` (its plain-timm twin, so exported checkpoints load without this package)
and passes :func:`pretrained_cfgs` to ``generate_default_cfgs``; nothing here names a network.
"""

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


def add_member(architecture: str, timm_name: str, timm_args: dict[str, Any] | None = None) -> None:
    """Declare ``architecture`` a member whose weights are those of timm's ``timm_name(**timm_args)``."""
    TIMM_EQUIVALENTS[architecture] = (timm_name, dict(timm_args or {}))


def _cfg(architecture: str, tag: str, classifier: str, first_conv: str) -> dict[str, Any]:
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
        "pool_size": (resolution // 32, resolution // 32),
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


def pretrained_cfgs(architectures: list[str], classifier: str, first_conv: str) -> dict[str, dict[str, Any]]:
    """``{"ARCH.TAG": cfg}`` for every tag of ``architectures`` (the input of timm's ``generate_default_cfgs``)."""
    return {
        f"{arch}.{tag}": _cfg(arch, tag, classifier, first_conv) for arch in architectures for tag in PRETRAINED_TAGS
    }
