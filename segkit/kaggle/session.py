"""Kaggle sessions: where we run, the 12-hour time budget, and chained runs (resuming a previous
kernel's output attached as input)."""

from __future__ import annotations

import logging
import os
import shutil
from collections import deque
from pathlib import Path

from segkit.errors import ConfigError
from segkit.files import AtomicFile
from segkit.kaggle_env import kaggle_input_root, on_kaggle

log = logging.getLogger("segkit")

SESSION_HOURS_ENV = "SEGKIT_KAGGLE_SESSION_HOURS"  # overrides the 12 h limit (TPU sessions: 9)
SESSION_HOURS = 12.0  # Kaggle's limit for one CPU/GPU session
SAFETY_MARGIN_MINUTES = 20.0  # final evaluation + checkpoint + output upload after the budget
MIN_BUDGET_MINUTES = 1.0  # never 0: 0 means "no budget" to TrainConfig
# Copied from a previous kernel's run into this one; last.pth last, so a half copy never resumes.
CHAINED_FILES = ("config.json", "history.csv", "best_model.pth", "class_counts.json")
CHAINED_DIRS = ("tb",)
_SEARCH_DEPTH = 6  # /kaggle/input/notebooks/<owner>/<slug>/runs/<name>/last.pth
_MAX_DIRS = 5000
_SKIP_DIRS = {"leftImg8bit", "gtFine", "gtCoarse", "__pycache__"}  # data, not runs: don't walk them


# ----------------------------------------------------------------------------- where we run


def session_minutes() -> float:
    """The session limit in minutes (12 h, or $SEGKIT_KAGGLE_SESSION_HOURS)."""
    hours = os.environ.get(SESSION_HOURS_ENV)
    try:
        return 60.0 * (float(hours) if hours else SESSION_HOURS)
    except ValueError:
        raise ConfigError(f"${SESSION_HOURS_ENV} must be a number of hours, e.g. 9; got {hours!r}") from None


def session_elapsed_minutes() -> float | None:
    """Minutes this session has run, approximated by the age of the container's PID 1.

    A Kaggle kernel is a fresh container, so its PID 1 starts with the session; if /proc/1 is
    unreadable, this process's own start is used (a papermill kernel starts with the session too).
    """
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    for pid in ("1", "self"):
        try:
            fields_after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            started = int(fields_after_name[19]) / ticks  # field 22 of stat: start time in ticks
        except (OSError, ValueError, IndexError):
            continue
        return max(0.0, (uptime - started) / 60.0)
    return None


def time_budget_for(
    elapsed: float, session: float = SESSION_HOURS * 60, margin: float = SAFETY_MARGIN_MINUTES
) -> float:
    """Minutes of training that end `margin` minutes before the session limit.

    Args:
        elapsed: Minutes the session has already run.
        session: The session limit in minutes.
        margin: Minutes kept for the final evaluation, checkpoint and output upload.

    Returns:
        At least MIN_BUDGET_MINUTES. An `elapsed` beyond the session (not a fresh Kaggle
        container, e.g. a long-lived machine) is ignored: the full session minus the margin.
    """
    if elapsed > session:
        log.warning(
            "session age %.0f min exceeds the %.0f min limit: not a fresh Kaggle container; "
            "assuming the session just started",
            elapsed,
            session,
        )
        elapsed = 0.0
    return max(MIN_BUDGET_MINUTES, session - margin - elapsed)


def default_time_budget() -> float | None:
    """On Kaggle with no budget given: minutes that keep training inside the session; else None."""
    if not on_kaggle():
        return None
    budget = time_budget_for(session_elapsed_minutes() or 0.0, session_minutes())
    log.info(
        "Kaggle: time budget %.0f min (session limit %.0f min, %.0f min margin)",
        budget,
        session_minutes(),
        SAFETY_MARGIN_MINUTES,
    )
    return budget


# ----------------------------------------------------------------------------- chained runs


def find_resume_checkpoint(kaggle_input: Path | None = None, run_name: str | None = None) -> Path | None:
    """The last.pth of a previous kernel's output attached as input, if any.

    Args:
        kaggle_input: The input mount; default `segkit.kaggle_env.kaggle_input_root()`.
        run_name: Prefer a last.pth whose run directory has this name.

    Returns:
        The chosen last.pth (same run name first, then the newest), or None.
    """
    if kaggle_input is None:
        kaggle_input = kaggle_input_root()
    found = _find_files(Path(kaggle_input), "last.pth")
    if not found:
        return None
    found.sort(key=lambda p: (p.parent.name == run_name, p.stat().st_mtime), reverse=True)
    if len(found) > 1:
        log.info("several last.pth under %s; resuming from %s", kaggle_input, found[0])
    return found[0]


def _find_files(root: Path, name: str) -> list[Path]:
    """Breadth-first search for files called `name`, bounded in depth and directory count."""
    found, queue, visited = [], deque([(root, 0)]), 0
    while queue and visited < _MAX_DIRS:
        path, depth = queue.popleft()
        visited += 1
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for entry in entries:
            if entry.name == name and entry.is_file():
                found.append(Path(entry.path))
            elif depth < _SEARCH_DEPTH and entry.is_dir() and entry.name not in _SKIP_DIRS:
                queue.append((Path(entry.path), depth + 1))
    return found


def prepare_chained_resume(run_dir: Path) -> bool:
    """Copy a previous kernel's run (attached as input) into `run_dir` so `resume=True` continues it.

    Args:
        run_dir: This kernel's run directory (e.g. /kaggle/working/runs/train).

    Returns:
        True when a last.pth was copied; False when run_dir already has one or none was found.
        Files already in run_dir are never overwritten.
    """
    run_dir = Path(run_dir)
    if (run_dir / "last.pth").exists():
        return False
    checkpoint = find_resume_checkpoint(run_name=run_dir.name)
    if checkpoint is None:
        log.info("no previous run (last.pth) under the Kaggle inputs; starting fresh in %s", run_dir)
        return False
    source = checkpoint.parent
    run_dir.mkdir(parents=True, exist_ok=True)
    # Each file whole or not at all: a kernel stopped mid-copy copies again (last.pth, the mark of a
    # finished copy, comes last), and a half file kept because it "exists" would never be repaired.
    for name in CHAINED_FILES:
        if (source / name).is_file() and not (run_dir / name).exists():
            with AtomicFile(run_dir / name) as tmp:
                shutil.copy2(source / name, tmp)
    for name in CHAINED_DIRS:
        if (source / name).is_dir():
            shutil.copytree(source / name, run_dir / name, dirs_exist_ok=True)
    with AtomicFile(run_dir / "last.pth") as tmp:
        shutil.copy2(checkpoint, tmp)
    log.info("chained run: copied the previous kernel's run %s into %s; resuming", source, run_dir)
    return True
