"""Kaggle support: preflight, session budget, /kaggle/input discovery, chained resume, the bundle.

No test reaches a package index: pip runs with PIP_CONFIG_FILE=os.devnull (no pip.conf, whose
index or find-links could be anything) and PIP_NO_INDEX=1, or with --no-index; the
segmentation_models_pytorch wheel is a stand-in built here from a two-file project.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest
import torch

from segkit import kaggle
from segkit.cli import main
from segkit.data.discover import DataRoots, find_data_roots
from segkit.errors import ConfigError
from segkit.kaggle import (
    INSTALL_CELL,
    SMP_DIST,
    BundleError,
    bundle,
    bundling,
    check_title,
    default_time_budget,
    find_resume_checkpoint,
    format_preflight,
    kaggle_username,
    machine,
    preflight,
    prepare_chained_resume,
    session_elapsed_minutes,
    slugify,
    smp_wheel,
    time_budget_for,
    validate_kernel_metadata,
    working_dir,
)
from segkit.kaggle_env import KAGGLE_INPUT_ENV
from segkit.recipes import PRESETS, Recipe
from segkit.runtime import unsupported_gpu_message

REPO = Path(__file__).resolve().parent.parent
SENTINELS = {
    "KAGGLE_KEY": "SENTINEL-kaggle-key-0b1f",
    "NGROK_AUTHTOKEN": "SENTINEL-ngrok-token-77aa",
    "SEGKIT_DASHBOARD_AUTH": "someone:SENTINEL-password-9c",
}
KAGGLE_JSON_KEY = "SENTINEL-kaggle-json-key-5e"
CURRENT_ARCHS = ["sm_75", "sm_80", "sm_86", "sm_90", "compute_90"]
SMP_VERSION = importlib.metadata.version(SMP_DIST)
SMP_WHEEL = f"segmentation_models_pytorch-{SMP_VERSION}-py3-none-any.whl"


@pytest.fixture(autouse=True)
def not_on_kaggle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "KAGGLE_KERNEL_RUN_TYPE",
        "KAGGLE_USERNAME",
        kaggle.WORKING_ENV,
        kaggle.SESSION_HOURS_ENV,
        "CITYSCAPES_DATASET",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(KAGGLE_INPUT_ENV, str(tmp_path / "kaggle_input"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle-config"))


def write_standin_notebook(path: Path) -> Path:
    """A minimal 02_train stand-in: title, a parameters cell, one code cell."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 02 train\nTrain a model."),
        nbformat.v4.new_code_cell(
            "epochs: int = 20  # passes\nresume: bool = False  # continue\nrun_dir: str = 'runs/train'  # output",
            metadata={"tags": ["parameters"]},
        ),
        nbformat.v4.new_code_cell("print(epochs, resume, run_dir)"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "title, slug",
    [
        ("segkit cityscapes train", "segkit-cityscapes-train"),
        ("  SegKit: U-Net (256x512) -- run #2 ", "segkit-u-net-256x512-run-2"),
        ("Städte über alles", "stadte-uber-alles"),
        ("a__b..c", "a-b-c"),
    ],
)
def test_slugify_known_answers(title: str, slug: str) -> None:
    assert slugify(title) == slug


@pytest.mark.parametrize("title", ["abc", "!!!!!!!!", "x" * 51, "ab  c"])
def test_bad_titles_are_refused_with_a_suggestion(title: str) -> None:
    with pytest.raises(BundleError, match="5-50 characters") as err:
        check_title(title)
    assert "--title" in str(err.value)


def test_username_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="--username"):
        kaggle_username()
    config = tmp_path / "kcfg"
    config.mkdir()
    (config / "kaggle.json").write_text(json.dumps({"username": "fromfile", "key": KAGGLE_JSON_KEY}))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    assert kaggle_username() == "fromfile"
    monkeypatch.setenv("KAGGLE_USERNAME", "fromenv")
    assert kaggle_username() == "fromenv"
    assert kaggle_username("explicit") == "explicit"


# --- the bundle -----------------------------------------------------------------------------


def offline_pip(mp: pytest.MonkeyPatch, find_links: Path | None = None) -> None:
    """pip without any index and without the machine's pip.conf; wheels only from `find_links`."""
    mp.setenv("PIP_CONFIG_FILE", os.devnull)  # pip then reads no configuration file at all
    mp.setenv("PIP_NO_INDEX", "1")
    if find_links is None:
        mp.delenv("PIP_FIND_LINKS", raising=False)
    else:
        mp.setenv("PIP_FIND_LINKS", str(find_links))


