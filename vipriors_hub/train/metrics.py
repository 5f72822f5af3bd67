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

__all__ = ["MetricsWriter"]


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
