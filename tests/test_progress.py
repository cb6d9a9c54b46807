"""Progress as a person sees it: a bar in a terminal, log lines headless, a bar redrawn in place in a
notebook (a real kernel), INFO not red in notebooks, and a child's '\\r' bar relayed without flooding."""

from __future__ import annotations

import fcntl
import os
import pty
import queue
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest
from conftest import kernel_streams

from segkit import progress
from segkit.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
JOB = """
import sys, time
from segkit import progress
progress.setup_logging()
every, start = float(sys.argv[1]), time.monotonic()
for _ in progress.bar(range(6), desc="predict", unit="img", every=every):
    time.sleep(0.06)
print(f"finished in {time.monotonic() - start:.3f} s", flush=True)
"""


def _env(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", progress.PROGRESS_ENV, "RANK")}
    return {**env, "PYTHONPATH": str(REPO), **changes}


def _in_a_terminal(code: str, *args: str) -> str:
    """Run `code` with stderr on a pseudo-terminal; what the terminal received."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 columns wide
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stderr=slave, stdout=subprocess.DEVNULL, env=_env())
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    return b"".join(chunks).decode()


def test_a_terminal_gets_a_bar_redrawn_in_place_and_no_log_lines():
    seen = _in_a_terminal(JOB, "0.01")
    assert "\r" in seen and "predict: 100%" in seen and "6/6" in seen
    assert "segkit predict:" not in seen  # no log lines: the bar says it


def _headless(every: str, **env: str) -> subprocess.CompletedProcess:
    """JOB with stdout and stderr captured (pipes: what papermill, CI and `> log` give)."""
    return subprocess.run(
        [sys.executable, "-c", JOB, every], capture_output=True, text=True, env=_env(**env), timeout=60, check=True
    )


def test_headless_logs_count_rate_and_time_left_every_few_seconds():
    done = _headless("0.1")
    seconds = float(re.fullmatch(r"finished in ([\d.]+) s\n", done.stdout)[1])  # ~0.36; more on a loaded machine
    lines = [line for line in done.stderr.splitlines() if "segkit predict:" in line]
    assert 2 <= len(lines) <= seconds / 0.1 + 1, done.stderr  # a line at most every 0.1 s, and the last one once
    assert re.search(r"predict: [1-5]/6 img \(\d+%\), [\d.]+ img/s, \d\d:\d\d left$", lines[0]), lines[0]
    assert re.search(r"predict: 6/6 img \(100%\), [\d.]+ img/s, done in \d\d:\d\d$", lines[-1]), lines[-1]
    assert "\r" not in done.stderr


def test_a_short_headless_job_and_other_ranks_say_nothing():
    short = _headless("30")
    assert short.stderr == "" and short.stdout.startswith("finished in")
    assert _headless("0.1", RANK="1").stderr == ""


def test_the_choice_can_be_forced_and_a_typo_is_refused(monkeypatch):
    monkeypatch.setenv(progress.PROGRESS_ENV, "bar")
    assert progress.watching()
    monkeypatch.setenv(progress.PROGRESS_ENV, "log")
    assert not progress.watching()
    monkeypatch.setenv(progress.PROGRESS_ENV, "bars")
    with pytest.raises(ConfigError, match="SEGKIT_PROGRESS must be bar or log"):
        progress.watching()


class _Slot:
    def __init__(self) -> None:
        self.shown: list[str] = []

    def show(self, line: str) -> None:
        self.shown.append(line)


CHILD = r"""
import sys, time
for i in range(1, 4):
    sys.stderr.write(f"\rtrain {i}/3"); sys.stderr.flush(); time.sleep(0.05)
sys.stderr.write("\r" + " " * 9 + "\r"); sys.stderr.flush()  # the bar cleared, as tqdm(leave=False) does
sys.stderr.write("a warning\n"); sys.stderr.write("\rval 1/1"); sys.stderr.write("\rval 1/1 done\n")
sys.stderr.write("\rleft over"); sys.stderr.flush()
"""


def _relayed(slot: _Slot | None, capsys) -> str:
    """A real child writes a '\\r' bar to a pipe; its bytes go through a Relay as they arrive."""
    relay = progress.Relay("stderr", slot)
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stderr=subprocess.PIPE)
    chunks: queue.Queue = queue.Queue()
    threading.Thread(
        target=lambda: (
            [chunks.put(b) for b in iter(lambda: os.read(proc.stderr.fileno(), 4), b"")] + [chunks.put(None)]
        ),
        daemon=True,
    ).start()
    while (data := chunks.get(timeout=30)) is not None:  # 4 bytes at a time: lines arrive in pieces
        relay.feed(data.decode())
    relay.close()
    proc.wait(timeout=30)
    return capsys.readouterr().err


def test_a_relayed_bar_is_drawn_in_its_slot_and_whole_lines_are_printed(capsys):
    slot = _Slot()
    printed = _relayed(slot, capsys)
    assert printed == "a warning\nval 1/1 done\nleft over\n"  # no refresh became a line; ended lines stay
    assert "train 3/3" in slot.shown and slot.shown[-1] == "left over"


def test_a_relayed_bar_without_a_slot_prints_only_last_states(capsys):
    printed = _relayed(None, capsys)
    assert printed == "a warning\nval 1/1 done\nleft over\n"


# ----------------------------------------------------------------------------- a real kernel

KERNEL_CODE = """
import logging, time
from segkit import progress
progress.setup_logging()
logging.getLogger("segkit").info("an info line")
logging.getLogger("segkit").warning("a warning line")
print("watching:", progress.watching())
for _ in progress.bar(range(3), desc="predict", unit="img", every=None):
    time.sleep(0.6)
"""


def test_a_front_end_a_person_types_into_gets_a_bar_redrawn_in_one_output(jupyter_kernel):
    messages = jupyter_kernel.run(KERNEL_CODE, allow_stdin=True)  # JupyterLab, Notebook, VS Code, Kaggle
    assert "watching: True" in kernel_streams(messages, "stdout")
    shown = [m for m in messages if m["msg_type"] == "display_data"]
    updates = [m for m in messages if m["msg_type"] == "update_display_data"]
    assert len(shown) == 1 and len(updates) >= 3  # one output, redrawn
    display_id = shown[0]["content"]["transient"]["display_id"]
    assert {m["content"]["transient"]["display_id"] for m in updates} == {display_id}
    assert re.match(r"predict: 100%\|█+\| 3/3 ", updates[-1]["content"]["data"]["text/plain"])
    assert "\r" not in kernel_streams(messages, "stderr")


def test_info_is_plain_output_and_warnings_stand_out_in_a_notebook(jupyter_kernel):
    messages = jupyter_kernel.run(KERNEL_CODE, allow_stdin=True)
    assert "an info line" in kernel_streams(messages, "stdout") and "an info line" not in kernel_streams(
        messages, "stderr"
    )
    assert "a warning line" in kernel_streams(messages, "stderr")


def test_papermill_and_nbval_send_cells_without_stdin_so_nothing_is_drawn(jupyter_kernel):
    messages = jupyter_kernel.run(KERNEL_CODE, allow_stdin=False)
    assert "watching: False" in kernel_streams(messages, "stdout")
    assert not [m for m in messages if m["msg_type"] in ("display_data", "update_display_data")]
