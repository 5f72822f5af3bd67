"""Iteration over one process's share of a split: sharded, reshuffled every epoch, resumable exactly.

Sharding is done here with the process's rank, not with accelerate's dispatching: dispatching
decodes every batch on the main process and sends it to the others, while sharding lets every
process read and decode only its own share. For a map-style dataset (every local source, and the
VIPriors subset once selected) the epoch order is a permutation drawn from ``(seed, epoch)``; each
rank takes every ``world_size``-th example of it (the remainder dropped when training, so that all
ranks run the same number of steps), and DataLoader workers take whole batches in turn, so the
order a rank sees does not depend on the number of workers. A streaming dataset (an
``IterableDataset``) is shuffled with ``datasets``' seeded buffer, ``set_epoch`` and
``split_dataset_by_node``: kept for library users, since the trainers and evaluations refuse
streamed sources (``DataConfig.refuse_streamed_splits``).

Exact resume: the random augmentations of a batch are drawn from generators seeded once for that
batch from ``(seed, epoch, rank, batch)``, so skipping the first ``k`` batches of an epoch (without
reading them) and continuing gives the very batches an uninterrupted run would have seen, whatever
the number of workers. A map-style source is read one Arrow batch (the batch's rows) at a time. A
streaming source resumes exactly when it is read by at most one worker (with several, the workers'
turns restart at worker 0).
"""

import contextlib
import logging
import random
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import datasets
import numpy as np
import torch
from datasets.distributed import split_dataset_by_node
from torch.utils.data import default_collate, get_worker_info

from .images import UnreadableImageError, decode_rgb

__all__ = ["TOP_UP_TRIES", "EpochPart", "ExampleStream"]

logger = logging.getLogger(__name__)

TOP_UP_TRIES = 4
"""Replacement candidates drawn per missing image of a training batch (more than enough unless most
of the split is unreadable; a batch that still lacks images is shorter)."""


@contextlib.contextmanager
def _seeded_rngs(seed: int, restore: bool) -> Iterator[None]:
    """Seed torch's CPU, ``random``'s and numpy's global generators for one batch.

    ``restore`` puts the previous states back afterwards (needed in the training process itself;
    a DataLoader worker owns its generators)."""
    if not restore:
        torch.default_generator.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        yield
        return
    torch_state, random_state, numpy_state = torch.get_rng_state(), random.getstate(), np.random.get_state()
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        random.setstate(random_state)
        np.random.set_state(numpy_state)


class EpochPart(NamedTuple):
    """What one pass of a loader reads: epoch ``epoch`` after its first ``skip_batches`` batches,
    without a last batch shorter than the batch size when ``drop_last``."""

    epoch: int
    skip_batches: int = 0
    drop_last: bool = False


