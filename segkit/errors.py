"""User-facing errors: the CLI prints their message and exits non-zero, without a traceback."""


class SegkitError(Exception):
    """A problem with the user's input or environment; the message says what, and the fix."""


class DataError(SegkitError):
    """The data set is missing, incomplete or not in a layout segkit understands."""


class ConfigError(SegkitError, ValueError):
    """A configuration value is invalid."""


class CheckpointError(SegkitError):
    """A checkpoint file is missing, corrupt, unsafe or does not match the model."""
