"""``OUTPUT/metrics.jsonl``: one JSON object per logged step, evaluation and event of a run."""

import contextlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from ..outputs import write_failure
from .consensus import raise_on_any

__all__ = ["CURVE_KEYS", "MetricsWriter", "read_curves", "read_metrics"]

CURVE_KEYS = ("loss", "val_top1", "val_top5")
"""The logged values whose course over the epochs a run's result keeps."""


class MetricsWriter:
    """Appends one JSON object per call to ``OUTPUT/metrics.jsonl`` (main process only; every process
    calls :meth:`write` at the same points, so that a refused write stops all of them)."""

    def __init__(self, path: Path, accelerator: Accelerator) -> None:
        self.path = path
        self.accelerator = accelerator

    def write(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` with a wall-clock timestamp; a line the disk refused is taken back whole.

        Raises:
            VipriorsError: the disk refused the line (on every process).
        """
        failure = None
        if self.accelerator.is_main_process:
            size = 0
            try:
                size = self.path.stat().st_size if self.path.exists() else 0
                with self.path.open("a") as handle:
                    handle.write(json.dumps({**record, "time": round(time.time(), 3)}) + "\n")
            except OSError as error:
                with contextlib.suppress(OSError):
                    os.truncate(self.path, size)  # no torn line for the next record to follow
                hint = "Free space, then --resume continues from the last checkpoint."
                failure = write_failure(self.path.name, self.path.parent, error, hint)
        raise_on_any(self.accelerator, failure)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` in order (none when it is missing; a line torn by a kill is skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return records


def read_curves(path: Path) -> dict[str, list[tuple[float, float]]]:
    """``(epoch, value)`` points of each of :data:`CURVE_KEYS` that ``metrics.jsonl`` logged, as the
    run finally went: the points a ``--resume`` replayed (logged after its checkpoint) are the ones
    logged again, not the abandoned ones."""
    curves: dict[str, list[tuple[float, float, int]]] = {key: [] for key in CURVE_KEYS}
    for record in read_metrics(path):
        if record.get("event") == "resume":
            for key, points in curves.items():
                curves[key] = [point for point in points if point[2] <= record["step"]]
        for key in CURVE_KEYS:
            if key in record and "epoch" in record:
                curves[key].append((float(record["epoch"]), float(record[key]), int(record["step"])))
    return {key: [(epoch, value) for epoch, value, _ in points] for key, points in curves.items() if points}
