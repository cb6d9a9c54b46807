"""Training loop: learns, writes the run directory, resumes exactly, stops cleanly, refuses to clobber."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from segkit.config import TrainConfig
from segkit.engine import TrainingDiverged, fit
from segkit.errors import ConfigError
from segkit.launch import summary_from_run_dir


def tiny_config(data_root: Path, run_dir: Path, **changes) -> TrainConfig:
    base = TrainConfig(
        data_root=str(data_root), run_dir=str(run_dir), base_channels=8, depth=2, image_size=(32, 64),
        epochs=2, batch_size=2, lr=3e-3, num_workers=0, num_vis=1, log_every=1, scale_range=(0.75, 1.25),
    )
    return replace(base, **changes)


@pytest.fixture
def data(cityscapes_factory) -> Path:
    return cityscapes_factory(splits={"train": 6, "val": 2}, size=(32, 64))


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_fit_writes_the_run_directory(data, tmp_path):
    run = tmp_path / "run"
    result = fit(tiny_config(data, run, epochs=3))
    assert result["status"] == "completed" and result["epochs_done"] == 3
    for name in ("config.json", "last.pth", "best_model.pth", "history.csv", "metrics.json"):
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    rows = list(csv.DictReader((run / "history.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < losses[0], losses  # it learns
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["protocol"]["resolution"] == "label" and metrics["protocol"]["images"] == 2
    assert 0 <= metrics["miou"] <= 1 and "road" in metrics["per_class"]
    config = json.loads((run / "config.json").read_text())
    assert config["environment"]["torch"] == torch.__version__
    last, best = load(run / "last.pth"), load(run / "best_model.pth")  # weights_only loads them
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "state", "model_spec"} <= set(last)
    assert best["model_spec"]["name"] == "unet" and best["image_size"] == [32, 64]


def test_resume_mid_epoch_equals_uninterrupted(data, tmp_path):
    cfg = tiny_config(data, tmp_path / "straight")
    straight = fit(cfg)
    interrupted = replace(cfg, run_dir=str(tmp_path / "resumed"))
    first = fit(interrupted, stop_at_step=4)  # 3 steps per epoch: stops inside epoch 1
    assert first["status"] == "stopped" and load(tmp_path / "resumed" / "last.pth")["state"]["step_in_epoch"] == 1
    assert summary_from_run_dir(tmp_path / "resumed")["status"] == "stopped"  # what a torchrun launcher reports
    resumed = fit(replace(interrupted, resume=True))
    assert resumed["status"] == "completed" == summary_from_run_dir(tmp_path / "resumed")["status"]
    a, b = load(tmp_path / "straight" / "last.pth"), load(tmp_path / "resumed" / "last.pth")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [r["epoch"] for r in resumed["history"]] == [0, 1]
    for ra, rb in zip(straight["history"], resumed["history"]):
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], abs=1e-6)
        assert ra["miou"] == rb["miou"]


def test_existing_run_dir_is_refused_then_overwritten_explicitly(data, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config(data, run, epochs=1)
    fit(cfg)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError) as err:
        fit(cfg)
    assert "--resume" in str(err.value) and "--overwrite" in str(err.value) and f"{run}-2" in str(err.value)
    fit(replace(cfg, overwrite=True))
    assert (run / "notes.txt").read_text() == "mine"  # only segkit's own files are replaced


def test_resume_without_checkpoint_and_with_changed_settings(data, tmp_path):
    with pytest.raises(ConfigError, match="no .*last.pth"):
        fit(tiny_config(data, tmp_path / "none", resume=True))
    cfg = tiny_config(data, tmp_path / "run", epochs=1)
    fit(cfg)
    with pytest.raises(ConfigError, match="batch_size"):
        fit(replace(cfg, resume=True, batch_size=3))
    more = fit(replace(cfg, resume=True, epochs=2))  # more epochs is allowed
    assert [r["epoch"] for r in more["history"]] == [0, 1]


def test_time_budget_stops_cleanly_with_checkpoint_and_evaluation(data, tmp_path):
    run = tmp_path / "run"
    result = fit(tiny_config(data, run, epochs=50, time_budget=0.0005))  # 30 ms: stops after one step
    assert result["status"] == "time_budget" and result["epochs_done"] < 50
    assert (run / "last.pth").is_file() and (run / "best_model.pth").is_file()
    assert result["history"][-1]["miou"] is not None  # evaluated before stopping


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path):
    run = tmp_path / "run"

    def poison(row):  # after epoch 0 is saved, the weights diverge
        if row["epoch"] == 0:
            model = poison.model
            with torch.no_grad():
                for p in model.parameters():
                    p.fill_(float("nan"))

    import segkit.run as run_module

    original = run_module.Run.build_model

    def capture(self, device):
        model, train_model = original(self, device)
        poison.model = model
        return model, train_model

    run_module.Run.build_model = capture
    try:
        with pytest.raises(TrainingDiverged) as err:
            fit(tiny_config(data, run, epochs=3), on_epoch_end=poison)
    finally:
        run_module.Run.build_model = original
    msg = str(err.value)
    assert "nan" in msg and "lr" in msg and "--resume" in msg
    last = load(run / "last.pth")
    assert last["state"]["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())
