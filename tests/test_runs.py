"""Runs side by side (`segkit runs`, notebook 05) on real run directories, whole and broken, and
the HParams record each training run leaves in its own TensorBoard folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from segkit.benchmark import format_table
from segkit.checkpoint import atomic_save, load_checkpoint
from segkit.compare import find_run_dirs, format_runs, list_runs, run_histories, runs_table, speed_tables
from segkit.config import TrainConfig
from segkit.errors import ConfigError
from segkit.metrics import protocol_text
from segkit.reflect import from_dict
from segkit.rundir import LOCK_FILE, HistoryRow, Status, read_history, write_history
from segkit.tb import HPARAM_METRICS, NOT_HPARAMS

REPO = Path(__file__).resolve().parent.parent
# Holds train.lock as a training process does, until its stdin closes.
HOLD_LOCK = (
    "import sys; from segkit.files import hold_lock; f = hold_lock(sys.argv[1]); "
    "print('held', flush=True); sys.stdin.read()"
)


def copy_run(src: Path, dst: Path, status: str | None = None, drop: tuple[str, ...] = ()) -> Path:
    """A copy of a run directory, with last.pth's saved status changed and some files removed."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("dashboard.json", LOCK_FILE))
    if status is not None:
        ckpt = load_checkpoint(dst / "last.pth")
        ckpt["state"]["status"] = status
        atomic_save(ckpt, dst / "last.pth")
    for name in drop:
        (dst / name).unlink()
    return dst


