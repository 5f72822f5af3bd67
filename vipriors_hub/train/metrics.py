"""``OUTPUT/metrics.jsonl``: one JSON object per logged step, evaluation and event of a run."""

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..outputs import write_failure

__all__ = ["MetricsWriter"]


class MetricsWriter:
    """Appends one JSON object per call to ``OUTPUT/metrics.jsonl`` (main process only)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled

    def write(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` with a wall-clock timestamp.

        Raises:
            VipriorsError: the disk refused the line (readers skip a torn last line).
        """
        if not self.enabled:
            return
        try:
            with self.path.open("a") as handle:
                handle.write(json.dumps({**record, "time": round(time.time(), 3)}) + "\n")
        except OSError as error:
            raise write_failure(
                self.path.name, self.path.parent, error, "Free space, then --resume continues from the last checkpoint."
            ) from error
