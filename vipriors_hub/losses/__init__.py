"""Losses of the method, each a pure function plus a thin module."""

from .margin_contrastive import (
    MarginContrastiveLoss,
    in_batch_margin_contrastive_logits,
    margin_contrastive_logits,
    margin_contrastive_loss,
)
from .ofd import OFDLoss, make_connector, ofd_loss, ofd_margins, partial_l2

__all__ = [
    "MarginContrastiveLoss",
    "OFDLoss",
    "make_connector",
    "ofd_loss",
    "ofd_margins",
    "partial_l2",
    "in_batch_margin_contrastive_logits",
    "margin_contrastive_logits",
    "margin_contrastive_loss",
]
