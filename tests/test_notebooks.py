"""The five notebooks: parameters == config fields, clean in git, executed (nbval, papermill).

The executing tests run real Jupyter kernels in smoke mode (SEGKIT_SMOKE=1: tiny synthetic data,
one short epoch) and are marked slow.
"""

from __future__ import annotations

import ast
import io
import os
import subprocess
import sys
import tokenize
from dataclasses import MISSING, fields
from pathlib import Path

import nbformat
import pytest

import segkit.notebook as snb
from segkit.config import CompareConfig, EvalConfig, ExploreConfig, TrainConfig, VisualizeConfig
from segkit.errors import ConfigError
from segkit.recipes import PRESETS
from segkit.reflect import field_help

REPO = Path(__file__).resolve().parent.parent
QUICK = PRESETS["cpu-quick"].fields
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = {
    "01_explore_data": ExploreConfig,
    "02_train": TrainConfig,
    "03_evaluate": EvalConfig,
    "04_visualize": VisualizeConfig,
    "05_compare_runs": CompareConfig,
}


def _read(name: str):
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


def _parameters_cells(nb) -> list:
    return [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]


def _parse_parameters(source: str) -> tuple[list[str], dict, dict, dict]:
    """(names in order, defaults, annotations, help comments) of a `name: type = value  # help` cell."""
    names, defaults, annotations = [], {}, {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.AnnAssign), f"not `name: type = literal`: {ast.unparse(node)}"
        names.append(node.target.id)
        defaults[node.target.id] = ast.literal_eval(node.value)  # literals only
        annotations[node.target.id] = ast.unparse(node.annotation)
    helps = {}
    for line in source.splitlines():
        comments = [
            t.string for t in tokenize.generate_tokens(io.StringIO(line).readline) if t.type == tokenize.COMMENT
        ]
        helps[line.split(":", 1)[0]] = comments[-1].lstrip("#").strip()
    return names, defaults, annotations, helps


# ----------------------------------------------------------------------------- the committed files


@pytest.mark.parametrize("name, cls", NOTEBOOKS.items())
def test_parameters_cell_equals_config_fields(name, cls):
    (cell,) = _parameters_cells(_read(name))
    names, defaults, annotations, helps = _parse_parameters(cell.source)
    assert names == [f.name for f in fields(cls)]
    assert defaults == {f.name: f.default for f in fields(cls) if f.default is not MISSING}
    assert helps == {n: h.replace(" = ", ": ") for n, h in field_help(cls).items()}  # papermill: one `=` a line
    assert all(type(defaults[n]).__name__ == annotations[n].split("[")[0] for n in names)


@pytest.mark.parametrize("name, cls", NOTEBOOKS.items())
def test_papermill_documents_the_parameters(name, cls):
    import papermill

    params = papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
    assert list(params) == [f.name for f in fields(cls)]
    assert {n: p["help"] for n, p in params.items()} == snb.parameter_help(cls)
    if cls is TrainConfig:
        assert params["epochs"]["default"] == "20" and params["epochs"]["inferred_type_name"] == "int"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_stripped_and_documented(name):
    nb = _read(name)
    nbformat.validate(nb)
    assert len(_parameters_cells(nb)) == 1
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "outputs must be stripped"
    title = nb.cells[0]
    assert title.cell_type == "markdown" and title.source.startswith("# ")
    assert f"papermill notebooks/{name}.ipynb" in title.source  # the headless command
    assert max(len(c.source.splitlines()) for c in code if c not in _parameters_cells(nb)) <= 15


# ----------------------------------------------------------------------------- parameters -> config


def _namespace(**params) -> tuple[dict, frozenset]:
    namespace = {"TrainConfig": TrainConfig, "segkit": snb}
    before = snb.snapshot(namespace)
    namespace.update(params)
    return namespace, before


def test_unknown_parameter_fails_with_valid_names():
    namespace, before = _namespace(epochs=3, epoch=1)
    with pytest.raises(ConfigError) as err:
        snb.config_from_namespace(TrainConfig, namespace, before)
    message = str(err.value)
    assert "'epoch'" in message and "did you mean 'epochs'" in message and "batch_size" in message


