"""Exceptions that carry a message meant for the user.

Every error the package raises on bad input derives from :class:`VipriorsError`; the command line
prints its message (no traceback) and exits with status 2. A run stopped by a preemption signal
raises :class:`RunPreempted`; the command line says so in one line and exits with
:data:`EXIT_PREEMPTED`.
"""

import signal


class VipriorsError(Exception):
    """Base class of every user-facing error of the package."""


class PretrainedWeightsUnavailableError(VipriorsError, OSError):
    """Pretrained weights could not be found on the Hub, in the local cache or on disk."""


EXIT_PREEMPTED = 75
"""Exit status of a trainer stopped by a signal after writing its checkpoint (``EX_TEMPFAIL``:
temporary failure, run it again with ``--resume``)."""


class RunPreempted(Exception):
    """A run stopped by a signal at ``step`` after writing ``checkpoint``; ``--resume`` continues it."""

    def __init__(self, signal_number: int, step: int, checkpoint: str, main_process: bool) -> None:
        self.signal_number, self.step = signal_number, step
        self.checkpoint, self.main_process = checkpoint, main_process
        super().__init__(
            f"stopped by {signal.Signals(signal_number).name} after step {step}: checkpoint {checkpoint} written"
        )