@pytest.fixture(scope="module")
def smp_standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a real wheel named like smp's (the installed version), built offline, that
    requires what smp requires (torch, timm, ...): pip resolves it as it would the real one."""
    tmp = tmp_path_factory.mktemp("smp-standin")
    requires = [r for r in importlib.metadata.requires(SMP_DIST) or [] if "extra ==" not in r]
    project = tmp / "project"
    (project / "segmentation_models_pytorch").mkdir(parents=True)
    (project / "segmentation_models_pytorch" / "__init__.py").write_text('"""A stand-in for the tests."""\n')
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{SMP_DIST}"\nversion = "{SMP_VERSION}"\ndependencies = {json.dumps(requires)}\n'
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(tmp / "wheels"),
            str(project),
        ],
        check=True,
    )
    assert [p.name for p in (tmp / "wheels").iterdir()] == [SMP_WHEEL]
    return tmp / "wheels"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, smp_standin: Path) -> Path:
    """One bundle through the CLI (smp's wheel from --wheels), with sentinel secrets in the
    environment and in kaggle.json."""
    tmp = tmp_path_factory.mktemp("bundle")
    notebook = write_standin_notebook(tmp / "02_train.ipynb")
    (tmp / "params.json").write_text(json.dumps({"epochs": 3, "run_dir": "runs/t4"}))
    (tmp / "kcfg").mkdir()
    (tmp / "kcfg" / "kaggle.json").write_text(json.dumps({"username": "tester", "key": KAGGLE_JSON_KEY}))
    with pytest.MonkeyPatch.context() as mp:
        for name, value in SENTINELS.items():
            mp.setenv(name, value)
        mp.setenv("KAGGLE_CONFIG_DIR", str(tmp / "kcfg"))
        mp.delenv("KAGGLE_USERNAME", raising=False)
        offline_pip(mp)  # --wheels must not download; if it tried, pip would fail here
        status = main(
            [
                "kaggle",
                "bundle",
                "--out",
                str(tmp / "out"),
                "--notebook",
                str(notebook),
                "--wheels",
                str(smp_standin),
                "--params",
                str(tmp / "params.json"),
                "--title",
                "segkit T4 run 2",
                "--datasets",
                "someone/cityscapes-leftimg8bit",
                "someone/cityscapes-gtfine",
                "--resume-from",
                "tester/segkit-t4-run-1",
            ]
        )
    assert status == 0
    return tmp / "out"


def test_bundle_kernel_metadata(built: Path) -> None:
    kernel = built / "kernel"
    meta = json.loads((kernel / "kernel-metadata.json").read_text())
    assert meta["id"] == "tester/segkit-t4-run-2" and meta["title"] == "segkit T4 run 2"
    assert meta["id"].split("/")[1] == slugify(meta["title"])
    assert (kernel / meta["code_file"]).is_file() and meta["code_file"] == "02_train.ipynb"
    assert (meta["language"], meta["kernel_type"], meta["is_private"]) == ("python", "notebook", True)
    assert (meta["enable_gpu"], meta["enable_internet"], meta["machine_shape"]) == (True, False, "NvidiaTeslaT4")
    assert meta["dataset_sources"] == [
        "someone/cityscapes-leftimg8bit",
        "someone/cityscapes-gtfine",
        "tester/segkit-wheel",
    ]
    assert meta["kernel_sources"] == ["tester/segkit-t4-run-1"] and meta["competition_sources"] == []
    assert validate_kernel_metadata(meta, kernel) == []


def test_bundle_notebook_has_install_cell_and_injected_parameters(built: Path) -> None:
    nb = nbformat.read(str(built / "kernel" / "02_train.ipynb"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tags = [c.metadata.get("tags", []) for c in code]
    assert tags[:3] == [["segkit-install"], ["parameters"], ["injected-parameters"]]
    assert "--no-index" in code[0].source and "segkit-wheel" in code[0].source
    compile(code[0].source, "install-cell", "exec")  # valid Python
    injected = code[2].source
    assert "epochs = 3" in injected and 'run_dir = "runs/t4"' in injected
    assert "resume = True" in injected  # --resume-from makes the chained kernel resume
    assert all(c.outputs == [] for c in code)


def test_bundle_wheel_dataset(built: Path, smp_standin: Path) -> None:
    wheel_dir = built / "segkit-wheel"
    meta = json.loads((wheel_dir / "dataset-metadata.json").read_text())
    assert meta["id"] == "tester/segkit-wheel" and 6 <= len(meta["title"]) <= 50 and meta["licenses"]
    # Exactly segkit's and smp's wheels: no torch, nothing else Kaggle's image has.
    assert sorted(p.name for p in wheel_dir.iterdir()) == [
        "dataset-metadata.json",
        "segkit-0.1.0-py3-none-any.whl",
        SMP_WHEEL,
    ]
    assert (wheel_dir / SMP_WHEEL).read_bytes() == (smp_standin / SMP_WHEEL).read_bytes()
    (wheel,) = wheel_dir.glob("segkit-*-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in (
        "segkit/__init__.py",
        "segkit/kaggle/__init__.py",
        "segkit/kaggle/bundling.py",
        "segkit/cli.py",
        "segkit/data/discover.py",
        "segkit/data/synthetic/__init__.py",
        "segkit/dashboard/__init__.py",
    ):
        assert module in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_smp_wheel_is_downloaded_by_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smp_standin: Path) -> None:
    """The download path for real: `pip download` runs, its "index" a local find-links folder."""
    offline_pip(monkeypatch, find_links=smp_standin)
    dest = tmp_path / "segkit-wheel"
    dest.mkdir()
    (dest / "segmentation_models_pytorch-0.0.1-py3-none-any.whl").write_bytes(b"stale")  # an older bundle's
    assert smp_wheel(dest) == dest / SMP_WHEEL
    assert sorted(p.name for p in dest.iterdir()) == [SMP_WHEEL]
    assert (dest / SMP_WHEEL).read_bytes() == (smp_standin / SMP_WHEEL).read_bytes()


def test_smp_wheel_download_failure_says_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    offline_pip(monkeypatch, find_links=tmp_path / "empty")  # pip finds nothing, as without internet
    with pytest.raises(BundleError, match="downloading the segmentation-models-pytorch wheel failed") as err:
        smp_wheel(tmp_path / "dest")
    message = str(err.value)
    assert f"{SMP_DIST}=={SMP_VERSION} -d DIR" in message and "--wheels DIR" in message and "internet" in message


def test_wheels_dir_without_the_smp_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    offline_pip(monkeypatch)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "segmentation_models_pytorch-0.0.1-py3-none-any.whl").write_bytes(b"old")
    with pytest.raises(BundleError, match=f"no segmentation_models_pytorch-{SMP_VERSION}") as err:
        smp_wheel(tmp_path / "dest", wheels_dir=mine)
    assert "0.0.1" in str(err.value) and f"pip download --no-deps --only-binary=:all: {SMP_DIST}==" in str(err.value)
    with pytest.raises(BundleError, match="not a folder"):
        smp_wheel(tmp_path / "dest", wheels_dir=tmp_path / "missing")


def test_bundle_holds_no_secrets(built: Path) -> None:
    secrets = [*SENTINELS.values(), KAGGLE_JSON_KEY]
    for path in built.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".whl":
                data += b"".join(zipfile.ZipFile(path).read(n) for n in zipfile.ZipFile(path).namelist())
            assert not [s for s in secrets if s.encode() in data], path


def test_bundle_refuses_a_secret_in_the_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NGROK_AUTHTOKEN", SENTINELS["NGROK_AUTHTOKEN"])
    monkeypatch.setattr(bundling, "build_wheel", lambda dest, root=None: dest.mkdir(parents=True, exist_ok=True))
    monkeypatch.setattr(bundling, "smp_wheel", lambda dest, wheels_dir=None: None)
    notebook = write_standin_notebook(tmp_path / "nb.ipynb")
    with pytest.raises(BundleError, match="secret"):
        bundle(tmp_path / "out", {"run_dir": SENTINELS["NGROK_AUTHTOKEN"]}, username="tester", notebook=notebook)
    assert not (tmp_path / "out" / "kernel").exists()


@pytest.mark.slow
def test_wheel_installs_offline_in_a_fresh_venv(built: Path, tmp_path: Path) -> None:
    (wheel,) = (built / "segkit-wheel").glob("segkit-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # This pip installs into the fresh venv (--python): what `pip install --no-index` does in a kernel.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--disable-pip-version-check",
            "--find-links",
            str(wheel.parent),
            "segkit",
        ],
        check=True,
    )
    # No torch in this venv: check the package is installed, not that it imports its dependencies.
    code = "import importlib.util as u; print(u.find_spec('segkit').submodule_search_locations[0])"
    found = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )  # not the checkout: python -c puts the cwd on sys.path
    assert (
        Path(found.stdout.strip()).is_relative_to(venv)
        and (Path(found.stdout.strip()) / "kaggle" / "__init__.py").is_file()
    )


def overlay_venv(venv: Path, hide: tuple[str, ...]) -> Path:
    """A fresh venv that sees this environment's packages except the distributions `hide`.

    Each entry of this site-packages is symlinked into the new one, the files of `hide` left out;
    a new file goes into the venv. Never install into it a package it shows: pip would uninstall
    the old one through the links, out of this environment.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    target = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    site = sysconfig.get_path("purelib")
    # Asked of site-packages itself: from the checkout, segkit.egg-info would answer first.
    dists = [d for name in hide for d in importlib.metadata.distributions(name=name, path=[site])]
    hidden = {f.parts[0] for d in dists for f in d.files or []}
    for entry in Path(site).iterdir():
        if entry.name not in hidden and entry.name != "__pycache__":
            (target / entry.name).symlink_to(entry)
    return python


def run_install_cell(
    kaggle_input: Path, python: Path | str = sys.executable, **env: str
) -> subprocess.CompletedProcess:
    """INSTALL_CELL as the kernel runs it, with `kaggle_input` as /kaggle/input."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    clean.update({KAGGLE_INPUT_ENV: str(kaggle_input), "PIP_CONFIG_FILE": os.devnull, **env})
    return subprocess.run(
        [str(python), "-c", INSTALL_CELL],
        check=False,
        capture_output=True,
        text=True,
        env=clean,
        cwd=kaggle_input.parent,
    )


@pytest.mark.slow
def test_install_cell_installs_only_segkit_and_smp_offline(built: Path, tmp_path: Path) -> None:
    """The kernel's INSTALL_CELL, run as is, against an environment shaped like Kaggle's.

    Why this check: a fresh venv with torch installed for real would download or copy gigabytes.
    Instead the venv links this environment's packages (torch, torchvision, timm, ...) except segkit
    and smp, as Kaggle's image has them, and the cell runs in it with PIP_DRY_RUN=1 and PIP_REPORT:
    pip resolves exactly as in the kernel, then writes what it would install instead of installing.
    The cell's own --no-index keeps the index away; PIP_CONFIG_FILE=os.devnull drops pip.conf's
    find-links. The report must hold segkit and smp, both from the attached folder, and nothing
    else: torch>=2.2 etc. were satisfied by what is installed and left alone (the folder has no
    torch wheel, and --no-index has no other place to get one).
    """
    mount = tmp_path / "kaggle_input"
    shutil.copytree(built / "segkit-wheel", mount / "datasets" / "tester" / "segkit-wheel")
    python = overlay_venv(tmp_path / "venv", hide=("segkit", SMP_DIST))
    report = tmp_path / "report.json"
    run = run_install_cell(mount, python, PIP_DRY_RUN="1", PIP_REPORT=str(report), PIP_DISABLE_PIP_VERSION_CHECK="1")
    assert run.returncode == 0, run.stderr
    installs = {i["metadata"]["name"]: i["download_info"]["url"] for i in json.loads(report.read_text())["install"]}
    assert sorted(installs) == ["segkit", SMP_DIST]
    assert all(url.startswith((mount / "datasets").as_uri()) for url in installs.values()), installs
    assert (
        f"installing segkit-0.1.0-py3-none-any.whl, {SMP_WHEEL} from {mount / 'datasets' / 'tester' / 'segkit-wheel'}"
        in run.stdout
    )
    assert not list((tmp_path / "venv").glob("lib/*/site-packages/segkit*"))  # a dry run: nothing installed


@pytest.mark.slow
def test_install_cell_on_an_image_without_albumentations(built: Path, tmp_path: Path) -> None:
    """An image whose albumentations is AlbumentationsX (or none): pip cannot satisfy segkit offline,
    and the cell says what that means instead of only pip's error."""
    mount = tmp_path / "kaggle_input"
    shutil.copytree(built / "segkit-wheel", mount / "segkit-wheel")
    python = overlay_venv(tmp_path / "venv", hide=("segkit", SMP_DIST, "albumentations"))
    run = run_install_cell(mount, python, PIP_DRY_RUN="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    assert run.returncode == 1, run.stderr
    assert "albumentations<=2.0.8,>=2.0.1" in run.stderr  # pip's own error names the requirement
    assert (
        f"pip could not install segkit from {mount / 'segkit-wheel'}" in run.stderr and "AlbumentationsX" in run.stderr
    )


def test_install_cell_needs_the_dataset(tmp_path: Path, built: Path) -> None:
    assert KAGGLE_INPUT_ENV in INSTALL_CELL  # the cell runs before segkit is installed: it spells the name
    assert run_install_cell(tmp_path / "absent").returncode == 0  # not on Kaggle: nothing to do
    mount = tmp_path / "kaggle_input"
    mount.mkdir()
    run = run_install_cell(mount)
    assert run.returncode == 1 and "AssertionError: attach the segkit-wheel dataset" in run.stderr
    old = mount / "segkit-wheel"  # a dataset uploaded before smp's wheel was added
    old.mkdir()
    shutil.copy2(next((built / "segkit-wheel").glob("segkit-*.whl")), old)
    run = run_install_cell(mount)
    assert run.returncode == 1 and "no segmentation_models_pytorch wheel" in run.stderr


def test_unknown_parameter_is_refused(tmp_path: Path) -> None:
    notebook = write_standin_notebook(tmp_path / "nb.ipynb")
    with pytest.raises(BundleError, match="did you mean 'epochs'"):
        bundle(tmp_path / "out", {"epoch": 3}, username="tester", notebook=notebook)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"datasets": ["cityscapes"]}, "owner/slug"),
        ({"resume_from": "someone/My Run"}, "owner/slug"),
        ({"title": "run"}, "5-50 characters"),
    ],
)
def test_bad_references_are_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        bundle(tmp_path / "out", username="tester", notebook=write_standin_notebook(tmp_path / "nb.ipynb"), **kwargs)


