"""The paper's margin contrastive loss: InfoNCE with a margin subtracted from the positive logit.

For a query ``q``, its positive key ``k+`` and negatives ``n_j`` (all L2-normalised)::

    logits = [q.k+ - m, q.n_1, ..., q.n_K] / T
    loss   = cross_entropy(logits, target=0)

Subtracting ``m`` makes the positive harder to separate, so the representation must push it
further from the negatives; this is what lets a small queue (4,096 keys for 50k images) still
learn well. ``m = 0`` is exactly InfoNCE / MoCo's loss.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MarginContrastiveLoss",
    "in_batch_margin_contrastive_logits",
    "margin_contrastive_logits",
    "margin_contrastive_loss",
]


def margin_contrastive_logits(
    query: Tensor, positive_key: Tensor, negatives: Tensor, margin: float = 0.4, temperature: float = 0.2
) -> Tensor:
    """Logits of the margin loss with a bank of negatives (MoCo's queue).

    Args:
        query: ``(B, D)`` L2-normalised queries.
        positive_key: ``(B, D)`` L2-normalised keys, row ``i`` the positive of query ``i``.
        negatives: ``(K, D)`` L2-normalised negative keys shared by every query.
        margin: subtracted from each positive similarity before the temperature.
        temperature: softmax temperature.

    Returns:
        ``(B, 1 + K)`` logits; column 0 holds the positive.
    """
    positive = (query * positive_key).sum(dim=1, keepdim=True) - margin
    negative = query @ negatives.to(query.dtype).T
    return torch.cat([positive, negative], dim=1) / temperature


def in_batch_margin_contrastive_logits(
    query: Tensor, keys: Tensor, margin: float = 0.4, temperature: float = 0.2
) -> Tensor:
    """Logits of the in-batch variant: the negatives of query ``i`` are the other keys of the batch.

    Args:
        query: ``(B, D)`` L2-normalised queries.
        keys: ``(B, D)`` L2-normalised keys, row ``i`` the positive of query ``i``.

    Returns:
        ``(B, B)`` logits; the diagonal holds the positives (margin subtracted), the rest the negatives.
    """
    similarities = query @ keys.T
    eye = torch.eye(similarities.shape[0], dtype=similarities.dtype, device=similarities.device)
    return (similarities - margin * eye) / temperature


def margin_contrastive_loss(
    query: Tensor,
    positive_key: Tensor,
    negatives: Tensor | None = None,
    margin: float = 0.4,
    temperature: float = 0.2,
) -> Tensor:
    """Mean margin contrastive loss over the batch (scalar).

    With ``negatives`` (``(K, D)``, MoCo's queue) every query is contrasted with the bank; without,
    with the other keys of the batch. Shapes as in :func:`margin_contrastive_logits`.
    """
    if negatives is None:
        logits = in_batch_margin_contrastive_logits(query, positive_key, margin, temperature)
        target = torch.arange(logits.shape[0], device=logits.device)
    else:
        logits = margin_contrastive_logits(query, positive_key, negatives, margin, temperature)
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target)


class MarginContrastiveLoss(nn.Module):
    """Module form of :func:`margin_contrastive_loss` (defaults of the paper: m = 0.4, T = 0.2)."""

    def __init__(self, margin: float = 0.4, temperature: float = 0.2) -> None:
        super().__init__()
        self.margin = margin
        self.temperature = temperature

    def forward(self, query: Tensor, positive_key: Tensor, negatives: Tensor | None = None) -> Tensor:
        """Scalar loss; ``query``/``positive_key`` ``(B, D)``, ``negatives`` ``(K, D)`` or ``None``."""
        return margin_contrastive_loss(query, positive_key, negatives, self.margin, self.temperature)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, temperature={self.temperature}"
