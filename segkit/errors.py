"""User-facing errors: the CLI prints their message and exits non-zero, without a traceback.

`did_you_mean` is the one suggestion every "unknown name" message uses (presets, flags,
architectures, encoders, weight variants, notebook parameters), so the same typo gets the same
suggestion wherever it is made.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SegkitError(Exception):
    """A problem with the user's input or environment; the message says what, and the fix."""


class DataError(SegkitError):
    """The data set is missing, incomplete or not in a layout segkit understands."""


class ConfigError(SegkitError, ValueError):
    """A configuration value is invalid."""


class CheckpointError(SegkitError):
    """A checkpoint file is missing, corrupt, unsafe or does not match the model."""


def did_you_mean(word: str, choices: Iterable[str], n: int = 1) -> str:
    """ " (did you mean 'x'?)" for the closest of `choices` (up to `n` of them), else "".

    Args:
        word: what the user wrote.
        choices: the valid names.
        n: how many suggestions at most (joined with "or").
    """
    close = difflib.get_close_matches(word, list(choices), n=n)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