def test_validate_kernel_metadata_finds_problems(tmp_path: Path) -> None:
    meta = {
        "id": "me/segkit-run",
        "title": "segkit other",
        "code_file": "missing.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": "yes",
        "enable_gpu": True,
        "enable_internet": False,
        "dataset_sources": ["nodash"],
        "kernel_sources": [],
    }
    problems = " | ".join(validate_kernel_metadata(meta, tmp_path))
    for fragment in ("slugify to the id's slug", "code_file 'missing.ipynb'", "is_private", "'nodash'"):
        assert fragment in problems


def test_the_real_02_train_notebook_prepares(tmp_path: Path) -> None:
    target = tmp_path / "02_train.ipynb"
    kaggle.prepare_notebook(REPO / "notebooks" / "02_train.ipynb", target, {})
    tags = [c.metadata.get("tags", []) for c in nbformat.read(str(target), as_version=4).cells if c.cell_type == "code"]
    assert tags[0] == ["segkit-install"] and ["parameters"] in tags


# --- in a kernel ----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["slug", "datasets/owner/slug"])
def test_data_found_under_a_fake_kaggle_input(cityscapes_factory, tmp_path: Path, layout: str) -> None:
    root = cityscapes_factory()
    mount = tmp_path / "kaggle_input"
    if layout == "slug":  # two datasets: images and labels apart
        images, labels = mount / "cityscapes-leftimg8bit", mount / "cityscapes-gtfine"
    else:
        images = labels = mount / "datasets" / "someone" / "cityscapes"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    shutil.move(str(root / "leftImg8bit"), str(images / "leftImg8bit"))
    shutil.move(str(root / "gtFine"), str(labels / "gtFine"))
    assert find_data_roots() == DataRoots(images, labels)


