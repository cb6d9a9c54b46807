"""The README's commands are what new users run: each must be valid as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from segkit.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def command_lines(program: str) -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    joined = [block.replace("\\\n", " ") for block in blocks]  # a trailing backslash continues the command
    lines = [line.split("  #")[0].strip() for block in joined for line in block.splitlines()]
    out = []
    for line in lines:
        words = shlex.split(line) if line else []
        while words and "=" in words[0] and not words[0].startswith("-"):  # ENV=value prefixes
            words = words[1:]
        if words and Path(words[0]).name == program:
            out.append(words[1:])
    return out


@pytest.mark.parametrize("argv", command_lines("segkit"), ids=lambda a: " ".join(a)[:60])
def test_segkit_commands_parse(argv):
    build_parser().parse_args(argv)  # argparse exits (fails the test) on an unknown flag or command


def test_make_targets_exist():
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))
    used = {argv[0] for argv in command_lines("make")}
    assert used and used <= targets, used - targets


@pytest.mark.parametrize("argv", command_lines("papermill"), ids=lambda a: " ".join(a)[:60])
def test_papermill_commands_name_real_notebooks_and_parameters(argv):
    import papermill

    notebook = next(a for a in argv if a.endswith(".ipynb"))
    assert (ROOT / notebook).is_file(), notebook
    params = papermill.inspect_notebook(str(ROOT / notebook))
    names = [argv[i + 1] for i, a in enumerate(argv) if a == "-p"]
    assert set(names) <= set(params), set(names) - set(params)


def test_readme_has_no_placeholders():
    for marker in ("RESULTS_TABLE", "MULTIGPU_SECTION", "TODO"):
        assert marker not in README, marker
