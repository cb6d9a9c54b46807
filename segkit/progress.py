"""What a person sees while a job runs: a bar when someone watches, a log line now and then otherwise.

Watching means a terminal, or a notebook a person is in front of. Every interactive Jupyter front
end (JupyterLab, classic Notebook, VS Code, Kaggle's editor, Colab) sends its cells with
`allow_stdin=True`, because it can answer `input()`; the headless runners (papermill, nbconvert,
nbclient, nbval) send `allow_stdin=False`. That flag is the kernel's one sign of a person that
every front end gives (JPY_SESSION_NAME is set by jupyter_server only). `SEGKIT_PROGRESS=bar|log`
overrides the guess; torchrun's other ranks never draw.

In a notebook the bar is text in one output replaced in place (`update_display_data`, part of the
Jupyter protocol since 5.1), not an ipywidget: it needs no widget manager, so it works in every
front end, and an executed notebook keeps only the bar's last state. tqdm still does the
counting, rates and ETAs. Headless, the same tqdm object logs a line every `every` seconds.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

from segkit.errors import ConfigError

log = logging.getLogger("segkit")
PROGRESS_ENV = "SEGKIT_PROGRESS"  # "bar" or "log": overrides the guess (the torchrun launcher sets it)
INFO_STDOUT_ENV = "SEGKIT_INFO_STDOUT"  # "1": INFO lines on stdout (torchrun workers of a notebook)


# ----------------------------------------------------------------------------- who is watching


def notebook_shell() -> Any | None:
    """The IPython shell of a Jupyter kernel this code runs in, else None (terminal IPython too)."""
    ipython = sys.modules.get("IPython")  # never imported here: a kernel has imported it already
    shell = ipython.get_ipython() if ipython is not None else None
    return shell if getattr(shell, "kernel", None) is not None else None


def in_notebook() -> bool:
    """True inside a Jupyter kernel (a live front end or papermill/nbval)."""
    return notebook_shell() is not None


def watching() -> bool:
    """Is a person watching this process's output? Bars then; log lines otherwise."""
    if _other_rank():
        return False
    choice = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if choice:
        if choice not in ("bar", "log"):
            raise ConfigError(f"{PROGRESS_ENV} must be bar or log (or unset: guess); got {choice!r}")
        return choice == "bar"
    if os.environ.get("CI"):
        return False
    shell = notebook_shell()
    if shell is not None:
        return _front_end_takes_input(shell)
    return _isatty(sys.stderr)


def _other_rank() -> bool:
    """A torchrun worker other than rank 0: it neither draws nor logs progress."""
    return os.environ.get("RANK", "0") != "0"


def _front_end_takes_input(shell: Any) -> bool:
    """The cell being run came from a front end that can answer input(): a person, not a runner."""
    parent = shell.kernel.get_parent() or {}
    return bool(parent.get("content", {}).get("allow_stdin", False))


def _isatty(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


# ----------------------------------------------------------------------------- log lines


class _StdStream(logging.StreamHandler):
    """Writes to sys.stdout or sys.stderr as they are at each record (Jupyter and pytest swap them)."""

    def __init__(self, name: str, low: int, high: int) -> None:
        super().__init__()
        self._stream_name = name
        self.addFilter(lambda record: low <= record.levelno < high)

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return getattr(sys, self._stream_name)

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ sets it; the property decides
        pass


def info_to_stdout() -> bool:
    """INFO goes to stdout in notebooks (Jupyter shows stderr as red error blocks)."""
    return in_notebook() or os.environ.get(INFO_STDOUT_ENV) == "1"


def setup_logging(level: int = logging.INFO) -> None:
    """segkit's log lines: in a notebook INFO on stdout and warnings on stderr (red, they stand out);
    elsewhere all on stderr, so that stdout stays the command's own output. Idempotent."""
    for handler in [h for h in log.handlers if getattr(h, "_segkit", False)]:
        log.removeHandler(handler)
    split = info_to_stdout()
    streams = [("stdout", 0, logging.WARNING), ("stderr", logging.WARNING, 100)] if split else [("stderr", 0, 100)]
    for name, low, high in streams:
        handler = _StdStream(name, low, high)
        handler.setFormatter(logging.Formatter("%(asctime)s segkit %(message)s", "%H:%M:%S"))
        handler._segkit = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.setLevel(max(level, logging.WARNING) if _other_rank() else level)  # rank 0 alone says how it goes
    log.propagate = False


# ----------------------------------------------------------------------------- bars


def bar(
    iterable: Iterable | None = None,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    every: float | None = 30.0,
    leave: bool = True,
) -> tqdm:
    """A progress bar when a person watches; otherwise a log line every `every` seconds.

    Args:
        iterable: what to count (or None, then call `update(n)`).
        total: the number of items (default: len(iterable)).
        desc: what is counted, e.g. "predict".
        unit: the item's name, e.g. "img".
        every: seconds between headless log lines; a job shorter than that logs none. None: silent
            headless (the caller logs its own lines).
        leave: keep the finished bar in a terminal (notebook bars always stay, replaced by the next).

    Returns:
        A tqdm: iterate it, or `update(n)`, `set_postfix_str(...)`, `close()` (or use it in `with`).
    """
    total = total if total is not None else _length(iterable)
    if watching():
        if in_notebook():
            # miniters=1: tqdm's monitor thread never redraws it (a display from another thread may land elsewhere)
            return tqdm(
                iterable,
                total=total,
                desc=desc,
                unit=unit,
                file=notebook_slot(),
                ncols=100,
                mininterval=0.5,
                miniters=1,
            )
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True, file=sys.stderr)
    return _LogLines(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        mininterval=every or 0.0,
        miniters=1,
        disable=every is None or _other_rank(),
        file=io.StringIO(),
        every=every or 0.0,
    )


