"""Losses of the method, each a pure function plus a thin module."""

from .margin_contrastive import (
    MarginContrastiveLoss,
    in_batch_margin_contrastive_logits,
    margin_contrastive_logits,
    margin_contrastive_loss,
)

__all__ = [
    "MarginContrastiveLoss",
    "in_batch_margin_contrastive_logits",
    "margin_contrastive_logits",
    "margin_contrastive_loss",
]