class ExampleStream(torch.utils.data.IterableDataset):
    """Decoded, transformed ``(image, label)`` pairs of one process's share of a split.

    Args:
        source: a split with columns ``image`` (``datasets.Image(decode=False)``) and ``label``.
        transform: PIL image -> tensor ``(3, H, W)`` (or a tuple of views).
        shuffle: draw a new order every epoch (training); otherwise the source's order.
        seed: seed of the orders and of the augmentations.
        rank, world_size: this process and the number of processes.
        batch_size: the loader's batch size (workers take whole batches in turn).
        even_shares: drop the remainder so every rank gets the same number of examples.
        shuffle_buffer: buffer size of a streaming source's shuffle.
        with_index: also yield each example's row index in a map-style source:
            ``(image, label, index)``, so that predictions can be matched to ids although
            unreadable images are skipped.
    """

    def __init__(
        self,
        source: datasets.Dataset | datasets.IterableDataset,
        transform: Callable[[Any], Any],
        *,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        batch_size: int = 1,
        even_shares: bool | None = None,
        shuffle_buffer: int = 10_000,
        with_index: bool = False,
    ) -> None:
        super().__init__()
        self.source = source
        self.transform = transform
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.batch_size = batch_size
        self.even_shares = shuffle if even_shares is None else even_shares
        self.shuffle_buffer = shuffle_buffer
        if with_index and self.is_streaming:
            raise ValueError("with_index needs a map-style source.")
        self.with_index = with_index
        self.skipped_images = 0
        self._order: tuple[int, np.ndarray] | None = None

    @property
    def is_streaming(self) -> bool:
        """Whether the source is a ``datasets.IterableDataset`` (length unknown)."""
        return isinstance(self.source, datasets.IterableDataset)

    def rank_indices(self, epoch: int = 0) -> np.ndarray:
        """Indices into a map-style source that this rank reads in epoch ``epoch``, in order."""
        total = len(self.source)
        order = np.random.default_rng([self.seed, epoch]).permutation(total) if self.shuffle else np.arange(total)
        if self.even_shares:
            order = order[: total - total % self.world_size]
        return order[self.rank :: self.world_size]

    def __len__(self) -> int:
        if self.is_streaming:
            raise TypeError("A streaming source has no length.")
        return len(self.rank_indices())

    def batch_count(self, drop_last: bool) -> int:
        """Batches of an epoch of a map-style source (the last, shorter one dropped when ``drop_last``)."""
        examples = len(self)
        return examples // self.batch_size if drop_last else -(-examples // self.batch_size)

    def batch_seed(self, epoch: int, number: int) -> int:
        """The seed of batch ``number`` of ``epoch`` on this rank: its augmentations and top-ups."""
        return int(np.random.SeedSequence([self.seed, epoch, self.rank, number]).generate_state(1)[0])

    def batch_rows(self, epoch: int, number: int) -> np.ndarray:
        """The source rows of batch ``number`` of ``epoch`` on this rank (the epoch's order is drawn once
        per epoch and process, not once per batch)."""
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, self.rank_indices(epoch))
        return self._order[1][number * self.batch_size : (number + 1) * self.batch_size]

    def _examples(self, rows: list[int]) -> Iterator[dict[str, Any]]:
        """The raw examples of ``rows``, read as one Arrow batch."""
        table = self.source.select_columns(["image", "label"])[rows]
        for image, label, row in zip(table["image"], table["label"], rows, strict=True):
            yield {"image": image, "label": label, "_index": row}

    def _map_style_batch(self, epoch: int, number: int, drop_last: bool) -> tuple[list[tuple[Any, ...]], int]:
        """Batch ``number`` of ``epoch``: its transformed examples and the number of unreadable images
        skipped in it (a training batch is topped up, see :meth:`batches`)."""
        rows = self.batch_rows(epoch, number).tolist()
        seed = self.batch_seed(epoch, number)
        with _seeded_rngs(seed, restore=get_worker_info() is None):
            transformed, unreadable = self._transform(self._examples(rows), len(rows))
            missing = len(rows) - len(transformed)
            if missing and drop_last:
                # An unreadable candidate is counted where its own batch reads it (or not at all
                # when it lies in the epoch's dropped tail), not here.
                extra, _ = self._transform(self._replacements(missing, seed, rows, epoch), missing)
                transformed += extra
        return transformed, unreadable

    def collate(self, transformed: list[tuple[Any, ...]]) -> Any:
        """A batch of transformed examples (``None`` when there is none)."""
        return default_collate(transformed) if transformed else None

    def make_batch(self, epoch: int, number: int, drop_last: bool) -> tuple[Any, int]:
        """Batch ``number`` of ``epoch`` on this rank, collated, with its count of unreadable images."""
        transformed, unreadable = self._map_style_batch(epoch, number, drop_last)
        return self.collate(transformed), unreadable

    def _warn_skipped(self, skipped: int, epoch: int) -> None:
        if skipped:
            logger.warning(
                "Skipped %d unreadable image(s) (corrupt or truncated) in epoch %d on rank %d.",
                skipped,
                epoch,
                self.rank,
            )

    def continuous_batches(self, part: EpochPart) -> Iterator[tuple[int, int, Any, int]]:
        """Every batch from ``part`` on, epoch after epoch, without end, as ``(epoch, number, batch,
        skipped)``: what a loader whose workers live across epochs reads. The ``g``-th batch of the
        whole sequence is made by worker ``g mod workers`` (the DataLoader's round-robin), so the
        sequence does not depend on the number of workers. Map-style sources only."""
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch, skip, position = part.epoch, part.skip_batches, 0
        while True:
            skipped = 0
            for number in range(skip, self.batch_count(part.drop_last)):
                if position % workers == worker:
                    batch, unreadable = self.make_batch(epoch, number, part.drop_last)
                    skipped += unreadable
                    yield epoch, number, batch, unreadable
                position += 1
            self._warn_skipped(skipped, epoch)
            epoch, skip = epoch + 1, 0

    def _streamed_batches(
        self, part: EpochPart, worker: int, workers: int
    ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """This worker's examples of a streaming source in groups of ``batch_size``, numbered apart from
        other workers' groups."""
        stream = self.source
        if self.shuffle:
            stream = stream.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer)
        stream.set_epoch(part.epoch)
        if self.world_size > 1:
            stream = split_dataset_by_node(stream, rank=self.rank, world_size=self.world_size)
        skip = len(range(worker, part.skip_batches, workers))
        group: list[dict[str, Any]] = []
        number = skip
        for position, example in enumerate(stream):
            if position < skip * self.batch_size:
                continue
            group.append(example)
            if len(group) == self.batch_size:
                yield worker * 2**32 + number, group
                group, number = [], number + 1
        if group and not part.drop_last:
            yield worker * 2**32 + number, group

    def _replacements(self, count: int, seed: int, batch: list[int], epoch: int) -> Iterator[dict[str, Any]]:
        """Up to ``count`` x :data:`TOP_UP_TRIES` distinct examples of this rank's share of ``epoch``
        outside ``batch`` (its rows), drawn with ``seed`` (the batch's): what tops up a training batch
        that lost unreadable images."""
        candidates = np.setdiff1d(self.rank_indices(epoch), batch)
        rng = np.random.default_rng(seed)
        rows = rng.choice(candidates, size=min(len(candidates), count * TOP_UP_TRIES), replace=False).tolist()
        return self._examples(rows)

    def _transform(self, examples: Iterator[dict[str, Any]], wanted: int) -> tuple[list[tuple[Any, ...]], int]:
        """Up to ``wanted`` transformed ``examples`` and the number of unreadable ones skipped."""
        transformed, skipped = [], 0
        for example in examples:
            if len(transformed) == wanted:
                break
            try:
                image = decode_rgb(example["image"])
            except UnreadableImageError as error:
                skipped += 1
                logger.debug("Skipping %s", error)
                continue
            item = (self.transform(image), int(example["label"]))
            transformed.append((*item, example["_index"]) if self.with_index else item)
        return transformed, skipped

    def _transformed_batches(self, part: EpochPart) -> Iterator[tuple[list[tuple[Any, ...]], int]]:
        """This rank's (and DataLoader worker's) batches of ``part``, each a list of transformed
        examples with the number of unreadable images skipped in it. An unreadable image is skipped
        and counted; in a training epoch (``drop_last``, a map-style source) its place is taken by
        another image of the rank's share drawn from the batch's seed, so that every batch is full on
        every rank (BatchNorm, shuffle-BN groups and mixup pairs get the sizes they need, ranks stay in
        step, resume stays exact); elsewhere the batch is shorter."""
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        skipped = 0
        if self.is_streaming:
            for number, examples in self._streamed_batches(part, worker, workers):
                seed = self.batch_seed(part.epoch, number)
                with _seeded_rngs(seed, restore=info is None):
                    transformed, unreadable = self._transform(iter(examples), len(examples))
                skipped += unreadable
                yield transformed, unreadable
        else:
            for number in range(part.skip_batches + worker, self.batch_count(part.drop_last), workers):
                transformed, unreadable = self._map_style_batch(part.epoch, number, part.drop_last)
                skipped += unreadable
                yield transformed, unreadable
        self._warn_skipped(skipped, part.epoch)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        """The transformed examples ``(image, label[, index])`` of epoch 0 one by one (unreadable
        images skipped and added to ``skipped_images``)."""
        for transformed, skipped in self._transformed_batches(EpochPart(epoch=0)):
            self.skipped_images += skipped
            yield from transformed

    def to_device(self, batch: Any, device: torch.device) -> Any:
        """``batch`` with its images sent to ``device`` (asynchronously from pinned memory); labels and
        row indices stay on the CPU."""
        images = batch[0]
        moved = (
            tuple(view.to(device, non_blocking=True) for view in images)
            if isinstance(images, (tuple, list))
            else images.to(device, non_blocking=True)
        )
        return (moved, *batch[1:])

    def finish(self, batch: Any) -> Any:
        """What is left to do to a batch on its device: nothing (the PIL transform made it)."""
        return batch

    def batches(self, part: EpochPart) -> Iterator[tuple[Any, int]]:
        """The collated batches of ``part`` (images ``(B, ...)``, labels ``(B,)``[, indices ``(B,)``]),
        each with its count of unreadable images skipped: one per batch of the epoch's order, so that
        a batch never takes examples of the next one when an image was skipped, and resuming after
        ``k`` batches stays exact whatever the number of workers. A batch whose every image was
        unreadable is ``None``, so that it still counts as a batch done."""
        if self.is_streaming:
            for transformed, skipped in self._transformed_batches(part):
                yield self.collate(transformed), skipped
            return
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        skipped = 0
        for number in range(part.skip_batches + worker, self.batch_count(part.drop_last), workers):
            batch, unreadable = self.make_batch(part.epoch, number, part.drop_last)
            skipped += unreadable
            yield batch, unreadable
        self._warn_skipped(skipped, part.epoch)
