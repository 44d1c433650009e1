"""Exception types that carry a message a user can act on.

The CLI maps ``ConfigError`` to exit code 2; everything else that escapes a shard is caught by the
runner, retried and reported, so one bad shard never stops the others.
"""


class FacesieveError(Exception):
    """Base class for errors raised on purpose by facesieve."""


class ConfigError(FacesieveError):
    """The command line, the YAML config or a path given by the user is wrong."""


class StorageError(FacesieveError):
    """Reading or writing a local path or an S3 object failed after retries."""


class ModelError(FacesieveError):
    """A model file is missing, unreadable or not of the expected kind."""
