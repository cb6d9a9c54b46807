"""Is this a Kaggle kernel, and where are its input and working folders? (standard library only)

The data discovery, the preprocessing cache, the pretrained-weights search, the launcher and the
Kaggle session logic all ask these questions; they live here so that none of them imports the
others. A leaf of its own beside `errors` and `credentials`, not inside `segkit/kaggle/`: there
the data and models layers would import a module of the package whose `__init__` fronts the
bundler and the CLI at the top of the house (`segkit.kaggle` still exports these names).
Tests point the folders at `tmp_path` through the environment variables.
"""

from __future__ import annotations

import os
from pathlib import Path

RUN_TYPE_ENV = "KAGGLE_KERNEL_RUN_TYPE"  # set by Kaggle in every kernel ("Interactive" or "Batch")
WORKING_ENV = "SEGKIT_KAGGLE_WORKING"  # overrides /kaggle/working (tests)
KAGGLE_INPUT_ENV = "SEGKIT_KAGGLE_INPUT"  # overrides /kaggle/input (tests fake it in tmp_path)


def on_kaggle() -> bool:
    """True inside a Kaggle kernel (Kaggle sets $KAGGLE_KERNEL_RUN_TYPE)."""
    return bool(os.environ.get(RUN_TYPE_ENV))


def working_dir() -> Path:
    """/kaggle/working in a kernel (what Kaggle keeps as output), else the current directory."""
    if os.environ.get(WORKING_ENV):
        return Path(os.environ[WORKING_ENV])
    return Path("/kaggle/working") if on_kaggle() else Path.cwd()


def kaggle_input_root() -> Path:
    """The Kaggle input mount (attached data sets, models, earlier kernels' outputs).

    `$SEGKIT_KAGGLE_INPUT` or /kaggle/input.
    """
    return Path(os.environ.get(KAGGLE_INPUT_ENV, "/kaggle/input"))
