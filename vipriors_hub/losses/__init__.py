"""Losses of the method, one per file, each a pure function plus a thin module the trainers call.

* ``margin_contrastive.py``: the paper's margin InfoNCE (``MarginContrastiveLoss``), phase 1;
* ``ofd.py``: OFD's partial L2 with connectors and margins (``OFDLoss``), phase 2.
"""

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
