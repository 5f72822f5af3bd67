"""The resumable loader: the one owner of a stream's epoch and batch position (DataLoader workers
included), as checkpoints record it."""

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..errors import VipriorsError
from .stream import EpochPart, ExampleStream

__all__ = ["ResumableLoader"]


class _CollatedBatches(torch.utils.data.IterableDataset):
    """The collated batches of one :class:`EpochPart` of an :class:`ExampleStream`, for a DataLoader
    that does not batch again."""

    def __init__(self, stream: ExampleStream, part: EpochPart) -> None:
        super().__init__()
        self.stream, self.part = stream, part

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        return self.stream.batches(self.part)


class ResumableLoader:
    """Batches of an :class:`ExampleStream` with an iteration state ``{epoch, batches_done}``: the one
    owner of the epoch and batch position (the stream is told which part of which epoch to read).
    ``skipped_images`` counts the unreadable images of every batch it yielded (from every worker).

    Each complete pass moves on to the next epoch (a new order). ``prefetch_factor`` bounds the
    batches each worker prepares ahead (DataLoader's default, 2, when ``None``); ``pin_memory``
    puts batches in page-locked memory for asynchronous copies to a GPU; ``allow_empty`` lets this rank's
    share be empty (evaluation, where another process may hold every image) instead of refusing it.
    ``state_dict()`` taken after ``k``
    batches of an epoch and given to ``load_state_dict`` of a new loader over the same stream makes
    the new loader continue with batch ``k + 1``.
    """

    def __init__(
        self,
        stream: ExampleStream,
        num_workers: int = 0,
        drop_last: bool = False,
        prefetch_factor: int | None = None,
        pin_memory: bool = False,
        allow_empty: bool = False,
    ) -> None:
        self.stream = stream
        self.allow_empty = allow_empty
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.drop_last = drop_last
        self.prefetch_factor = prefetch_factor
        self.epoch = 0
        self.batches_done = 0
        self.skipped_images = 0

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

    def __iter__(self) -> Iterator[Any]:
        """Yield the remaining batches of the current epoch (collated: images ``(B, 3, H, W)``, labels ``(B,)``)."""
        part = EpochPart(self.epoch, skip_batches=self.batches_done, drop_last=self.drop_last)
        loader = DataLoader(
            _CollatedBatches(self.stream, part),
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=False,
            pin_memory=self.pin_memory,
            prefetch_factor=self.prefetch_factor if self.num_workers > 0 else None,
        )
        yielded = 0
        for batch, skipped in loader:
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
