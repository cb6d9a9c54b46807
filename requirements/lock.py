"""Write requirements/dev.lock: the exact version and hashes of everything `make setup` installs but torch.

`make lock` runs this; `make lock UPGRADE=1` moves every pin to the newest release the ranges in
pyproject.toml admit (after `make test-latest` said they pass). It calls pip-tools' `pip-compile`
(pip's own resolver, so it sees the same indexes, find-links and torch builds pip installs from)
with torch and torchvision held at the Makefile's TORCH_SPEC, then leaves out torch, torchvision
and every package that only they need (CUDA libraries, triton, sympy...): those come with the torch
that `make setup` installs (TORCH_SPEC / TORCH_INDEX) or that the machine already has, so that a
CPU build or Kaggle's own build of torch is never asked to sit beside another build's libraries.

The lock is made for one Python (its header says which); `make setup` installs it with
`pip install --require-hashes` only under that Python and falls back to pyproject's ranges
elsewhere, saying so.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "dev.lock"
TORCH_PACKAGES = ("torch", "torchvision")  # installed by `make setup` from TORCH_SPEC, never from the lock
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def blocks(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Split pip-compile's output into its header lines and one (name, lines) block per pin."""
    header: list[str] = []
    pins: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            pins.append((normalise(match.group(1)), [line]))
        elif pins and (line.startswith(" ") or not line.strip()):
            pins[-1][1].append(line)
        elif pins and line.startswith("# The following packages are considered to be unsafe"):
            pins[-1][1].append("")  # the commented-out torch lines that follow are dropped with it
        elif not pins:
            header.append(line)
    return header, pins


def parents(lines: list[str]) -> set[str]:
    """The packages a pin's `# via` annotation names (the project itself as `segkit`)."""
    names: set[str] = set()
    for line in lines[1:]:
        text = line.strip().lstrip("#").strip()
        if text.startswith("via"):
            text = text[3:].strip()
        if text and not text.startswith("--hash"):
            names.add(normalise(text.split()[0]))
    return names


def torch_only(pins: list[tuple[str, list[str]]]) -> set[str]:
    """Names of torch, torchvision and the packages that only they (or other such packages) need."""
    via = {name: parents(lines) for name, lines in pins}
    dropped = set(TORCH_PACKAGES)
    grew = True
    while grew:
        grew = False
        for name, names in via.items():
            if name not in dropped and names and names <= dropped:
                dropped.add(name)
                grew = True
    return dropped


def compile_lock(torch_spec: str, upgrade: bool) -> str:
    """pip-compile's output for `.[dev]` with torch held at `torch_spec`."""
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "torch.txt"
        constraints.write_text("\n".join(torch_spec.split()) + "\n")
        out = Path(tmp) / "dev.lock"
        if LOCK.exists() and not upgrade:
            out.write_text(LOCK.read_text())  # pip-compile keeps existing pins unless asked to upgrade
        command = [sys.executable, "-m", "piptools", "compile", "--quiet", "--extra", "dev", "--generate-hashes",
                   "--strip-extras", "--no-emit-index-url", "--no-emit-find-links", "--no-emit-trusted-host",
                   "--constraint", str(constraints), "--output-file", str(out), "pyproject.toml"]  # fmt: skip
        command += [arg for name in TORCH_PACKAGES for arg in ("--unsafe-package", name)]
        if upgrade:
            command.append("--upgrade")
        env = dict(os.environ, CUSTOM_COMPILE_COMMAND="make lock")
        subprocess.run(command, cwd=ROOT, env=env, check=True)
        return out.read_text()


def locked_versions() -> dict[str, str]:
    """{name: version} of requirements/dev.lock."""
    return {normalise(m.group(1)): m.group(2) for m in map(_PIN.match, LOCK.read_text().splitlines()) if m}


def compare(freeze: Path) -> None:
    """Print the releases of a `pip freeze` that differ from the lock (what `make test-latest` tests)."""
    locked = locked_versions()
    fresh = {normalise(m.group(1)): m.group(2) for m in map(_PIN.match, freeze.read_text().splitlines()) if m}
    moved = [f"  {name}: {locked[name]} -> {fresh[name]}" for name in sorted(fresh.keys() & locked.keys())
             if fresh[name] != locked[name]]  # fmt: skip
    new = [f"  {name}: {fresh[name]} (not in the lock)" for name in sorted(fresh.keys() - locked.keys())]
    print(f"{len(moved)} of {len(locked)} locked releases moved since the lock was made:", *moved, *new, sep="\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, metavar="FREEZE", help="only print how a `pip freeze` differs")
    parser.add_argument("--torch-spec", default="torch==2.14.1 torchvision==0.29.1", help="the Makefile's TORCH_SPEC")
    parser.add_argument("--upgrade", action="store_true", help="move every pin to the newest admitted release")
    args = parser.parse_args()
    if args.compare:
        compare(args.compare)
        return
    header, pins = blocks(compile_lock(args.torch_spec, args.upgrade))
    dropped = torch_only(pins)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    only_torch = textwrap.wrap(", ".join(sorted(dropped - set(TORCH_PACKAGES))), 100, break_on_hyphens=False)
    note = [
        f"# lock-python: {python}",
        f"# Made for CPython {python} on {sys.platform}. Left out: torch and torchvision (held at {args.torch_spec}",
        "# while resolving) and what only they need:",
        *[f"#   {line}" for line in only_torch],
        "# `make setup` installs torch first (TORCH_SPEC / TORCH_INDEX, or the machine's own), then this file.",
    ]
    kept = [line for name, lines in pins if name not in dropped for line in lines]
    while kept and not kept[-1].strip():
        kept.pop()
    tmp = LOCK.with_name(LOCK.name + ".tmp")
    tmp.write_text("\n".join(header + note + [""] + kept) + "\n")
    os.replace(tmp, LOCK)
    print(f"{LOCK.relative_to(ROOT)}: {len(pins) - len(dropped & {n for n, _ in pins})} pins, Python {python}")


if __name__ == "__main__":
    main()
