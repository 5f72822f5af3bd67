"""One outcome for every process: an error raised on one process (the main one, which alone writes
the run folder, or any other) stops all of them at the same point, with the same line."""

from accelerate import Accelerator
from accelerate.utils import gather_object

from ..errors import VipriorsError

__all__ = ["raise_on_any"]


def raise_on_any(accelerator: Accelerator, error: VipriorsError | None) -> None:
    """Raise ``error`` (or, on the processes that had none, the first process's error) on every
    process when any process had one. With several processes this is one collective: call it on
    every process at the same point, where the run synchronises anyway (start, logging, epoch end,
    checkpoint, end).

    Raises:
        VipriorsError: some process passed an error.
    """
    if accelerator.num_processes == 1:
        if error is not None:
            raise error
        return
    messages = [message for message in gather_object([None if error is None else str(error)]) if message is not None]
    if error is not None:
        raise error
    if messages:
        raise VipriorsError(messages[0])