def _length(iterable: Iterable | None) -> int | None:
    return len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]


class _LogLines(tqdm):
    """tqdm's counting, written as a log line every `mininterval` seconds instead of a bar."""

    monitor_interval = 0  # no refresh thread: lines come from the job's own thread

    def __init__(self, *args: Any, every: float, **kwargs: Any) -> None:
        self.every, self.logged = every, 0
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        d = self.format_dict
        if d["n"] > self.logged and d["elapsed"] >= self.every:  # not 0/N, nor the last line twice
            log.info("%s", log_line(d))
            self.logged = d["n"]
        return True


def log_line(d: dict) -> str:
    """'predict: 20/50 img (40%), 1.74 s/img, 00:52 left' from a tqdm format_dict."""
    n, total, elapsed, unit = d["n"], d["total"], d["elapsed"], d["unit"]
    rate = d["rate"] or n / max(elapsed, 1e-9)
    count = f"{n}/{total} {unit} ({100 * n / total:.0f}%)" if total else f"{n} {unit}"
    if total and n >= total:
        when = f"done in {tqdm.format_interval(elapsed)}"
    elif total:
        when = f"{tqdm.format_interval((total - n) / rate)} left"
    else:
        when = f"{tqdm.format_interval(elapsed)} elapsed"
    speed = f"{rate:.3g} {unit}/s" if rate >= 1 else f"{1 / max(rate, 1e-9):.3g} s/{unit}"
    postfix = f", {d['postfix']}" if d.get("postfix") else ""
    return f"{d['prefix'] or 'progress'}: {count}, {speed}, {when}{postfix}"


# ----------------------------------------------------------------------------- notebook outputs


class InPlace:
    """One notebook output whose content is replaced in place (a display handle)."""

    def __init__(self) -> None:
        self.handle: Any = None

    def show(self, bundle: dict[str, str]) -> None:
        """Show a mime bundle, e.g. {"text/plain": ..., "text/html": ...}: the first call adds the output."""
        from IPython.display import display

        if self.handle is None:
            self.handle = display(bundle, raw=True, display_id=True)
        else:
            self.handle.update(bundle, raw=True)


class Slot(io.TextIOBase):
    """A file whose last line is shown in one notebook output: tqdm draws its bar in it with '\\r'."""

    encoding = "utf-8"  # tqdm draws unicode blocks only into a UTF-8 file

    def __init__(self) -> None:
        super().__init__()
        self.output, self.line, self.shown = InPlace(), "", None

    def write(self, text: str) -> int:
        flat = text.replace("\n", "")  # tqdm ends a kept bar with "\n": the bar stays as it is
        self.line = flat.rsplit("\r", 1)[-1] if "\r" in flat else self.line + flat
        self.show(self.line.rstrip())
        return len(text)

    def show(self, line: str) -> None:
        if line != self.shown:
            self.output.show({"text/plain": line})
            self.shown = line


_slots: dict[str, Slot] = {}


def notebook_slot() -> Slot:
    """The bar slot of the cell being run: its bars replace each other in one output."""
    shell = notebook_shell()
    cell = (shell.kernel.get_parent() or {}).get("header", {}).get("msg_id", "") if shell is not None else ""
    if cell not in _slots:
        _slots.clear()  # an earlier cell's slot is never drawn in again
        _slots[cell] = Slot()
    return _slots[cell]


class Relay:
    """A child process's output shown here: whole lines printed, a line redrawn with '\\r' (a bar)
    shown in place in `slot` (or, without one, only its last state once the line ends).

    A text pipe would turn every '\\r' into a new line and flood the cell with bar refreshes.
    """

    def __init__(self, stream: str, slot: Slot | None = None) -> None:
        self.stream, self.slot, self.pending = stream, slot, ""

    def feed(self, text: str) -> None:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self._print(line.rsplit("\r", 1)[-1])  # a redrawn line that ended: its last state, as a terminal keeps it
        if "\r" in self.pending:
            self.pending = "\r" + self.pending.rsplit("\r", 1)[-1]  # the latest state, still marked as redrawn
            if self.slot is not None:
                self.slot.show(self.pending[1:].rstrip())

    def close(self) -> None:
        """The stream ended: print what was left unfinished (a bar cleared at the end is blank)."""
        self._print(self.pending.rsplit("\r", 1)[-1])
        self.pending = ""

    def _print(self, line: str) -> None:
        if line.strip():
            print(line, file=getattr(sys, self.stream), flush=True)
