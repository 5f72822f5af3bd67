"""Models: the timm-registered ``vipriors_*`` family and its pre-ReLU feature access.

* ``family.py``: the family's table (tags, resolutions, Hub repositories, plain-timm twins);
* ``resnet.py``: the ResNet members, registered with timm (a new member is one such file);
* ``features.py``: the pre-ReLU stage features OFD distils;
* ``registry.py``: the family's rows as timm registers them (``vipriors-hub models``).
"""

from . import resnet  # noqa: F401  (registers the ResNet members with timm)
from .family import (
    HUB_ORGANIZATION,
    PAPER_ID,
    PRETRAINED_TAGS,
    TAG_RESOLUTIONS,
    TIMM_EQUIVALENTS,
    hub_repo_id,
)
from .features import forward_pre_relu_features, pre_relu_batchnorms, stage_channels
from .registry import family_table

ARCHITECTURES = tuple(TIMM_EQUIVALENTS)
"""Every member of the family, in the order they were declared."""

__all__ = [
    "ARCHITECTURES",
    "HUB_ORGANIZATION",
    "PAPER_ID",
    "PRETRAINED_TAGS",
    "TAG_RESOLUTIONS",
    "TIMM_EQUIVALENTS",
    "family_table",
    "forward_pre_relu_features",
    "hub_repo_id",
    "pre_relu_batchnorms",
    "stage_channels",
]
