"""Kaggle: environment preflight, session time budget, chained runs, and the kernel bundle.

In a kernel: data is found under /kaggle/input (`segkit.data.discover`), outputs go to
/kaggle/working, the time budget defaults to what keeps a run inside the 12-hour session, and a
previous kernel's output attached as input (kernel_sources) is resumed from its last.pth.

On your machine: `segkit kaggle bundle --out runs/kaggle-bundle` writes everything a push needs
(see kaggle/README.md): the 02_train notebook with parameters injected, kernel-metadata.json,
and segkit as a wheel in a dataset folder so the kernel installs it without internet.
"""

from segkit.credentials import SECRET_ENV
from segkit.kaggle.bundling import (
    CODE_FILE,
    DEFAULT_MACHINE_SHAPE,
    DEFAULT_TITLE,
    INSTALL_CELL,
    WHEEL_DATASET,
    BundleError,
    build_wheel,
    bundle,
    check_params,
    check_ref,
    check_title,
    kaggle_username,
    load_params,
    notebook_parameters,
    prepare_notebook,
    repo_root,
    slugify,
    validate_kernel_metadata,
)
from segkit.kaggle.cli import (
    cmd_bundle,
    cmd_preflight,
    register_cli,
)
from segkit.kaggle.machine import (
    format_preflight,
    preflight,
)
from segkit.kaggle.session import (
    CHAINED_DIRS,
    CHAINED_FILES,
    MIN_BUDGET_MINUTES,
    SAFETY_MARGIN_MINUTES,
    SESSION_HOURS,
    SESSION_HOURS_ENV,
    default_time_budget,
    find_resume_checkpoint,
    prepare_chained_resume,
    session_elapsed_minutes,
    session_minutes,
    time_budget_for,
)
from segkit.kaggle_env import RUN_TYPE_ENV, WORKING_ENV, on_kaggle, working_dir

__all__ = [
    "CHAINED_DIRS",
    "CHAINED_FILES",
    "CODE_FILE",
    "DEFAULT_MACHINE_SHAPE",
    "DEFAULT_TITLE",
    "INSTALL_CELL",
    "MIN_BUDGET_MINUTES",
    "RUN_TYPE_ENV",
    "SAFETY_MARGIN_MINUTES",
    "SECRET_ENV",
    "SESSION_HOURS",
    "SESSION_HOURS_ENV",
    "WHEEL_DATASET",
    "WORKING_ENV",
    "BundleError",
    "build_wheel",
    "bundle",
    "check_params",
    "check_ref",
    "check_title",
    "cmd_bundle",
    "cmd_preflight",
    "default_time_budget",
    "find_resume_checkpoint",
    "format_preflight",
    "kaggle_username",
    "load_params",
    "notebook_parameters",
    "on_kaggle",
    "preflight",
    "prepare_chained_resume",
    "prepare_notebook",
    "register_cli",
    "repo_root",
    "session_elapsed_minutes",
    "session_minutes",
    "slugify",
    "time_budget_for",
    "validate_kernel_metadata",
    "working_dir",
]
