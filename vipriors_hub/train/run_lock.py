"""One writer per run folder: an exclusive ``flock`` on ``OUTPUT/.run.lock``, held for the whole run.

The main process (global rank 0, the only one that writes the folder) takes the lock before it
writes anything and keeps it until the run ends; the kernel releases it when the process dies,
however it dies, so a killed run never blocks its own ``--resume``. Forked children (DataLoader
workers) close their copy of the descriptor at once, so that they cannot hold the lock after the
process that took it died. ``flock`` works on local file
systems and on NFS (Linux emulates it with POSIX locks there); a cluster file system mounted
without lock support (e.g. Lustre without ``flock``) refuses it, which the trainer reports.
"""

import fcntl
import os
import socket
import time
from pathlib import Path

from ..errors import VipriorsError
from ..outputs import LOCK_FILE

__all__ = ["RunLock"]

_HELD: set[int] = set()


def _close_in_child() -> None:
    """A forked child shares the lock's open file: it closes its copy so that only the taker holds it."""
    for descriptor in _HELD:
        try:
            os.close(descriptor)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)


def _in_use(folder: Path, holder: str) -> VipriorsError:
    return VipriorsError(
        f"--output {folder} is in use by a run that is still going ({holder}): wait for it to end or stop it, "
        "then --resume; or choose another --output."
    )


class RunLock:
    """The exclusive lock of a run folder; :meth:`acquire` creates the folder if needed."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.descriptor: int | None = None

    def probe(self) -> None:
        """Refuse a folder whose lock another process holds, creating nothing (the check before a start).

        Raises:
            VipriorsError: another process holds the lock.
        """
        try:
            descriptor = os.open(self.path, os.O_RDONLY)
        except OSError:
            return  # no lock file (a new folder), or one this process cannot read: acquire() decides
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise _in_use(self.folder, self._holder(descriptor)) from error
        except OSError:
            pass  # a file system without locks: acquire() says so
        finally:
            os.close(descriptor)

    @staticmethod
    def _holder(descriptor: int) -> str:
        try:
            return os.pread(descriptor, 200, 0).decode(errors="replace").strip() or "another process"
        except OSError:
            return "another process"

    def acquire(self) -> None:
        """Take the lock and record this process in the lock file.

        Raises:
            VipriorsError: the folder cannot be created, or another process holds the lock.
        """
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise VipriorsError(
                f"--output {self.folder}: cannot be created or written ({error.strerror or error}). "
                "Choose an --output on a writable file system."
            ) from error
        try:
            for attempt in range(4):  # another start's probe holds a shared lock for a moment
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt == 3:
                        raise
                    time.sleep(0.05)
        except OSError as error:
            holder = self._holder(descriptor)
            os.close(descriptor)
            if isinstance(error, BlockingIOError):
                raise _in_use(self.folder, holder) from error
            raise VipriorsError(
                f"--output {self.folder}: its file system refuses locks ({error.strerror or error}), so two runs "
                "could write it at once. Choose an --output on a file system with flock support."
            ) from error
        _HELD.add(descriptor)
        self.descriptor = descriptor
        try:  # who holds it, for the message of a refused start; the lock holds without it (e.g. a full disk)
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        except OSError:
            pass

    def release(self) -> None:
        """Let the lock go (the file stays: it is part of the run folder)."""
        if self.descriptor is not None:
            _HELD.discard(self.descriptor)
            fcntl.flock(self.descriptor, fcntl.LOCK_UN)
            os.close(self.descriptor)
            self.descriptor = None
