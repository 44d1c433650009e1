"""Exception types that carry a message a user can act on.

The CLI maps ``ConfigError`` and ``ModelError`` to exit code 2. Inside a step, the executor sorts
what a unit raises into three kinds (``facesieve.work.retry.classify``): *fatal* errors stop the
whole run at once (a bad config or a missing model is the same for every unit), *permanent* ones
fail the unit without retrying (``StorageError`` with ``transient=False``: access denied, no such
bucket), and everything else is retried with backoff.
"""


class FacesieveError(Exception):
    """Base class for errors raised on purpose by facesieve."""


class ConfigError(FacesieveError):
    """The command line, the YAML config or a path given by the user is wrong."""


class ModelError(FacesieveError):
    """A model file is missing, unreadable or not of the expected kind."""


class StorageError(FacesieveError):
    """Reading or writing a local path or an S3 object failed.

    ``transient`` says whether trying again later can help (a network error, a 5xx answer, a
    timeout) or not (access denied, no such key, not a regular file). Readers of input files turn
    a non-transient error into that file's row; a transient one fails the unit, which the
    executor retries with backoff.
    """

    def __init__(self, message: str, transient: bool = False, code: str | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code

    def __reduce__(self):  # keep the attributes across Ray's pickling
        return (type(self), (str(self), self.transient, self.code))


class LockError(FacesieveError):
    """Another run holds the output root's lease, or this run lost it."""


class DeadlineError(FacesieveError):
    """A unit ran past ``run.unit_timeout_s``; it is retried like any transient failure."""
