"""The device pipeline's stream: batches of cached pixels with their augmentations' parameters.

It reads a :class:`~vipriors_hub.data.decoded_cache.DecodedSplit` in the order, shares and turns of
:class:`~vipriors_hub.data.stream.ExampleStream` (the same epoch permutation rule, rank shares,
batch seeds and exact resume); a batch is a gather of uint8 pixels and a draw of per-sample
parameters from a ``torch.Generator`` seeded from ``(seed, epoch, rank, batch)``. The pixel work
runs where the batch is sent (:meth:`CachedExampleStream.finish`).
"""

from typing import Any, NamedTuple

import torch
from torch import Tensor

from .batch_transforms import BatchTransform
from .decoded_cache import DecodedSplit
from .stream import ExampleStream

__all__ = ["CachedExampleStream", "HostBatch"]


class HostBatch(NamedTuple):
    """A gathered batch as a worker makes it: the canvas ``(B, H, W, 3)`` uint8, the device
    parameters, the host values of its augmentations, labels ``(B,)`` and split rows ``(B,)``."""

    canvas: Tensor
    params: dict[str, Tensor]
    host: dict[str, Any]
    labels: Tensor
    rows: Tensor


class CachedExampleStream(ExampleStream):
    """:class:`ExampleStream` over a decoded cache, with a :class:`BatchTransform` instead of a PIL
    transform. Unreadable images were left out when the cache was built, so every batch is full."""

    def __init__(self, source: DecodedSplit, transform: BatchTransform, **options: Any) -> None:
        super().__init__(source, transform, **options)  # type: ignore[arg-type]

    @property
    def is_streaming(self) -> bool:
        """Never: a decoded cache is map-style."""
        return False

    def make_batch(self, epoch: int, number: int, drop_last: bool) -> tuple[HostBatch, int]:
        """Batch ``number`` of ``epoch``: its pixels gathered, its parameters drawn (none unreadable)."""
        rows = self.batch_rows(epoch, number)
        generator = torch.Generator().manual_seed(self.batch_seed(epoch, number))
        canvas, sizes = self.source.gather(rows)
        params, host = self.transform.draw(sizes, generator)
        labels, source_rows = torch.from_numpy(self.source.labels[rows]), torch.from_numpy(self.source.rows[rows])
        return HostBatch(canvas, params, host, labels, source_rows), 0

    def __iter__(self) -> Any:
        raise TypeError("A cached stream yields whole batches: read it with ResumableLoader.")

    def to_device(self, batch: HostBatch, device: torch.device) -> HostBatch:
        """The canvas and parameters of ``batch`` sent to ``device`` (asynchronously from pinned memory)."""
        params = {name: value.to(device, non_blocking=True) for name, value in batch.params.items()}
        return batch._replace(canvas=batch.canvas.to(device, non_blocking=True), params=params)

    def finish(self, batch: HostBatch) -> tuple[Any, ...]:
        """The pixel work of ``batch`` on its device: ``(images, labels[, rows])`` as the PIL stream
        collates them (labels and rows stay on the CPU)."""
        images = self.transform(batch.canvas, batch.params, batch.host)
        return (images, batch.labels, batch.rows) if self.with_index else (images, batch.labels)
