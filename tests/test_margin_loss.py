"""The margin contrastive loss against a direct per-row reference."""

import math

import pytest
import torch
import torch.nn.functional as F

from vipriors_hub.losses import (
    MarginContrastiveLoss,
    in_batch_margin_contrastive_logits,
    margin_contrastive_logits,
    margin_contrastive_loss,
)


def unit(*shape: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=-1)


def reference_loss(query, positives, negatives_per_row, margin, temperature) -> float:
    """-log softmax of the positive, row by row, from dot products written out."""
    total = 0.0
    for i in range(query.shape[0]):
        positive = (float(query[i] @ positives[i]) - margin) / temperature
        negatives = [float(query[i] @ n) / temperature for n in negatives_per_row(i)]
        denominator = math.exp(positive) + sum(math.exp(n) for n in negatives)
        total += -(positive - math.log(denominator))
    return total / query.shape[0]


@pytest.mark.parametrize("margin", [0.0, 0.4, 1.0])
@pytest.mark.parametrize("temperature", [0.07, 0.2, 1.0])
@pytest.mark.parametrize(("batch", "queue", "dim"), [(1, 1, 2), (5, 7, 16), (8, 4096, 128)])
def test_queue_loss_matches_the_reference(margin: float, temperature: float, batch: int, queue: int, dim: int) -> None:
    q, k, negatives = unit(batch, dim, seed=0), unit(batch, dim, seed=1), unit(queue, dim, seed=2)
    expected = reference_loss(q, k, lambda i: negatives, margin, temperature)
    assert margin_contrastive_loss(q, k, negatives, margin, temperature).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("margin", [0.0, 0.4])
@pytest.mark.parametrize("batch", [2, 9])
def test_in_batch_loss_matches_the_reference(margin: float, batch: int) -> None:
    q, k = unit(batch, 8, seed=3), unit(batch, 8, seed=4)
    expected = reference_loss(q, k, lambda i: [k[j] for j in range(batch) if j != i], margin, 0.2)
    assert margin_contrastive_loss(q, k, None, margin, 0.2).item() == pytest.approx(expected, rel=1e-9)
    logits = in_batch_margin_contrastive_logits(q, k, margin, 0.2)
    assert torch.allclose(logits.diagonal(), ((q * k).sum(1) - margin) / 0.2)


def test_zero_margin_is_infonce() -> None:
    q, k, negatives = unit(6, 32, seed=5), unit(6, 32, seed=6), unit(50, 32, seed=7)
    infonce = F.cross_entropy(
        torch.cat([(q * k).sum(1, keepdim=True), q @ negatives.T], dim=1) / 0.2, torch.zeros(6, dtype=torch.long)
    )
    assert torch.allclose(margin_contrastive_loss(q, k, negatives, margin=0.0, temperature=0.2), infonce)


def test_margin_makes_the_task_harder_and_gradients_stay_finite() -> None:
    q = unit(4, 16, seed=8).requires_grad_()
    k, negatives = unit(4, 16, seed=9), unit(20, 16, seed=10)
    losses = []
    for margin in (0.0, 0.2, 0.4, 0.8):
        loss = margin_contrastive_loss(q, k, negatives, margin, 0.2)
        (gradient,) = torch.autograd.grad(loss, q)
        assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0
        losses.append(loss.item())
    assert losses == sorted(losses) and losses[0] < losses[-1]


def test_logits_put_the_positive_first_and_keep_the_device_and_dtype() -> None:
    q, k, negatives = unit(3, 4, seed=11).float(), unit(3, 4, seed=12).float(), unit(5, 4, seed=13).half()
    logits = margin_contrastive_logits(q, k, negatives, 0.4, 0.2)
    assert logits.shape == (3, 6) and logits.dtype == torch.float32 and logits.device == q.device
    assert torch.allclose(logits[:, 0], ((q * k).sum(1) - 0.4) / 0.2)


def test_module_equals_function() -> None:
    q, k, negatives = unit(3, 8, seed=14), unit(3, 8, seed=15), unit(9, 8, seed=16)
    module = MarginContrastiveLoss(margin=0.3, temperature=0.1)
    assert torch.equal(module(q, k, negatives), margin_contrastive_loss(q, k, negatives, 0.3, 0.1))
    assert "margin=0.3" in repr(module)
