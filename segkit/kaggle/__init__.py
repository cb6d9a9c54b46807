"""Kaggle: environment preflight, session time budget, chained runs, and the kernel bundle.

In a kernel: data is found under /kaggle/input (`segkit.data.discover`), outputs go to
/kaggle/working, the time budget defaults to what keeps a run inside the 12-hour session, and a
previous kernel's output attached as input (kernel_sources) is resumed from its last.pth.

On your machine: `segkit kaggle bundle --out runs/kaggle-bundle` writes everything a push needs
(see kaggle/README.md): the 02_train notebook with parameters injected, kernel-metadata.json,
and segkit as a wheel in a dataset folder so the kernel installs it without internet.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use: `segkit train` needs only kaggle.session, not the bundler or the CLI.
_EXPORTS = {
    "SECRET_ENV": "segkit.credentials",
    "BundleError": "segkit.kaggle.bundling",
    "CODE_FILE": "segkit.kaggle.bundling",
    "DEFAULT_MACHINE_SHAPE": "segkit.kaggle.bundling",
    "DEFAULT_TITLE": "segkit.kaggle.bundling",
    "INSTALL_CELL": "segkit.kaggle.bundling",
    "SMP_DIST": "segkit.kaggle.bundling",
    "WHEEL_DATASET": "segkit.kaggle.bundling",
    "build_wheel": "segkit.kaggle.bundling",
    "bundle": "segkit.kaggle.bundling",
    "check_params": "segkit.kaggle.bundling",
    "check_ref": "segkit.kaggle.bundling",
    "check_title": "segkit.kaggle.bundling",
    "kaggle_username": "segkit.kaggle.bundling",
    "load_params": "segkit.kaggle.bundling",
    "notebook_parameters": "segkit.kaggle.bundling",
    "prepare_notebook": "segkit.kaggle.bundling",
    "repo_root": "segkit.kaggle.bundling",
    "slugify": "segkit.kaggle.bundling",
    "smp_wheel": "segkit.kaggle.bundling",
    "validate_kernel_metadata": "segkit.kaggle.bundling",
    "cmd_bundle": "segkit.kaggle.cli",
    "cmd_preflight": "segkit.kaggle.cli",
    "register_cli": "segkit.kaggle.cli",
    "format_preflight": "segkit.kaggle.machine",
    "preflight": "segkit.kaggle.machine",
    "CHAINED_DIRS": "segkit.kaggle.session",
    "CHAINED_FILES": "segkit.kaggle.session",
    "MIN_BUDGET_MINUTES": "segkit.kaggle.session",
    "SAFETY_MARGIN_MINUTES": "segkit.kaggle.session",
    "SESSION_HOURS": "segkit.kaggle.session",
    "SESSION_HOURS_ENV": "segkit.kaggle.session",
    "default_time_budget": "segkit.kaggle.session",
    "find_resume_checkpoint": "segkit.kaggle.session",
    "prepare_chained_resume": "segkit.kaggle.session",
    "session_elapsed_minutes": "segkit.kaggle.session",
    "session_minutes": "segkit.kaggle.session",
    "time_budget_for": "segkit.kaggle.session",
    "RUN_TYPE_ENV": "segkit.kaggle_env",
    "WORKING_ENV": "segkit.kaggle_env",
    "on_kaggle": "segkit.kaggle_env",
    "working_dir": "segkit.kaggle_env",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'segkit.kaggle' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
