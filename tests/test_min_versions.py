"""segkit at the lowest versions its pyproject admits: installed from the package index, then run.

A floor (`numpy>=1.24`) is a promise that nothing tests: every other test runs against whatever
`make setup` resolved, i.e. the newest releases. This test installs, into a fresh venv, the
lowest release that each runtime requirement admits and that the index has for this Python
(`pip index versions`), installs segkit against them, and runs the main job on them: synthetic
data, a short training of segkit's U-Net and of an smp model on a timm encoder, evaluation,
prediction, the run comparison. A floor set below what the code uses fails here.

Not in `make test`: it downloads every runtime dependency but torch from the index (2.6 min here).
`make test-min-versions` runs it (SEGKIT_MIN_VERSIONS=1); run it when a floor or a dependency's use changes.

torch and torchvision are the exception: their floors (2.3, 0.18) are multi-GB downloads that a
CPU machine cannot afford per run, so the venv links this environment's build of both (and what
they need) and pip keeps them; the test names the versions it really used.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import tomllib
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
KEPT = ("torch", "torchvision")  # linked from this environment, not installed at their floors

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        not os.environ.get("SEGKIT_MIN_VERSIONS"),
        reason="downloads the lowest admitted release of every runtime dependency but torch: "
        "`make test-min-versions` runs it",
    ),
]


def runtime_requirements() -> list[Requirement]:
    """[project.dependencies] plus the video extra (notebook 04 and `segkit predict` on clips)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["video"]]


def lowest_admitted(req: Requirement, python: Path) -> Version:
    """The lowest release of `req` the index offers for `python` that its specifier admits."""
    done = subprocess.run(
        [str(python), "-m", "pip", "index", "versions", req.name],
        capture_output=True,
        text=True,
        check=False,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("Available versions:")), "")
    versions = [Version(v) for v in line.partition(":")[2].replace(" ", "").split(",") if v]
    admitted = sorted(v for v in versions if req.specifier.contains(v, prereleases=False))
    assert admitted, f"the index has no release of {req} for this Python: {done.stdout}{done.stderr}"
    return admitted[0]


def closure(names: tuple[str, ...], leave_out: set[str]) -> set[str]:
    """The distributions `names` need here, transitively (markers evaluated), less `leave_out`."""
    env = default_environment()
    seen: set[str] = set()
    todo = [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen or name in leave_out:
            continue
        seen.add(name)
        for text in importlib.metadata.requires(name) or []:
            req = Requirement(text)
            if not req.marker or req.marker.evaluate({**env, "extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def venv_linking(venv: Path, dists: set[str]) -> Path:
    """A fresh venv whose site-packages links this environment's files of `dists` (and only those)."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    target = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    site = Path(sysconfig.get_path("purelib"))
    for dist in importlib.metadata.distributions(path=[str(site)]):
        if canonicalize_name(dist.metadata["Name"]) in dists:
            for top in {f.parts[0] for f in dist.files or [] if not f.parts[0].startswith("..")}:
                if (site / top).exists() and not (target / top).exists():
                    (target / top).symlink_to(site / top)
    return python


def _run(python: Path, *args: str, cwd: Path) -> str:
    done = subprocess.run([str(python), *args], capture_output=True, text=True, cwd=cwd, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed at the floors:\n{done.stdout[-3000:]}{done.stderr[-5000:]}"
    return done.stdout


def test_segkit_runs_at_its_declared_minimum_versions(tmp_path: Path) -> None:
    reqs = [r for r in runtime_requirements() if canonicalize_name(r.name) not in KEPT]
    floors = {canonicalize_name(r.name): lowest_admitted(r, Path(sys.executable)) for r in reqs}
    linked = closure(KEPT, leave_out=set(floors))
    python = venv_linking(tmp_path / "venv", linked)
    constraints = tmp_path / "floors.txt"
    constraints.write_text("".join(f"{name}=={v}\n" for name, v in floors.items()))

    # Dry run first: pip must not replace a linked package (it would uninstall it from this env).
    report = tmp_path / "report.json"
    install = ["-m", "pip", "install", "-c", str(constraints), f"{REPO}[video]"]  # not -q: pip says what conflicts
    _run(python, *install, "--dry-run", "--report", str(report), cwd=tmp_path)
    planned = {canonicalize_name(item["metadata"]["name"]) for item in json.loads(report.read_text())["install"]}
    clash = planned & linked
    assert not clash, f"the floors need other versions of what torch brings: {sorted(clash)}"
    _run(python, *install, cwd=tmp_path)

    versions = json.loads(
        _run(
            python,
            "-c",
            "import json, importlib.metadata as m, sys; print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))",
            *floors,
            *KEPT,
            cwd=tmp_path,
        )
    )
    print("installed:", versions)  # shown with -s: what this run really tested
    for name, floor in floors.items():
        assert Version(versions[name]) == floor, f"{name}: {versions[name]} installed, floor {floor}"

    segkit = ["-m", "segkit"]
    data = tmp_path / "data"
    _run(python, *segkit, "synth", "--out", str(data), "--num-train", "4", "--num-val", "2", cwd=tmp_path)
    smp_model = ["--model", "fpn", "--encoder", "tu-resnet10t", "--encoder-weights", "none"]
    for name, model in (("own", ["--model", "unet"]), ("smp", smp_model)):
        run = tmp_path / "runs" / name
        _run(
            python,
            *segkit,
            "train",
            "--data-root",
            str(data),
            "--run-dir",
            str(run),
            "--preset",
            "cpu-quick",
            *model,
            "--epochs",
            "2",
            "--image-size",
            "64",
            "128",
            "--cache",
            "off",
            cwd=tmp_path,
        )
        metrics = json.loads((run / "metrics.json").read_text())
        assert 0.0 <= metrics["miou"] <= 1.0
        out = _run(python, *segkit, "evaluate", "--checkpoint", str(run / "best_model.pth"), cwd=tmp_path)
        assert re.search(r"mIoU", out), out
    pred = tmp_path / "pred"
    image = next((data / "leftImg8bit" / "val").rglob("*.png"))
    _run(
        python,
        *segkit,
        "predict",
        "--checkpoint",
        str(tmp_path / "runs" / "own" / "best_model.pth"),
        "--img",
        str(image),
        "--output",
        str(pred),
        cwd=tmp_path,
    )
    assert list(pred.iterdir()), "predict wrote nothing"
    _run(python, *segkit, "runs", str(tmp_path / "runs"), cwd=tmp_path)
