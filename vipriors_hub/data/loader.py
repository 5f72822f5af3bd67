"""The resumable loader: the one owner of a stream's epoch and batch position (DataLoader workers
included), as checkpoints record it."""

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..errors import VipriorsError
from .device_feed import DeviceFeed
from .stream import EpochPart, ExampleStream

__all__ = ["ResumableLoader"]


class _EpochBatches(torch.utils.data.IterableDataset):
    """The collated batches of one :class:`EpochPart` of an :class:`ExampleStream`, for a DataLoader
    that does not batch again."""

    def __init__(self, stream: ExampleStream, part: EpochPart) -> None:
        super().__init__()
        self.stream, self.part = stream, part

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        return self.stream.batches(self.part)


class _ContinuousBatches(_EpochBatches):
    """Every batch from a part on, epoch after epoch (:meth:`ExampleStream.continuous_batches`)."""

    def __iter__(self) -> Iterator[tuple[int, int, Any, int]]:
        return self.stream.continuous_batches(self.part)


class ResumableLoader:
    """Batches of an :class:`ExampleStream` with an iteration state ``{epoch, batches_done}``: the one
    owner of the epoch and batch position (the stream is told which part of which epoch to read).
    ``skipped_images`` counts the unreadable images of every batch it yielded (from every worker).

    Each complete pass moves on to the next epoch (a new order). ``persistent_workers``: the workers
    (and their prefetched batches) live across epochs, reading on into the next epoch while this one
    ends (map-style sources; the order does not change). ``device``: batches are sent there one ahead
    (the next copy overlaps the current step) and finished there (the device pipeline's pixel work).
    ``prefetch_factor`` bounds the batches each worker prepares ahead (DataLoader's default, 2, when
    ``None``); ``pin_memory`` puts batches in page-locked memory for asynchronous copies to a GPU;
    ``allow_empty`` lets this rank's share be empty (evaluation, where another process may hold every
    image) instead of refusing it. ``state_dict()`` taken after ``k`` batches of an epoch and given to
    ``load_state_dict`` of a new loader over the same stream makes the new loader continue with batch
    ``k + 1``.
    """

    def __init__(
        self,
        stream: ExampleStream,
        num_workers: int = 0,
        drop_last: bool = False,
        prefetch_factor: int | None = None,
        pin_memory: bool = False,
        allow_empty: bool = False,
        persistent_workers: bool = False,
        device: torch.device | None = None,
    ) -> None:
        self.stream = stream
        self.allow_empty = allow_empty
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.drop_last = drop_last
        self.prefetch_factor = prefetch_factor
        self.persistent_workers = persistent_workers and not stream.is_streaming
        self.device = device or torch.device("cpu")
        self.epoch = 0
        self.batches_done = 0
        self.skipped_images = 0
        self._feed: DeviceFeed | None = None
        self._feed_position: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its first batch."""
        self.epoch = epoch
        self.batches_done = 0

    def __len__(self) -> int:
        examples = len(self.stream)
        full, partial = divmod(examples, self.stream.batch_size)
        return full if self.drop_last or partial == 0 else full + 1

    def state_dict(self) -> dict[str, int]:
        """The iteration state: the epoch and how many of its batches were consumed."""
        return {"epoch": self.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a state returned by :meth:`state_dict`."""
        self.epoch = int(state["epoch"])
        self.batches_done = int(state["batches_done"])

    def close(self) -> None:
        """Stop the workers that live across epochs (a later pass starts new ones)."""
        self._feed, self._feed_position = None, None

    def _data_loader(self, dataset: torch.utils.data.IterableDataset) -> DataLoader:
        """A DataLoader over ``dataset`` with a generator of its own: starting one draws its workers'
        base seed from that generator, not from torch's global one (which training owns and
        checkpoints; the streams seed every batch themselves)."""
        return DataLoader(
            dataset,
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            prefetch_factor=self.prefetch_factor if self.num_workers > 0 else None,
            generator=torch.Generator().manual_seed(0),
        )

    def _items(self) -> Iterator[tuple[int, int, Any, int]]:
        """``(epoch, number, batch, skipped)`` of the rest of the current epoch, from the workers that
        live across epochs when they are at this position, else from new ones."""
        part = EpochPart(self.epoch, skip_batches=self.batches_done, drop_last=self.drop_last)
        if not self.persistent_workers:
            batches = iter(self._data_loader(_EpochBatches(self.stream, part)))
            numbered = ((part.epoch, -1, batch, skipped) for batch, skipped in batches)
            yield from DeviceFeed(numbered, self.device, self.stream.to_device, self.stream.finish)
            return
        count = self.stream.batch_count(self.drop_last)
        if count == 0:
            return
        if self.batches_done == count:  # the last pass read the whole epoch but was left before it closed it
            self.epoch, self.batches_done = self.epoch + 1, 0
            part = EpochPart(self.epoch, drop_last=self.drop_last)
        if self._feed is None or self._feed_position != (self.epoch, self.batches_done):
            self.close()  # the old workers stop before new ones start
            items = iter(self._data_loader(_ContinuousBatches(self.stream, part)))
            self._feed = DeviceFeed(items, self.device, self.stream.to_device, self.stream.finish)
        for _ in range(self.batches_done, count):
            item = next(self._feed)
            epoch, number = item[0], item[1] + 1
            self._feed_position = (epoch + 1, 0) if number == count else (epoch, number)
            yield item

    def __iter__(self) -> Iterator[Any]:
        """Yield the remaining batches of the current epoch (collated: images ``(B, 3, H, W)``, labels
        ``(B,)``; on ``device`` when one was given)."""
        yielded = 0
        for _, _, batch, skipped in self._items():
            self.batches_done += 1
            self.skipped_images += skipped
            if batch is None:
                continue
            yielded += 1
            yield batch
        if yielded == 0 and self.batches_done == 0 and not self.allow_empty:
            raise VipriorsError(
                f"Epoch {self.epoch} yielded no batch on rank {self.stream.rank}: the split is empty after "
                "filtering, or smaller than one batch per process."
            )
        self.epoch += 1
        self.batches_done = 0