def _previous_run(run: Path, epoch: int) -> Path:
    run.mkdir(parents=True)
    torch.save({"epoch": epoch}, run / "last.pth")
    torch.save({"epoch": epoch}, run / "best_model.pth")
    (run / "history.csv").write_text(f"epoch\n{epoch}\n")
    (run / "config.json").write_text(json.dumps({"epochs": 9}))
    (run / "tb").mkdir()
    (run / "tb" / "events.out.tfevents.1").write_bytes(b"event")
    return run


def test_chained_resume_copies_the_previous_run(tmp_path: Path) -> None:
    mount = tmp_path / "kaggle_input"
    other = _previous_run(mount / "notebooks" / "me" / "other-kernel" / "runs" / "other", epoch=1)
    previous = _previous_run(mount / "segkit-t4-run-1" / "runs" / "train", epoch=4)
    (mount / "cityscapes" / "leftImg8bit" / "train").mkdir(parents=True)
    assert find_resume_checkpoint(run_name="train") == previous / "last.pth"
    assert find_resume_checkpoint(run_name="other") == other / "last.pth"

    run_dir = tmp_path / "working" / "runs" / "train"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text("mine")  # the user's file is never overwritten
    assert prepare_chained_resume(run_dir) is True
    assert torch.load(run_dir / "last.pth", weights_only=True) == {"epoch": 4}
    assert (run_dir / "history.csv").read_text() == "epoch\n4\n" and (run_dir / "best_model.pth").is_file()
    assert (run_dir / "tb" / "events.out.tfevents.1").is_file() and (run_dir / "config.json").read_text() == "mine"
    assert not list(run_dir.glob(".last.pth*"))
    assert prepare_chained_resume(run_dir) is False  # it has a last.pth now


