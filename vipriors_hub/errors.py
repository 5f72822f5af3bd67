"""Exceptions that carry a message meant for the user.

Every error the package raises on bad input derives from :class:`VipriorsError`; the command line
prints its message (no traceback) and exits with status 2.
"""


class VipriorsError(Exception):
    """Base class of every user-facing error of the package."""


class PretrainedWeightsUnavailableError(VipriorsError, OSError):
    """Pretrained weights could not be found on the Hub, in the local cache or on disk."""
