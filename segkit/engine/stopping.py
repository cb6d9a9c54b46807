"""When training stops cleanly: SIGTERM / Ctrl-C (`StopFlag`), the time budget (`Budget`), a step count."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from segkit import runtime
from segkit.rundir import Status
from segkit.runtime import log


class StopFlag:
    """SIGTERM (Kaggle's session end) and the first Ctrl-C ask for a clean stop after this step."""

    def __init__(self) -> None:
        self.reason: Status | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:  # noqa: PYI034 (a final class)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.reason = Status(signal.Signals(signum).name)
        if runtime.is_main():
            log.warning("%s received: finishing this step, then saving a checkpoint", self.reason)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Budget:
    """Wall-clock budget in minutes (0 = none); stops early enough to leave time to evaluate and save."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60
        self.start = time.monotonic()
        self.reserve = 0.0  # seconds the slowest evaluation + save took so far

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float | None:
        return self.seconds - self.elapsed() if self.seconds else None

    def exhausted(self) -> bool:
        # 2x the slowest evaluate+save seen: the last evaluation plus the final official one.
        return self.seconds > 0 and self.elapsed() + 2 * self.reserve >= self.seconds

    def fraction(self) -> float:
        """Share of the usable budget spent so far (drives the time-aware poly schedule)."""
        usable = max(1e-9, self.seconds - 2 * self.reserve)
        return min(1.0, self.elapsed() / usable)

    def timed(self) -> _Timed:
        """`with budget.timed():` around an evaluation or a save raises `reserve` to its duration."""
        return _Timed(self)


class _Timed:
    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    def __enter__(self) -> None:
        self.t0 = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.budget.reserve = max(self.budget.reserve, time.monotonic() - self.t0)


class Stopper:
    """Why training should stop after a step: a signal, the time budget, or `stop_at_step`."""

    def __init__(self, flag: StopFlag, budget: Budget, stop_at_step: int | None, elapsed_before: float) -> None:
        self.flag, self.budget, self.stop_at_step, self.elapsed_before = flag, budget, stop_at_step, elapsed_before

    def reason(self, global_step: int) -> Status | None:
        if self.flag.reason:
            return self.flag.reason
        if self.budget.exhausted():
            return Status.TIME_BUDGET
        return Status.STOPPED if self.stop_at_step is not None and global_step >= self.stop_at_step else None

    def elapsed(self) -> float:
        """Seconds of this run over all its sessions (a resumed run continues the count)."""
        return self.elapsed_before + self.budget.elapsed()
