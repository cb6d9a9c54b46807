"""Dependencies as they really are: the MIT albumentations line (and AlbumentationsX noticed), and
every third-party import of segkit declared in pyproject.toml."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
import tomllib

from segkit.dependencies import ALBUMENTATIONS_PIN, albumentations_problem
from segkit.kaggle import format_preflight, preflight

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# Imported by segkit and not declared, on purpose.
NOT_DECLARED = {
    "kaggle_secrets": "exists only inside Kaggle kernels; imported in a try",
    "IPython": "imported only inside a running Jupyter kernel, which brings it",
    "typing_extensions": "imported only under TYPE_CHECKING, for type checkers",
}


def _fake_dists(folder: Path, **versions: str) -> list[str]:
    """Folders holding only dist-info metadata, e.g. albumentationsx="2.5.1"."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, version in versions.items():
        info = folder / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return [str(folder)]


@pytest.mark.parametrize(
    "versions, expected",
    [
        ({"albumentations": "2.0.8"}, None),
        ({"albumentations": "2.0.1"}, None),
        ({"albumentations": "2.0.0"}, "albumentations 2.0.0 is installed; segkit needs 2.0.1-2.0.8"),
        ({"albumentations": "1.4.24"}, "albumentations 1.4.24 is installed; segkit needs 2.0.1-2.0.8"),
        ({"albumentations": "2.1.0"}, "albumentations 2.1.0 is installed; segkit needs 2.0.1-2.0.8"),
        ({"albumentations": "2.0.8", "albumentationsx": "2.5.1"}, "AlbumentationsX 2.5.1 is installed"),
        ({"albumentationsx": "2.5.1"}, "AlbumentationsX 2.5.1 is installed"),
        ({}, "albumentations is not installed"),
    ],
)
def test_albumentations_known_answers(tmp_path: Path, versions: dict, expected: str | None) -> None:
    problem = albumentations_problem(_fake_dists(tmp_path, **versions))
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and problem.startswith(expected), problem
        assert f"pip install '{ALBUMENTATIONS_PIN}'" in problem
    if "albumentationsx" in versions:
        assert "AGPL-3.0" in problem and "pip uninstall -y albumentationsx" in problem


def test_this_environment_has_the_mit_albumentations() -> None:
    """The test suite itself notices an AlbumentationsX (or an out-of-range albumentations) install."""
    assert albumentations_problem() is None


def test_preflight_reports_albumentationsx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert preflight()["albumentations"] is None
    monkeypatch.syspath_prepend(_fake_dists(tmp_path, albumentationsx="2.5.1")[0])
    report = preflight()
    assert report["albumentations"] in report["problems"]
    assert "PROBLEM: AlbumentationsX 2.5.1 is installed" in format_preflight(report)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, str]:
    """Normalised distribution -> its requirement, from dependencies and every extra."""
    project = PYPROJECT["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {_normalise(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]): r for r in requirements}


def test_the_pins_agree() -> None:
    assert _declared()["albumentations"] == ALBUMENTATIONS_PIN
    environment = (REPO / "environment.yml").read_text().split("\ndependencies:", 1)[1]
    for requirement in PYPROJECT["project"]["dependencies"]:
        name = _normalise(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0])
        conda = {"torch": "pytorch"}.get(name, name)
        line = re.search(rf"^\s*- {re.escape(conda)}\b(.*)$", environment, re.MULTILINE | re.IGNORECASE)
        assert line is not None, f"environment.yml lacks {requirement}"
        spec = requirement[len(name) :].split("#")[0].strip()
        assert line.group(1).strip() == spec, (
            f"environment.yml has {line.group(0).strip()!r}, pyproject {requirement!r}"
        )


def _third_party_imports() -> dict[str, str]:
    """Top-level module -> the first segkit file importing it (imports inside functions included)."""
    found: dict[str, str] = {}
    for path in sorted((REPO / "segkit").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "segkit" and top not in sys.stdlib_module_names:
                    found.setdefault(top, str(path.relative_to(REPO)))
    return found


def test_every_import_is_declared() -> None:
    """What segkit imports is in pyproject.toml (e.g. PyYAML for the bundler's --params .yaml)."""
    providers = importlib.metadata.packages_distributions()
    declared = _declared()
    undeclared = []
    for module, where in _third_party_imports().items():
        if module in NOT_DECLARED:
            continue
        dists = {_normalise(d) for d in providers.get(module, [])}
        if not dists & set(declared):
            undeclared.append(f"{module} ({where}; installed by {sorted(dists) or 'nothing here'})")
    assert undeclared == [], f"imported but not declared in pyproject.toml: {undeclared}"


# ----------------------------------------------------------------------------- the lock


def _lock_pins() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    text = (REPO / "requirements" / "dev.lock").read_text()
    return {canonicalize_name(m[0]): m[1] for m in re.findall(r"^([A-Za-z0-9][\w.-]*)==(\S+)", text, re.MULTILINE)}


def test_the_lock_holds_every_requirement_at_a_version_its_range_admits() -> None:
    """A range changed in pyproject.toml without `make lock` is caught here, by name, not by a
    resolver error in a fresh `make setup` (which also runs `pip check`)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = _lock_pins()
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    declared = project["dependencies"] + [
        r for name in ("notebooks", "dashboard", "onnx", "video", "dev") for r in extras[name]
    ]
    problems = []
    for text in declared:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name in ("torch", "torchvision", "segkit"):
            continue  # torch: the Makefile's TORCH_SPEC (or the machine's); segkit: its own extras
        if name not in pins:
            problems.append(f"{req.name}: not in the lock")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}: locked at {pins[name]}, pyproject asks {req.specifier}")
    assert not problems, "requirements/dev.lock is behind pyproject.toml (run `make lock`):\n" + "\n".join(problems)


def test_the_lock_leaves_torch_to_the_machine() -> None:
    """torch, torchvision and their CUDA libraries come from TORCH_SPEC / TORCH_INDEX or the
    machine's own build: a lock that pinned them would put a CUDA build beside a CPU one."""
    pins = _lock_pins()
    assert pins and not [n for n in pins if n in ("torch", "torchvision", "triton") or n.startswith("nvidia-")]
    assert re.search(r"^# lock-python: 3\.\d+$", (REPO / "requirements" / "dev.lock").read_text(), re.MULTILINE)
