"""The choice between the two data pipelines, and what each makes of a split.

``device``: a map-style split is decoded once into the decoded cache and read as
:class:`~vipriors_hub.data.decoded_cache.DecodedSplit` by a
:class:`~vipriors_hub.data.cached_stream.CachedExampleStream`, whose batches are augmented on the
model's device; ``pil``: the split is read by an :class:`~vipriors_hub.data.stream.ExampleStream`
with the PIL transforms. Which one a consumer uses follows from the split it is given.
"""

from typing import Any

import datasets
import torch

from .batch_transforms import UnavailableBatch, Views
from .cached_stream import CachedExampleStream
from .decoded_cache import DecodedSplit, open_decoded
from .settings import DataConfig, pipeline_for
from .sources import DataSplits
from .stream import ExampleStream

__all__ = ["decode_splits", "make_stream", "resolve_pipeline"]

Split = datasets.Dataset | datasets.IterableDataset | DecodedSplit


def resolve_pipeline(choice: str, device: torch.device) -> str:
    """``device`` or ``pil`` for ``--data-pipeline choice`` on ``device`` (:func:`pipeline_for`)."""
    return pipeline_for(choice, device.type)


def decode_splits(
    data: DataSplits,
    names: tuple[str, ...],
    config: DataConfig,
    workers: int,
    build: bool = True,
    checksum: bool = True,
) -> DataSplits:
    """``data`` with its splits ``names`` (those it has) replaced by their decoded caches, built where
    missing (``build``; else refused) with ``workers`` decoding processes."""
    splits = dict(data.splits)
    for name in names:
        if name in splits and not isinstance(splits[name], DecodedSplit):
            splits[name] = open_decoded(
                splits[name], config.decode_max_side, config.cache_dir, workers, build, checksum
            )
    return DataSplits(splits=splits, class_names=data.class_names, description=data.description)


def make_stream(split: Split, views: Views, **options: Any) -> ExampleStream:
    """The stream of ``split`` with ``views``: cached pixels and the batched views for a decoded
    split, the PIL views otherwise; ``options`` as :class:`ExampleStream` takes them.

    Raises:
        VipriorsError: a decoded split with views the device pipeline cannot run.
    """
    if isinstance(split, DecodedSplit):
        if isinstance(views.batched, UnavailableBatch):
            raise views.batched.error
        return CachedExampleStream(split, views.batched, **options)
    return ExampleStream(split, views.pil, **options)