def test_only_the_parameter_cells_count_in_a_kernel():
    # IPython's input history: imports, the parameters cell (with a typo, then fixed), later cells.
    params = snb.parameters_source(TrainConfig)
    history = ["", "import segkit", params.replace("epochs:", "epoch:"), "result = {'miou': 0.5}", params]
    namespace, before = _namespace(In=history, epoch=20, result={"miou": 0.5})
    assert snb.config_from_namespace(TrainConfig, namespace, before).epochs == 20  # stale `epoch` ignored
    namespace["In"] = history + ["# Parameters\nlrr = 0.1\n"]  # what papermill injects
    namespace["lrr"] = 0.1
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        snb.config_from_namespace(TrainConfig, namespace, before)


def test_injected_values_count_as_set_even_when_equal_to_the_default(monkeypatch):
    monkeypatch.setenv(snb.SMOKE_ENV, "0")
    params = snb.parameters_source(TrainConfig).replace("preset: str = ''", "preset: str = 'cpu-quick'")
    namespace, before = _namespace(
        In=["", "import segkit", params, "# Parameters\nepochs = 20\n"], preset="cpu-quick", epochs=20
    )
    cfg = snb.config_from_namespace(TrainConfig, namespace, before)
    assert (cfg.epochs, cfg.base_channels) == (20, QUICK["base_channels"])  # -p epochs 20 kept, the rest preset
    namespace["In"] = namespace["In"][:-1]  # no -p: 20 is the default, the preset's 200 fills it
    assert snb.config_from_namespace(TrainConfig, namespace, before).epochs == QUICK["epochs"]


def test_ill_typed_parameter_fails_with_the_config_message():
    namespace, before = _namespace(epochs="ten")
    with pytest.raises(ConfigError, match="epochs must be an integer, got 'ten'"):
        snb.config_from_namespace(TrainConfig, namespace, before)


def test_explicit_values_beat_the_preset(monkeypatch):
    monkeypatch.setenv(snb.SMOKE_ENV, "0")
    namespace, before = _namespace(preset="cpu-quick", epochs=5, image_size="128x256")
    cfg = snb.config_from_namespace(TrainConfig, namespace, before)
    assert (cfg.epochs, cfg.image_size, cfg.base_channels, cfg.lr) == (
        5,
        (128, 256),
        QUICK["base_channels"],
        QUICK["lr"],
    )


def test_a_preset_completes_the_parameters_before_their_checks_run(monkeypatch):
    """encoder_lr_scale 0 needs the preset's encoder; checked with it, as on the command line."""
    monkeypatch.setenv(snb.SMOKE_ENV, "0")
    monkeypatch.setattr(snb, "resolve_train_config", lambda cfg, explicit: cfg)  # no weights lookup here
    namespace, before = _namespace(preset="cpu-pretrained", encoder_lr_scale=0.0)
    cfg = snb.config_from_namespace(TrainConfig, namespace, before)
    assert (cfg.encoder, cfg.encoder_lr_scale) == ("tu-tf_efficientnet_lite0", 0.0)


def test_smoke_shrinks_what_was_not_set(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(snb.SMOKE_ENV, "1")
    namespace, before = _namespace(lr=0.01, epochs=20)
    cfg = snb.config_from_namespace(TrainConfig, namespace, before)
    assert (cfg.image_size, cfg.base_channels, cfg.epochs, cfg.lr) == ((64, 128), 8, 1, 0.01)
    assert cfg.run_dir == snb.SMOKE_RUN and cfg.overwrite
    assert len(list((tmp_path / snb.SMOKE_DATA / "leftImg8bit" / "val").rglob("*.png"))) == 3


def test_demo_runs_every_notebook_with_its_own_parameters():
    import papermill

    from segkit.demo import NOTEBOOKS as DEMO_NOTEBOOKS
    from segkit.demo import notebook_parameters

    params = notebook_parameters("data/synthetic", "runs/demo/run", 3.0)
    assert tuple(params) == DEMO_NOTEBOOKS == tuple(NOTEBOOKS)
    for name, values in params.items():
        assert set(values) <= set(papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))), name
    assert params["05_compare_runs"] == {"runs_dir": "runs/demo"}


def test_demo_is_a_cli_command():
    from segkit.cli import build_parser
    from segkit.demo import cmd_demo

    args = build_parser().parse_args(["demo", "--out", "runs/x", "--minutes", "1"])
    assert (args.func, args.out, args.minutes) == (cmd_demo, "runs/x", 1.0)


# ----------------------------------------------------------------------------- executed notebooks


