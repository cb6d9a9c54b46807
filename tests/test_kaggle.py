"""Kaggle support: preflight, session budget, /kaggle/input discovery, chained resume, the bundle."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
import torch

from segkit import kaggle
from segkit.cli import main
from segkit.data.discover import DataRoots, find_data_roots
from segkit.kaggle import (
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
    time_budget_for,
    validate_kernel_metadata,
    working_dir,
)
from segkit.kaggle_env import KAGGLE_INPUT_ENV
from segkit.runtime import unsupported_gpu_message

REPO = Path(__file__).resolve().parent.parent
SENTINELS = {"KAGGLE_KEY": "SENTINEL-kaggle-key-0b1f", "NGROK_AUTHTOKEN": "SENTINEL-ngrok-token-77aa",
             "SEGKIT_DASHBOARD_AUTH": "someone:SENTINEL-password-9c"}
KAGGLE_JSON_KEY = "SENTINEL-kaggle-json-key-5e"
CURRENT_ARCHS = ["sm_75", "sm_80", "sm_86", "sm_90", "compute_90"]


@pytest.fixture(autouse=True)
def not_on_kaggle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_USERNAME", kaggle.WORKING_ENV, kaggle.SESSION_HOURS_ENV,
                 "CITYSCAPES_DATASET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(KAGGLE_INPUT_ENV, str(tmp_path / "kaggle_input"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle-config"))


def write_standin_notebook(path: Path) -> Path:
    """A minimal 02_train stand-in: title, a parameters cell, one code cell."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 02 train\nTrain a model."),
        nbformat.v4.new_code_cell("epochs: int = 20  # passes\nresume: bool = False  # continue\n"
                                  "run_dir: str = 'runs/train'  # output", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(epochs, resume, run_dir)"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("title, slug", [
    ("segkit cityscapes train", "segkit-cityscapes-train"),
    ("  SegKit: U-Net (256x512) -- run #2 ", "segkit-u-net-256x512-run-2"),
    ("Städte über alles", "stadte-uber-alles"),
    ("a__b..c", "a-b-c"),
])
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


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bundle through the CLI, with sentinel secrets in the environment and in kaggle.json."""
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
        status = main(["kaggle", "bundle", "--out", str(tmp / "out"), "--notebook", str(notebook),
                       "--params", str(tmp / "params.json"), "--title", "segkit T4 run 2",
                       "--datasets", "someone/cityscapes-leftimg8bit", "someone/cityscapes-gtfine",
                       "--resume-from", "tester/segkit-t4-run-1"])
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
    assert meta["dataset_sources"] == ["someone/cityscapes-leftimg8bit", "someone/cityscapes-gtfine",
                                       "tester/segkit-wheel"]
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
    assert "epochs = 3" in injected and "run_dir = \"runs/t4\"" in injected
    assert "resume = True" in injected  # --resume-from makes the chained kernel resume
    assert all(c.outputs == [] for c in code)


def test_bundle_wheel_dataset(built: Path) -> None:
    wheel_dir = built / "segkit-wheel"
    meta = json.loads((wheel_dir / "dataset-metadata.json").read_text())
    assert meta["id"] == "tester/segkit-wheel" and 6 <= len(meta["title"]) <= 50 and meta["licenses"]
    (wheel,) = wheel_dir.glob("segkit-*-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("segkit/__init__.py", "segkit/kaggle/__init__.py", "segkit/kaggle/bundling.py", "segkit/cli.py",
                   "segkit/data/discover.py", "segkit/data/synthetic/__init__.py", "segkit/dashboard/__init__.py"):
        assert module in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


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
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index", "--no-deps",
                    "--disable-pip-version-check", "--find-links", str(wheel.parent), "segkit"], check=True)
    # No torch in this venv: check the package is installed, not that it imports its dependencies.
    code = "import importlib.util as u; print(u.find_spec('segkit').submodule_search_locations[0])"
    found = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True,
                           cwd=tmp_path)  # not the checkout: python -c puts the cwd on sys.path
    assert Path(found.stdout.strip()).is_relative_to(venv) and (Path(found.stdout.strip()) / "kaggle" / "__init__.py").is_file()


def test_unknown_parameter_is_refused(tmp_path: Path) -> None:
    notebook = write_standin_notebook(tmp_path / "nb.ipynb")
    with pytest.raises(BundleError, match="did you mean 'epochs'"):
        bundle(tmp_path / "out", {"epoch": 3}, username="tester", notebook=notebook)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"datasets": ["cityscapes"]}, "owner/slug"),
    ({"resume_from": "someone/My Run"}, "owner/slug"),
    ({"title": "run"}, "5-50 characters"),
])
def test_bad_references_are_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        bundle(tmp_path / "out", username="tester", notebook=write_standin_notebook(tmp_path / "nb.ipynb"), **kwargs)


def test_validate_kernel_metadata_finds_problems(tmp_path: Path) -> None:
    meta = {"id": "me/segkit-run", "title": "segkit other", "code_file": "missing.ipynb", "language": "python",
            "kernel_type": "notebook", "is_private": "yes", "enable_gpu": True, "enable_internet": False,
            "dataset_sources": ["nodash"], "kernel_sources": []}
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
    report = {"on_kaggle": True, "run_type": "Batch", "python": "3.11", "segkit": "0.1.0", "torch": "2.6.0",
              "cuda": "12.4", "arch_list": CURRENT_ARCHS, "cpu_count": 4, "ram_gb": 31.4, "ram_available_gb": 30.0,
              "disk_path": "/kaggle/working", "disk_free_gb": 19.5, "time_left_minutes": 700.0,
              "gpus": [{"index": 0, "name": "Tesla P100-PCIE-16GB", "capability": "6.0", "memory_gb": 15.9,
                        "problem": unsupported_gpu_message((6, 0), CURRENT_ARCHS, "Tesla P100-PCIE-16GB")}]}
    report["problems"] = machine._problems(report)
    text = format_preflight(report)
    assert "sm_60" in text and "NOT SUPPORTED" in text and "PROBLEM:" in text and "GPU T4 x2" in text


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
