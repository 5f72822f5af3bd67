"""The timm-registered ``vipriors_*`` model family and its pre-ReLU feature access."""

from .features import forward_pre_relu_features, pre_relu_batchnorms, stage_channels
from .vipriors_resnet import (
    ARCHITECTURES,
    HUB_ORGANIZATION,
    PAPER_ID,
    PRETRAINED_TAGS,
    TIMM_EQUIVALENTS,
    hub_repo_id,
)

__all__ = [
    "ARCHITECTURES",
    "HUB_ORGANIZATION",
    "PAPER_ID",
    "PRETRAINED_TAGS",
    "TIMM_EQUIVALENTS",
    "forward_pre_relu_features",
    "hub_repo_id",
    "pre_relu_batchnorms",
    "stage_channels",
]
