"""Batches sent to their device one ahead: the next batch's host-to-device copy runs on a side CUDA
stream while the current batch's step computes (apex's and timm's prefetcher pattern), then its
remaining pixel work (the device pipeline's augmentations) is queued on the compute stream. Nothing
here waits for the device on the host."""

from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = ["DeviceFeed"]

Item = tuple[int, int, Any, int]


class DeviceFeed:
    """``(epoch, number, batch, skipped)`` items of ``items`` with each ``batch`` moved by
    ``to_device(batch, device)`` one item ahead and completed by ``finish(batch)`` when handed out
    (``None`` batches pass through). On a CPU device the copy is the identity.

    Order on a GPU: the compute stream waits for the copy of the batch it is handed (an event, not
    the host), its pixel work is queued, and only then is the next batch's copy queued on the side
    stream, where it runs while this step computes."""

    def __init__(
        self,
        items: Iterator[Item],
        device: torch.device,
        to_device: Callable[[Any, torch.device], Any],
        finish: Callable[[Any], Any],
    ) -> None:
        self.items, self.device, self.to_device, self.finish = items, device, to_device, finish
        self.copy_stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._ahead: tuple[Item, torch.cuda.Event | None] | None = None
        self._exhausted = False

    def _send(self) -> tuple[Item, torch.cuda.Event | None] | None:
        """The next item with its batch's copy queued (and the event that marks its end on a GPU)."""
        try:
            epoch, number, batch, skipped = next(self.items)
        except StopIteration:
            return None
        if batch is None:
            return (epoch, number, None, skipped), None
        if self.copy_stream is None:
            return (epoch, number, self.to_device(batch, self.device), skipped), None
        with torch.cuda.stream(self.copy_stream):
            batch = self.to_device(batch, self.device)
            copied = torch.cuda.Event()
            copied.record(self.copy_stream)
        return (epoch, number, batch, skipped), copied

    def __iter__(self) -> Iterator[Item]:
        return self

    def __next__(self) -> Item:
        if self._exhausted:
            raise StopIteration
        current = self._ahead if self._ahead is not None else self._send()
        self._ahead = None
        if current is None:
            self._exhausted = True
            raise StopIteration
        (epoch, number, batch, skipped), copied = current
        if copied is not None:
            compute = torch.cuda.current_stream(self.device)
            compute.wait_event(copied)
            _record(batch, compute)
        finished = self.finish(batch) if batch is not None else None
        self._ahead = self._send()
        return epoch, number, finished, skipped


def _record(value: Any, stream: torch.cuda.Stream) -> None:
    """Tell the caching allocator that the tensors of ``value`` (copied on the side stream) are used on
    ``stream``, so that their memory is not reused before that stream is done with them."""
    if isinstance(value, torch.Tensor):
        if value.is_cuda:
            value.record_stream(stream)
    elif isinstance(value, dict):
        for item in value.values():
            _record(item, stream)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _record(item, stream)