def test_chained_resume_without_a_previous_run(tmp_path: Path) -> None:
    deep = tmp_path / "kaggle_input" / "a" / "b" / "c" / "d" / "e" / "f" / "g"
    _previous_run(deep, epoch=1)  # deeper than the bounded search
    assert find_resume_checkpoint() is None
    assert prepare_chained_resume(tmp_path / "working" / "runs" / "train") is False
    assert not (tmp_path / "working").exists()


def test_working_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert working_dir() == tmp_path
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    assert working_dir() == Path("/kaggle/working")
    monkeypatch.setenv(kaggle.WORKING_ENV, str(tmp_path / "w"))
    assert working_dir() == tmp_path / "w"


# --- session time ---------------------------------------------------------------------------


@pytest.mark.parametrize("elapsed, budget", [(0, 700), (100, 600), (695, 5), (710, 1.0), (800, 700)])
def test_time_budget_known_answers(elapsed: float, budget: float) -> None:
    assert time_budget_for(elapsed) == budget  # 12 h = 720 min, 20 min margin, at least 1 min


def test_default_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_time_budget() is None  # not on Kaggle
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    elapsed = session_elapsed_minutes()
    assert elapsed is not None and elapsed >= 0
    assert default_time_budget() == pytest.approx(time_budget_for(elapsed), abs=0.2)
    monkeypatch.setenv(kaggle.SESSION_HOURS_ENV, "9")  # TPU sessions
    assert default_time_budget() == pytest.approx(time_budget_for(elapsed, 540), abs=0.2)