def hold_lock(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir / LOCK_FILE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture(scope="module")
def runs_root(tiny_run: Path, tmp_path_factory) -> Path:
    """Run directories that ended every way, a broken one, a nested one and a folder that is no run."""
    root = tmp_path_factory.mktemp("runs")
    copy_run(tiny_run, root / "done")
    copy_run(tiny_run, root / "budget", status="time_budget")
    copy_run(tiny_run, root / "sigterm", status="SIGTERM")
    copy_run(tiny_run, root / "killed", status="running", drop=("metrics.json",))
    copy_run(tiny_run, root / "deep" / "er" / "run")
    (root / "no_epoch").mkdir()
    shutil.copy(tiny_run / "config.json", root / "no_epoch" / "config.json")
    broken = copy_run(tiny_run, root / "broken")
    (broken / "config.json").write_text('{"config": {"model": "unet", ')
    (broken / "last.pth").write_bytes((tiny_run / "last.pth").read_bytes()[:500])
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    (broken / "metrics.json").write_text(json.dumps({k: v for k, v in metrics.items() if k != "protocol"}))
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a run")
    (root / "done" / "speed.json").write_text(json.dumps(SPEED))
    (root / "budget" / "speed.json").write_text("{not json")
    return root


# speed.json as `segkit benchmark --checkpoint RUN/best_model.pth` writes it beside the checkpoint.
SPEED = {
    "device": "cpu",
    "threads": 2,
    "image_size": [32, 64],
    "batch_size": 1,
    "torch": "2.x",
    "backends": {
        "eager": {
            "latency_ms": {"p50": 1.5, "p90": 1.75, "p99": 2.0},
            "fps": 650.0,
            "end_to_end_fps": 210.5,
            "peak_memory_mb": 400.0,
            "miou": None,
            "miou_delta": None,
            "outputs_equal": True,
        },
        "openvino": {"unavailable": "not installed: pip install openvino"},
    },
}


def by_name(rows: list, root: Path) -> dict:
    return {str(Path(r.path).relative_to(root)): r for r in rows}


def test_every_run_dir_gets_a_true_row(runs_root: Path, tiny_run: Path) -> None:
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    rows = by_name(list_runs(runs_root), runs_root)
    assert sorted(rows) == ["broken", "budget", "deep/er/run", "done", "killed", "no_epoch", "sigterm"]
    done = rows["done"]
    assert (done.model, done.encoder, done.image_size, done.epochs_done, done.epochs) == ("unet", "", "32x64", 2, 2)
    assert done.status == Status.COMPLETED and done.notes == [] and 0 < done.minutes < 5
    assert done.miou == pytest.approx(metrics["miou"]) and done.protocol == protocol_text(metrics)
    assert "label resolution" in done.protocol and "2 images" in done.protocol
    assert rows["budget"].status == Status.TIME_BUDGET and rows["deep/er/run"].status == Status.COMPLETED
    assert rows["sigterm"].status == Status.SIGTERM and "--resume" in rows["sigterm"].notes[0]
    killed = rows["killed"]
    assert killed.status == Status.FAILED and "ended during epoch 3 without saving how" in " ".join(killed.notes)
    # No metrics.json yet: best_model.pth's own validation, with its protocol and saying where it is from.
    assert killed.miou is not None and killed.protocol and "best_model.pth" in " ".join(killed.notes)
    assert rows["no_epoch"].status == Status.FAILED and "before its first epoch" in rows["no_epoch"].notes[0]
    # One vocabulary: every status a row can have is a `Status`, and the table shows its text.
    shown = {name: (row.status, row.cells()["status"]) for name, row in rows.items()}
    assert all(isinstance(status, Status) and cell == status.text for status, cell in shown.values()), shown
    assert shown["done"][1] == "finished" and shown["budget"][1] == "stopped by budget"
    assert shown["sigterm"][1] == "interrupted (SIGTERM)" and shown["killed"][1] == "failed"


def test_a_broken_run_dir_says_what_is_wrong_and_shows_no_bare_number(runs_root: Path) -> None:
    broken = by_name(list_runs(runs_root), runs_root)["broken"]
    notes = " ".join(broken.notes)
    assert "config.json is unreadable" in notes and "last.pth is unreadable" in notes
    assert "no readable protocol, so it is not shown" in notes
    assert broken.status == Status.UNKNOWN and broken.miou is None and broken.model is None
    cells = broken.cells()
    assert (cells["model"], cells["epochs"], cells["val mIoU %"], cells["status"]) == ("?", "?/?", None, "unknown")


def test_running_while_the_lock_is_held_failed_once_its_process_is_gone(runs_root: Path, tmp_path: Path) -> None:
    run = copy_run(runs_root / "killed", tmp_path / "run")
    holder = hold_lock(run)
    try:
        (row,) = list_runs(run)
        assert row.status == Status.RUNNING and f"pid {holder.pid}" in row.notes[-1]
        # Nobody may train into it meanwhile, not even with --overwrite (which would delete its files).
        before = sorted(p.name for p in run.iterdir())
        saved = json.loads((run / "config.json").read_text())["config"]
        cfg = from_dict(TrainConfig, {**saved, "run_dir": str(run), "overwrite": True})
        from segkit.engine import fit

        with pytest.raises(ConfigError, match=f"being trained into right now \\(pid {holder.pid} on"):
            fit(cfg)
        assert sorted(p.name for p in run.iterdir()) == before
    finally:
        holder.kill()
        holder.communicate()
    (row,) = list_runs(run)
    assert row.status == Status.FAILED


def test_table_text_and_curves(runs_root: Path) -> None:
    rows = list_runs(runs_root)
    table = runs_table(rows)
    assert list(table.columns) == [
        "model",
        "encoder",
        "image size",
        "classes",
        "epochs",
        "time",
        "status",
        "val mIoU %",
        "protocol",
        "note",
    ]
    text = format_runs(rows)
    assert "stopped by budget" in text and "    ! config.json is unreadable" in text and "(own U-Net)" in text
    curves = run_histories(rows)
    assert len(curves) == 6 and all(len(h) == 2 for h in curves.values())  # every run but the one without history
    assert any(label.endswith("(val at label resolution)") for label in curves)


def test_speed_tables_of_the_runs_benchmarked(runs_root: Path) -> None:
    tables = speed_tables(list_runs(runs_root))
    assert tables == {str(runs_root / "done"): format_table(SPEED)}  # budget's speed.json is unreadable: left out
    assert "210.5" in tables[str(runs_root / "done")] and "openvino          not measured" in format_table(SPEED)


def test_find_run_dirs_refuses_a_missing_folder(tmp_path: Path) -> None:
    from segkit.errors import SegkitError

    with pytest.raises(SegkitError, match="not a folder"):
        find_run_dirs(tmp_path / "nope")


@pytest.mark.slow
def test_cli_in_a_real_process(runs_root: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "segkit", "runs", str(runs_root)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["run", "model", "encoder"] and len([x for x in lines if "  unet  " in x]) == 6
    assert "interrupted (SIGTERM)" in done.stdout and "Traceback" not in done.stderr


def test_cli_default_folder_missing(tmp_path: Path, monkeypatch, capsys) -> None:
    from segkit.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["runs"]) == 2  # default runs/, absent here
    assert "runs is not a folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------- HParams


def test_hparams_are_in_the_runs_own_event_files(tiny_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    tb = tiny_run / "tb"
    assert [p for p in tb.iterdir() if p.is_dir()] == []  # no timestamped sub-run: beside the scalars
    events = EventAccumulator(str(tb))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    assert set(content) == {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"}
    data = {tag: plugin_data_pb2.HParamsPluginData.FromString(raw) for tag, raw in content.items()}
    metric_tags = [m.name.tag for m in data["_hparams_/experiment"].experiment.metric_infos]
    assert metric_tags == list(HPARAM_METRICS)
    hparams = data["_hparams_/session_start_info"].session_start_info.hparams
    cfg = json.loads((tiny_run / "config.json").read_text())["config"]
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert {n for n in cfg if n not in NOT_HPARAMS} <= set(hparams) and not set(NOT_HPARAMS) & set(hparams)
    assert hparams["model"].string_value == "unet" and hparams["image_size"].string_value == "32x64"
    assert (hparams["lr"].number_value, hparams["epochs"].number_value, hparams["base_channels"].number_value) == (
        pytest.approx(3e-3),
        2,
        4,
    )
    assert hparams["status"].string_value == "completed" and hparams["epochs_done"].number_value == 2
    assert hparams["final_protocol"].string_value == protocol_text(metrics)
    for key in ("miou", "mean_dice", "pixel_accuracy"):
        (final,) = events.Scalars(f"val/final_{key}")
        assert final.value == pytest.approx(metrics[key], abs=1e-6)
    assert {"train/loss", "val/miou", "val/val_loss", "train/epoch_loss"} <= set(events.Tags()["scalars"])


@pytest.mark.slow
def test_notebook_05_on_every_kind_of_run(runs_root: Path, tmp_path: Path) -> None:
    import nbformat
    import papermill

    out = tmp_path / "05.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "05_compare_runs.ipynb"),
        str(out),
        parameters={"runs_dir": str(runs_root)},
        kernel_name="python3",
        cwd=str(REPO),
        progress_bar=False,
    )
    html = "".join(
        o.get("data", {}).get("text/html", "")
        for c in nbformat.read(out, as_version=4).cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert "stopped by budget" in html and "config.json is unreadable" in html
    printed = "".join(
        "".join(o.get("text", ""))
        for c in nbformat.read(out, as_version=4).cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert format_table(SPEED) in printed and "1 of 7 run(s) benchmarked" in printed
    assert (runs_root / "compare_runs.png").stat().st_size > 10_000


def test_history_csv_is_written_from_the_typed_rows_and_read_back_as_them(tmp_path: Path) -> None:
    """Known bytes (the columns of `HistoryRow`, "" where not measured); reading gives the same rows."""
    rows = [
        HistoryRow(0, 1.5, lr=0.01, images_per_sec=12.5, minutes=0.25, steps=3),
        HistoryRow(
            1, 1.25, val_loss=1.0, miou=0.5, mean_dice=0.625, pixel_accuracy=0.75, lr=0.005, minutes=0.5, steps=6
        ),
    ]
    write_history(tmp_path / "history.csv", rows)
    assert (tmp_path / "history.csv").read_bytes() == (
        b"epoch,train_loss,val_loss,miou,mean_dice,pixel_accuracy,lr,images_per_sec,minutes,steps\r\n"
        b"0,1.5,,,,,0.01,12.5,0.25,3\r\n"
        b"1,1.25,1.0,0.5,0.625,0.75,0.005,0.0,0.5,6\r\n"
    )
    back = read_history(tmp_path / "history.csv")
    assert back == rows and isinstance(back[1].steps, int) and back[0].miou is None


def test_speed_points_are_each_backends_miou_against_its_frame_rate(tmp_path: Path) -> None:
    from segkit.compare import RunRow, speed_points
    from segkit.viz import plot_speed_accuracy

    backends = {
        "eager": {**SPEED["backends"]["eager"], "end_to_end_fps": 9.0},  # lossless: the run's own mIoU
        "openvino-int8": {**SPEED["backends"]["eager"], "end_to_end_fps": 40.0, "miou": 0.69, "outputs_equal": False},
        "onnxruntime-int8": {**SPEED["backends"]["eager"], "end_to_end_fps": 30.0, "outputs_equal": False},  # unscored
        "onnxruntime": {"failed": "exit status 1"},
        "openvino": {"unavailable": "not installed: pip install openvino"},
    }
    scored = tmp_path / "scored"
    scored.mkdir()
    (scored / "speed.json").write_text(json.dumps({**SPEED, "image_size": [256, 512], "backends": backends}))
    rows = [RunRow(str(scored), miou=0.70), RunRow(str(tmp_path / "never-benchmarked"), miou=0.5)]
    points = speed_points(rows)
    assert [(p["backend"], p["end_to_end_fps"], p["miou"]) for p in points] == [
        ("eager", 9.0, 0.70),
        ("openvino-int8", 40.0, 0.69),
    ]
    assert {p["run"] for p in points} == {str(scored)} and points[0]["image_size"] == "256x512"
    fig = plot_speed_accuracy(points)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts[:2]] == ["eager", "openvino-int8"]
    assert ax.get_legend().get_texts()[0].get_text() == "scored (256x512)"
