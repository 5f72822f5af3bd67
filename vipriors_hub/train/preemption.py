"""Preemption: SIGTERM or SIGUSR1 ends a run at an optimizer step, with a checkpoint, on every process.

Schedulers (SLURM, Kubernetes, spot instances) send SIGTERM, SLURM's ``--signal`` usually SIGUSR1,
some time before they kill a job. The handler only records the signal; the loop asks
:meth:`StopSignals.agreed` once per optimizer step and, once it answers, writes a checkpoint and
raises :class:`~vipriors_hub.errors.RunPreempted`. With several processes the signal may reach one of them, or each at
another step, so the processes agree: every step each one adds what it received to an asynchronous
all-reduce (max) over a CPU (gloo) group and reads the result of the previous step's reduce, which
is long done: the same answer on every process, one step after the first signal, with no wait and
no device synchronisation per step. On several nodes the gloo group uses the interface that
``GLOO_SOCKET_IFNAME`` names where the default one cannot reach the other nodes.
"""

import signal
import threading
from types import FrameType, TracebackType

import torch
import torch.distributed as dist
from accelerate import Accelerator

__all__ = ["STOP_SIGNALS", "StopSignals"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignals:
    """Records SIGTERM / SIGUSR1 while a run trains (a context manager; the previous handlers come back
    on exit) and tells every process the same step to stop at."""

    def __init__(self, accelerator: Accelerator) -> None:
        self.received = 0
        self.previous: dict[int, object] = {}
        self.distributed = accelerator.num_processes > 1 and dist.is_available() and dist.is_initialized()
        self.group = dist.new_group(backend="gloo") if self.distributed else None
        self.flag = torch.zeros(1, dtype=torch.int64)
        self.pending: dist.Work | None = None

    def _record(self, signal_number: int, frame: FrameType | None) -> None:
        self.received = self.received or signal_number

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self.previous = {number: signal.signal(number, self._record) for number in STOP_SIGNALS}
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for number, handler in self.previous.items():
            if handler is not None:  # None: a handler not installed from Python, which cannot be put back
                signal.signal(number, handler)

    def close(self) -> None:
        """Wait for the last agreement and free its group; call it on every process before the run's
        process group ends (``accelerator.end_training``)."""
        if self.pending is not None:
            self.pending.wait()
            self.pending = None
        if self.group is not None:
            dist.destroy_process_group(self.group)
            self.group, self.distributed = None, False

    def agreed(self) -> int:
        """The signal every process stops for after this optimizer step (0: go on). Call it once per
        optimizer step on every process."""
        if not self.distributed:
            return self.received
        agreed = 0
        if self.pending is not None:
            self.pending.wait()
            agreed = int(self.flag[0])
        self.flag = torch.tensor([self.received], dtype=torch.int64)
        self.pending = dist.all_reduce(self.flag, op=dist.ReduceOp.MAX, group=self.group, async_op=True)
        return agreed
