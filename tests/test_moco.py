"""MoCo building blocks: queue, momentum update, shuffle-BN."""

import pytest
import torch
from accelerate import Accelerator
from torch import nn

from vipriors_hub.train.moco import (
    KeyQueue,
    build_key_encoder,
    build_query_encoder,
    momentum_update,
    shuffled_key_forward,
)


def rows(start: int, count: int) -> torch.Tensor:
    """Keys whose first coordinate numbers them."""
    return torch.arange(start, start + count, dtype=torch.float32)[:, None].repeat(1, 3)


def test_queue_is_fifo_and_wraps_around_with_any_batch_size() -> None:
    queue = KeyQueue(size=5, dim=3)
    queue.enqueue(rows(0, 2))
    queue.enqueue(rows(2, 2))
    assert queue.keys[:4, 0].tolist() == [0, 1, 2, 3] and int(queue.pointer) == 4
    queue.enqueue(rows(4, 3))  # partial wrap: 4 -> slot 4, 5 -> slot 0, 6 -> slot 1
    assert queue.keys[:, 0].tolist() == [5, 6, 2, 3, 4] and int(queue.pointer) == 2
    queue.enqueue(rows(7, 1))
    assert queue.keys[:, 0].tolist() == [5, 6, 7, 3, 4] and int(queue.pointer) == 3


def test_queue_keeps_the_newest_keys_of_an_oversized_batch() -> None:
    queue = KeyQueue(size=4, dim=3)
    queue.enqueue(rows(0, 1))
    queue.enqueue(rows(10, 6))
    assert sorted(queue.keys[:, 0].tolist()) == [12, 13, 14, 15]
    assert int(queue.pointer) == 3
    queue.enqueue(rows(20, 1))
    assert 12 not in queue.keys[:, 0].tolist() and 20 in queue.keys[:, 0].tolist()


def test_momentum_update_is_an_exponential_moving_average() -> None:
    query = build_query_encoder("vipriors_resnet_tiny", projection_dim=8)
    key = build_key_encoder(query)
    with torch.no_grad():
        for parameter in query.parameters():
            parameter.add_(torch.randn_like(parameter))
    before_key = [p.clone() for p in key.parameters()]
    before_query = [p.clone() for p in query.parameters()]

    momentum_update(query, key, momentum=0.9)

    assert not any(p.requires_grad for p in key.parameters())
    for k_new, k_old, q in zip(key.parameters(), before_key, query.parameters(), strict=True):
        assert torch.allclose(k_new, 0.9 * k_old + 0.1 * q, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(query.parameters(), before_query, strict=True))


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_single_process_shuffle_bn_round_trip(groups: int) -> None:
    images = torch.randn(7, 3, 4, 4)
    chunks: list[torch.Tensor] = []

    def encode(batch: torch.Tensor) -> torch.Tensor:
        chunks.append(batch)
        return batch.flatten(1)[:, :5] * 2

    keys = shuffled_key_forward(encode, images, Accelerator(cpu=True), torch.Generator().manual_seed(0), groups)

    assert torch.equal(keys, images.flatten(1)[:, :5] * 2)
    assert len(chunks) == groups and sum(len(c) for c in chunks) == 7
    assert not torch.equal(torch.cat(chunks), images), "the key batch must be shuffled before encoding"


def test_shuffle_bn_changes_batchnorm_statistics_but_not_per_sample_functions() -> None:
    norm = nn.BatchNorm1d(2).train()
    images = torch.randn(8, 2)
    grouped = shuffled_key_forward(norm, images, Accelerator(cpu=True), torch.Generator().manual_seed(1), groups=2)
    assert grouped.shape == images.shape and not torch.allclose(grouped, norm(images))