def _smoke_env() -> dict[str, str]:
    return {**os.environ, "SEGKIT_SMOKE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


@pytest.mark.slow
def test_notebooks_run_under_nbval_in_smoke_mode():
    # 02 writes runs/smoke/train, which 03, 04 and 05 read: nbval runs the files in name order.
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        "--nbval-current-env",
        "-p",
        "no:cacheprovider",
        "-q",
        str(NOTEBOOK_DIR),
    ]
    proc = subprocess.run(cmd, check=False, cwd=REPO, env=_smoke_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    cells = sum(c.cell_type == "code" for name in NOTEBOOKS for c in _read(name).cells)
    assert f"{cells} passed" in proc.stdout  # nbval: one test per code cell, every cell ran


def _papermill_cli(notebook: str, output: Path, *params: str) -> subprocess.CompletedProcess:
    args = [x for pair in zip(["-p"] * (len(params) // 2), params[::2], params[1::2]) for x in pair]
    cmd = [
        sys.executable,
        "-m",
        "papermill",
        f"notebooks/{notebook}.ipynb",
        str(output),
        "-k",
        "python3",
        "--no-progress-bar",
        *args,
    ]
    return subprocess.run(cmd, check=False, cwd=REPO, env=_smoke_env(), capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_papermill_injected_parameters_are_used(tmp_path):
    run_dir = tmp_path / "run"
    out = tmp_path / "02_train.ipynb"
    proc = _papermill_cli("02_train", out, "epochs", "2", "run_dir", str(run_dir), "seed", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    saved = json.loads((run_dir / "config.json").read_text())["config"]
    assert (saved["epochs"], saved["seed"], saved["image_size"]) == (2, 3, [64, 128])  # smoke kept the rest tiny
    assert len((run_dir / "history.csv").read_text().splitlines()) == 1 + 2
    outputs = [o for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code" for o in c.outputs]
    streams = {name: "".join(o.text for o in outputs if o.get("name") == name) for name in ("stdout", "stderr")}
    assert "epoch 1 val mIoU" in streams["stdout"] and "val mIoU" not in streams["stderr"]  # INFO is not red
    assert "\r" not in streams["stdout"] + streams["stderr"]  # headless: log lines, no bars
    assert not any("epochs done" in str(o.get("data", "")) for o in outputs)  # and no live view
    assert out.stat().st_size < 150_000  # one figure (the curves cell), not one per epoch
    from segkit.demo import copy_readme_figures

    (figure,) = copy_readme_figures({"02_train": out}, tmp_path / "figures")
    assert 0 < figure.stat().st_size < 150_000


@pytest.mark.slow
def test_papermill_misspelled_parameter_fails_naming_the_valid_ones(tmp_path):
    proc = _papermill_cli("02_train", tmp_path / "out.ipynb", "epoch", "1", "run_dir", str(tmp_path / "run"))
    assert proc.returncode != 0
    assert "did you mean 'epochs'" in proc.stderr and "valid names" in proc.stderr
    assert not (tmp_path / "run").exists()  # nothing was trained


@pytest.mark.slow
def test_papermill_ill_typed_parameter_fails_with_the_config_message(tmp_path, monkeypatch):
    import papermill

    monkeypatch.setenv("SEGKIT_SMOKE", "1")
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(
            str(NOTEBOOK_DIR / "04_visualize.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters={"num_samples": "four"},
            kernel_name="python3",
            cwd=str(REPO),
            progress_bar=False,
        )
    assert err.value.ename == "ConfigError"
    assert "num_samples must be an integer, got 'four'" in err.value.evalue


def test_sync_rewrites_a_stale_parameters_cell(tmp_path):
    """`make notebook-params` (sync_parameter_cells) brings a stale cell back to the config, and only it."""
    for name in NOTEBOOKS:
        (tmp_path / f"{name}.ipynb").write_text((NOTEBOOK_DIR / f"{name}.ipynb").read_text())
    assert snb.sync_parameter_cells(tmp_path) == []  # the committed cells are current
    nb = nbformat.read(tmp_path / "02_train.ipynb", as_version=4)
    (cell,) = _parameters_cells(nb)
    cell.source = cell.source.replace("epochs: int = 20", "epochs: int = 3")
    nbformat.write(nb, tmp_path / "02_train.ipynb")
    assert snb.sync_parameter_cells(tmp_path) == [str(tmp_path / "02_train.ipynb")]
    (cell,) = _parameters_cells(_read_from(tmp_path, "02_train"))
    assert cell.source == snb.parameters_source(TrainConfig)


def _read_from(folder: Path, name: str):
    return nbformat.read(folder / f"{name}.ipynb", as_version=4)
