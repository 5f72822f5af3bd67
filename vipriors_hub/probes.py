"""The two protocols that score a teacher's frozen features: weighted kNN and a linear probe."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["knn_scores", "linear_probe_scores"]


def knn_scores(
    bank: Tensor, bank_labels: Tensor, queries: Tensor, num_classes: int, k: int = 200, temperature: float = 0.07
) -> Tensor:
    """Weighted kNN class scores ``(Q, C)``: the ``k`` most cosine-similar bank features vote for their
    class with weight ``exp(similarity / temperature)`` (InstDisc / MoCo protocol).

    Args:
        bank: ``(N, F)`` features with labels ``(N,)``; queries: ``(Q, F)``.
    """
    bank = F.normalize(bank, dim=1)
    k = min(k, bank.shape[0])
    scores = []
    for chunk in F.normalize(queries, dim=1).split(1024):
        similarity, index = (chunk @ bank.T).topk(k, dim=1)
        votes = torch.zeros(chunk.shape[0], num_classes).scatter_add_(
            1, bank_labels[index], (similarity / temperature).exp()
        )
        scores.append(votes)
    return torch.cat(scores)


def linear_probe_scores(
    train: Tensor, train_labels: Tensor, queries: Tensor, num_classes: int, iterations: int, weight_decay: float
) -> Tensor:
    """Fit a multinomial logistic regression on frozen, standardised features with L-BFGS from zero
    weights and return the class scores ``(Q, C)`` of ``queries``. Shapes: ``train`` ``(N, F)``,
    ``queries`` ``(Q, F)``."""
    mean, std = train.mean(dim=0), train.std(dim=0).clamp_min(1e-6)
    inputs = (train - mean) / std
    classifier = nn.Linear(train.shape[1], num_classes)
    # The problem is convex: start from zero, so that the scores do not depend on the global generator.
    nn.init.zeros_(classifier.weight)
    nn.init.zeros_(classifier.bias)
    optimizer = torch.optim.LBFGS(classifier.parameters(), lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(classifier(inputs), train_labels) + weight_decay * classifier.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return classifier((queries - mean) / std)
