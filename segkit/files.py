"""Atomic file writes: a temporary file in the same folder, fsync, then rename; and lock files.

A crash, a kill or a full disk at any moment leaves the previous file intact; nothing segkit
writes is ever half a file. Checkpoints (`segkit.checkpoint`), the run directory's JSON and CSV
files (`segkit.rundir`) and evaluation reports go through `atomic_write`; writers that need a
path (the ONNX export, the overlay video, the cache's memory maps, a chained Kaggle run's
checkpoint copy) through `AtomicFile`, the rule both share.

`hold_lock` / `lock_holder`: an advisory lock that a process holds while it works in a
folder; the operating system drops it when the process ends, however it ends, so "is anybody
training here right now" has a true answer (`segkit runs`).
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from segkit.errors import SegkitError


class AtomicFile:
    """A file written under a temporary name in its destination's folder, renamed into place when complete.

    The one rule behind every write segkit makes: the temporary file is fsynced, renamed over
    `path` and the folder fsynced; on any failure it is deleted and `path` keeps its previous
    content. For writers that need a path rather than an open file (`torch.onnx.export`, PyAV's
    container, numpy's memory maps, `shutil.copy2`); `atomic_write` is the file-object form.

    Use as `with AtomicFile(path) as tmp: write_to(tmp)` (renamed when the block ends without an
    error, deleted otherwise), or call `commit()` / `discard()` when the writing spans calls.
    The temporary name is `.<name>.<random>.tmp`: hidden, and what `remove_stale_temp_files` deletes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        try:  # not mkstemp (0600): the finished file gets the permissions any new file here gets (umask)
            os.close(os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as e:
            raise _disk_error(self.path, e) from None

    def commit(self) -> Path:
        """fsync the temporary file, rename it to `path`, fsync the folder; returns `path`.

        Raises:
            SegkitError: the disk refused the write; the message names the file and the fix.
        """
        try:
            fd = os.open(self.tmp, os.O_RDWR)
            try:
                os.fsync(fd)  # the content reaches the disk before the new name does
            finally:
                os.close(fd)
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.discard()
            raise _disk_error(self.path, e) from None
        except BaseException:
            self.discard()
            raise
        _fsync_dir(self.path.parent)
        return self.path

    def discard(self) -> None:
        """Delete the temporary file; `path` stays as it was."""
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
            return
        self.discard()
        if isinstance(exc, OSError):
            raise _disk_error(self.path, exc) from None


def atomic_write(path: str | Path, write: Callable[[IO], Any], binary: bool = False) -> Path:
    """Write `path` through `write(file)` on a temporary file that replaces `path` only when complete.

    Args:
        path: destination file (its folder must exist).
        write: called with the open temporary file.
        binary: open the temporary file in binary mode.

    Returns:
        The destination path.

    Raises:
        SegkitError: the disk refused the write; the message names the file and the fix.
    """
    with AtomicFile(path) as tmp, open(tmp, "wb" if binary else "w", **({} if binary else {"newline": ""})) as f:
        write(f)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented JSON, atomically (Paths and tensors are converted)."""
    text = json.dumps(obj, indent=2, default=_json_default) + "\n"
    return atomic_write(path, lambda f: f.write(text))


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete temporary files a killed `atomic_write` left behind (never valid files)."""
    stale = [p for p in Path(folder).glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def hold_lock(path: str | Path) -> IO | None:
    """Take the exclusive lock on `path` (created if missing) and write who holds it into the file.

    A POSIX record lock (`lockf`), not `flock`: forked children (DataLoader workers) do not
    inherit it, so it ends with the process that took it. The same process must not open `path`
    again while it holds the lock (closing any descriptor of the file drops a POSIX lock).

    Args:
        path: the lock file.

    Returns:
        The open file: the lock lasts until it is closed or the process ends. None if another
        process holds the lock. Without fcntl (Windows) the file is returned unlocked.
    """
    f = open(path, "a+")  # noqa: SIM115 -- held open by the caller for as long as the lock lasts
    try:
        import fcntl
    except ImportError:
        return f
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        f.close()
        if e.errno in (errno.EACCES, errno.EAGAIN):
            return None
        raise
    f.truncate(0)
    f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    f.flush()
    return f


def lock_holder(path: str | Path) -> str | None:
    """Who holds the lock on `path` ("pid 123 on host"), or None if nobody does (or no file, or no fcntl).

    Asks from another process than the holder: a process does not conflict with its own locks.
    """
    try:
        import fcntl

        f = open(path)  # noqa: SIM115 -- closed below
    except (ImportError, OSError):
        return None
    with f:
        try:
            fcntl.lockf(f, fcntl.LOCK_SH | fcntl.LOCK_NB)  # granted only if nobody holds it exclusively
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            return f.read().strip() or "another process"
    return None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # tensors and numpy values
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _disk_error(path: Path, e: OSError) -> SegkitError:
    return SegkitError(
        f"could not write {path}: {e.strerror or e}. The previous {path.name} (if any) and the other files in "
        f"{path.parent} are intact; free disk space or make the folder writable, then run again "
        "(training: the same command plus --resume if last.pth exists)."
    )


def _fsync_dir(folder: Path) -> None:
    # The rename itself must reach the disk, or a power cut could lose the new name.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (e.g. FUSE mounts) refuse fsync on directories; the rename still happened
    finally:
        os.close(fd)
