"""The VIPriors challenge's submission CSV: written from predictions, read back, image ids."""

import csv
import io
from pathlib import Path

import datasets
from torch import Tensor

from .data import DataConfig, load_split_lists
from .errors import VipriorsError
from .outputs import write_text_atomically

__all__ = ["image_ids", "read_submission", "write_submission"]


def write_submission(path: Path, image_ids: list[str], predictions: list[int]) -> None:
    """Write the VIPriors submission CSV: header ``Image IDs,Predictions``, one row per image."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Image IDs", "Predictions"])
    writer.writerows(zip(image_ids, predictions, strict=True))
    write_text_atomically(Path(path), buffer.getvalue())


def read_submission(path: Path) -> dict[str, int]:
    """Read a submission CSV back: image id -> predicted class index."""
    with Path(path).open(newline="") as handle:
        rows = list(csv.reader(handle))
    if rows[:1] != [["Image IDs", "Predictions"]]:
        raise VipriorsError(f"{path} is not a VIPriors submission (header must be 'Image IDs,Predictions').")
    return {image_id: int(prediction) for image_id, prediction in rows[1:]}


def image_ids(data_config: DataConfig, split_name: str, split: datasets.Dataset, rows: Tensor) -> list[str]:
    """Submission ids of ``rows`` of ``split``: ``img_{i}.JPEG`` (position in the official list) for the
    VIPriors test split, else the split's ``id`` column, else the row index (``split`` may be its
    decoded cache, whose rows are the split's)."""
    split = getattr(split, "source", split)
    if data_config.dataset == "vipriors" and split_name == "test":
        position = {entry.stem: i for i, entry in enumerate(load_split_lists(data_config.split_lists).test)}
        return [f"img_{position[split[int(row)]['id']]}.JPEG" for row in rows]
    if "id" in split.column_names:
        ids = split["id"]
        return [str(ids[int(row)]) for row in rows]
    return [str(int(row)) for row in rows]