# --- preflight ------------------------------------------------------------------------------


def test_unsupported_gpu_message_p100_and_t4() -> None:
    message = unsupported_gpu_message((6, 0), CURRENT_ARCHS, "Tesla P100-PCIE-16GB")
    assert "sm_60" in message and "T4" in message and "P100" in message
    assert unsupported_gpu_message((7, 5), CURRENT_ARCHS, "Tesla T4") is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU path")
def test_preflight_on_cpu(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    report = preflight()
    assert report["gpus"] == [] and report["on_kaggle"] is False and report["problems"] == []
    assert report["cpu_count"] >= 1 and report["ram_gb"] > 0 and report["time_left_minutes"] is None
    json.dumps(report)
    assert "GPU: none" in format_preflight(report)
    assert main(["kaggle", "preflight"]) == 0
    assert "torch" in capsys.readouterr().out
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    kaggle_report = preflight()
    assert kaggle_report["time_left_minutes"] > 0 and "GPU T4 x2" in kaggle_report["problems"][0]
    assert main(["kaggle", "preflight", "--json"]) == 1


def test_format_preflight_shows_the_p100_remedy() -> None:
    report = {
        "on_kaggle": True,
        "run_type": "Batch",
        "python": "3.11",
        "segkit": "0.1.0",
        "torch": "2.6.0",
        "cuda": "12.4",
        "arch_list": CURRENT_ARCHS,
        "cpu_count": 4,
        "ram_gb": 31.4,
        "ram_available_gb": 30.0,
        "disk_path": "/kaggle/working",
        "disk_free_gb": 19.5,
        "time_left_minutes": 700.0,
        "gpus": [
            {
                "index": 0,
                "name": "Tesla P100-PCIE-16GB",
                "capability": "6.0",
                "memory_gb": 15.9,
                "problem": unsupported_gpu_message((6, 0), CURRENT_ARCHS, "Tesla P100-PCIE-16GB"),
            }
        ],
    }
    report["problems"] = machine._problems(report)
    text = format_preflight(report)
    assert "sm_60" in text and "NOT SUPPORTED" in text and "PROBLEM:" in text and "GPU T4 x2" in text


@pytest.fixture
def weights_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, no $SEGKIT_WEIGHTS_DIR, a fake /kaggle/input, HF offline mode
    off (reachability never downloads), and a preset "test-resnet34" to check."""
    from huggingface_hub import constants

    for name in (
        "HF_HOME",
        "HUGGINGFACE_HUB_CACHE",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_ENDPOINT",
        "SEGKIT_WEIGHTS_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # in case pytest started with HF_HUB_OFFLINE=1
    monkeypatch.setitem(
        PRESETS, "test-resnet34", Recipe("test", {"encoder": "resnet34", "encoder_weights": "imagenet"})
    )
    return tmp_path / "kaggle_input"  # = $SEGKIT_KAGGLE_INPUT (the autouse fixture)


def test_preflight_weights_three_states(
    weights_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    report = preflight(preset="test-resnet34")
    assert report["weights"]["reachable"] is True and report["problems"] == []
    assert "pretrained weights resnet34/imagenet: will download smp-hub/resnet34.imagenet" in format_preflight(report)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline and not on disk: a problem, with the fix
    report = preflight(preset="test-resnet34")
    text = format_preflight(report)
    assert report["weights"]["reachable"] is False and len(report["problems"]) == 1
    assert "pretrained weights resnet34/imagenet: NOT reachable" in text
    assert "PROBLEM: pretrained weights resnet34/imagenet:" in text and "hf download smp-hub/resnet34.imagenet" in text
    assert main(["kaggle", "preflight", "--preset", "test-resnet34"]) == 1

    attached = weights_env / "resnet34-imagenet" / "model.safetensors"  # an uploaded Kaggle Dataset's slug
    attached.parent.mkdir(parents=True)
    attached.write_bytes(b"weights")
    capsys.readouterr()
    assert main(["kaggle", "preflight", "--encoder", "resnet34", "--encoder-weights", "imagenet"]) == 0
    assert f"pretrained weights resnet34/imagenet: found at {attached}" in capsys.readouterr().out


def test_preflight_weights_options(weights_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert preflight()["weights"] is None and "pretrained" not in format_preflight(preflight())
    monkeypatch.setitem(PRESETS, "test-own-unet", Recipe("test", {"model": "unet"}))  # no encoder key
    report = preflight(preset="test-own-unet")
    assert report["weights"]["reachable"] is None and report["problems"] == []
    assert "pretrained weights: none (no pretrained encoder, random initialisation)" in format_preflight(report)
    assert preflight(preset="test-resnet34", encoder_weights="none")["weights"]["reachable"] is None
    report = preflight(encoder="resnet5")  # would stop training too: a problem, not an exception
    assert report["weights"]["reachable"] is False and "did you mean 'resnet50'" in report["problems"][0]
    with pytest.raises(ConfigError, match="did you mean 'test-resnet34'"):
        preflight(preset="test-resnet3")
    with pytest.raises(ConfigError, match="--encoder NAME"):
        preflight(encoder_weights="ssl")


def test_example_params_match_the_real_notebook() -> None:
    params = kaggle.load_params(REPO / "kaggle" / "params.example.yaml")
    known = kaggle.notebook_parameters(REPO / "notebooks" / "02_train.ipynb")
    kaggle.check_params(params, known, REPO / "notebooks" / "02_train.ipynb")
    assert {"time_budget", "data_root", "num_workers", "resume"} <= known  # papermill's own parser skips some


def test_load_params_formats(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("epochs: 3\nimage_size: [128, 256]\n")
    assert kaggle.load_params(tmp_path / "p.yaml") == {"epochs": 3, "image_size": [128, 256]}
    (tmp_path / "p.json").write_text('{"epochs": 3')
    with pytest.raises(BundleError, match="not valid JSON"):
        kaggle.load_params(tmp_path / "p.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match="mapping"):
        kaggle.load_params(tmp_path / "list.json")
