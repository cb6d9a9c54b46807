"""The code is as ruff writes and checks it (pyproject's [tool.ruff]: the line length included)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PATHS = ["segkit", "tests", "benchmarks"]
RUFF = [sys.executable, "-m", "ruff"]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*RUFF, *args, *PATHS], cwd=REPO, capture_output=True, text=True, check=False)


def test_ruff_check_passes_with_the_line_length():
    done = _ruff("check", "--output-format", "concise")
    assert done.returncode == 0, f"ruff check found (fix, or `ruff check --fix`):\n{done.stdout}{done.stderr}"


def test_code_is_ruff_formatted():
    done = _ruff("format", "--check")
    assert done.returncode == 0, f"not formatted (run `ruff format {' '.join(PATHS)}`):\n{done.stdout}{done.stderr}"


def test_line_length_is_enforced():
    """The check above would pass vacuously if E501 fell out of the selected rules."""
    long_line = "x = " + "1 + " * 40 + "1\n"
    done = subprocess.run(
        [*RUFF, "check", "--stdin-filename", "segkit/probe.py", "-"],
        cwd=REPO,
        input=long_line,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and "E501" in done.stdout, done.stdout + done.stderr


def test_a_noqa_that_suppresses_nothing_is_a_finding():
    """RUF100 (pyproject's extend-select): every `# noqa` left in the code names a rule it silences."""
    done = subprocess.run(
        [*RUFF, "check", "--stdin-filename", "segkit/probe.py", "-"],
        cwd=REPO,
        input="x = 1  # noqa: BLE001\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and "RUF100" in done.stdout, done.stdout + done.stderr
