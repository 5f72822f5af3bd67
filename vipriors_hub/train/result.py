"""What a run did: the typed result of ``fit``, also written as ``OUTPUT/result.json``.

Everything outside ``train/`` that needs to know what a run did (the demo, model cards, export)
reads this file through :func:`read_fit_result`, never ``metrics.jsonl``. Training compute is
counted, not timed: the FLOPs of one micro-step of each kind a phase runs (forward and backward of
every network the step runs, from ``torch.utils.flop_counter``) times the micro-steps of that kind;
the wall seconds are kept beside them as information.
"""

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.flop_counter import FlopCounterMode

from ..errors import VipriorsError
from ..outputs import write_text_atomically
from .metrics import read_curves, read_metrics

__all__ = ["RESULT_FILE", "FitResult", "StepFlops", "read_fit_result"]

RESULT_FILE = "result.json"


@dataclass(frozen=True)
class FitResult:
    """What one training run did, as ``fit`` returns it and ``OUTPUT/result.json`` holds it.

    ``train_flops`` and ``train_seconds`` are ``None`` for a run resumed from a checkpoint of a
    version that did not count them; ``flops_per_micro_step`` maps each kind of micro-step
    (``"teacher"``, ``"supervised"``, ``"distill"``) to its FLOPs summed over processes;
    ``validation`` holds the last held-out scores (percent), empty when the run had none;
    ``curves`` the ``(epoch, value)`` course of the logged loss and validation scores
    (:data:`~vipriors_hub.train.metrics.CURVE_KEYS`; on the main process, which writes them);
    ``skipped_images`` the unreadable images every process skipped.
    """

    phase: str
    final: Path
    steps: int
    steps_per_epoch: int
    epochs: float
    images_seen: int
    effective_batch_size: int
    processes: int
    gradient_accumulation_steps: int
    mixed_precision: str
    torch_compile: bool
    channels_last: bool
    train_seconds: float | None
    train_flops: int | None
    flops_per_micro_step: dict[str, int] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    skipped_images: int = 0

    def to_json(self) -> str:
        """The JSON text of ``result.json`` (``final`` as a string)."""
        return json.dumps({**dataclasses.asdict(self), "final": str(self.final)}, indent=2)

    def write(self, run_dir: Path) -> None:
        """Write ``run_dir/result.json`` atomically."""
        write_text_atomically(Path(run_dir) / RESULT_FILE, self.to_json())


def read_fit_result(run_dir: str | Path) -> FitResult:
    """The result a finished run wrote to ``run_dir/result.json``; for runs of versions before that
    file, the same facts read back from their ``metrics.jsonl`` (FLOPs and precision unknown then).

    Raises:
        VipriorsError: ``run_dir`` holds neither file, or the file is not a run's result.
    """
    run_dir = Path(run_dir)
    path = run_dir / RESULT_FILE
    if path.is_file():
        try:
            values = json.loads(path.read_text())
            if not isinstance(values, dict):
                raise TypeError(f"a JSON {type(values).__name__}, not an object")
            curves = {key: [tuple(point) for point in points] for key, points in values.get("curves", {}).items()}
            return FitResult(**{**values, "final": Path(values["final"]), "curves": curves})
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as error:
            raise VipriorsError(f"{path} is not the result file of a training run ({error}).") from error
    return _result_from_metrics(run_dir)


def _result_from_metrics(run_dir: Path) -> FitResult:
    """What a run of an earlier version (no ``result.json``) did, from its ``metrics.jsonl``."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise VipriorsError(f"{run_dir} has no {RESULT_FILE}: it is not a finished training run.")
    records = [record for record in read_metrics(path) if isinstance(record, dict)]
    starts = [record for record in records if record.get("event") in ("start", "resume")]
    epochs = [record for record in records if "epoch" in record and "step" in record]
    if not starts or not epochs:
        raise VipriorsError(f"{path} records no training step: it is not a finished training run.")
    start, last = starts[-1], epochs[-1]
    steps, batch = int(last["step"]), int(start.get("effective_batch_size", 0))
    validated = [record for record in records if "val_top1" in record]
    return FitResult(
        phase="student" if validated or "cross_entropy" in last else "teacher",
        final=run_dir / "final",
        steps=steps,
        steps_per_epoch=max(1, round(steps / last["epoch"])) if last["epoch"] else 1,
        epochs=float(max(record["epoch"] for record in epochs)),
        images_seen=steps * batch,
        effective_batch_size=batch,
        processes=int(start.get("processes", 1)),
        gradient_accumulation_steps=0,
        mixed_precision="unknown",
        torch_compile=False,
        channels_last=False,
        train_seconds=None,
        train_flops=None,
        validation={
            key[len("val_") :]: value for key, value in (validated or [{}])[-1].items() if key.startswith("val_")
        },
        curves=read_curves(path),
    )


class StepFlops:
    """Counts a run's training FLOPs: the first micro-step of each kind is run under
    ``FlopCounterMode`` (the count is exact for a fixed batch shape, which training batches have);
    every later one adds that count. Host integers only: no device synchronisation.

    Args:
        processes: the number of processes (each runs the same micro-step on its own batch).
        flops: FLOPs counted before a resume (``None``: unknown, so the total stays unknown).
    """

    def __init__(self, processes: int, flops: int | None = 0, per_micro_step: dict[str, int] | None = None) -> None:
        self.processes = processes
        self.total = flops
        self.per_micro_step: dict[str, int] = dict(per_micro_step or {})

    @contextmanager
    def micro_step(self, kind: str) -> Iterator[None]:
        """Around one micro-step of ``kind``: counted the first time, added up every time."""
        if kind in self.per_micro_step:
            yield
        else:
            with FlopCounterMode(display=False) as counter:
                yield
            self.per_micro_step[kind] = counter.get_total_flops() * self.processes
        if self.total is not None:
            self.total += self.per_micro_step[kind]

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the count."""
        return {"train_flops": self.total, "flops_per_micro_step": self.per_micro_step}

    @classmethod
    def resumed(cls, processes: int, progress: dict[str, Any]) -> "StepFlops":
        """The count a checkpoint's ``progress`` kept (unknown for an older version's checkpoint)."""
        return cls(processes, progress.get("train_flops"), progress.get("flops_per_micro_step"))
