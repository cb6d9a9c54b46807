"""Training loop: learns, writes the run directory, resumes exactly, stops cleanly, refuses to clobber."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from segkit.config import TrainConfig
from segkit.engine import TrainingDiverged, fit
from segkit.errors import ConfigError
from segkit.models import ModelFacts, set_facts
from segkit.rundir import RunSummary, Status


def tiny_config(data_root: Path, run_dir: Path, **changes) -> TrainConfig:
    base = TrainConfig(
        data_root=str(data_root),
        run_dir=str(run_dir),
        base_channels=8,
        depth=2,
        image_size=(32, 64),
        epochs=2,
        batch_size=2,
        lr=3e-3,
        num_workers=0,
        num_vis=1,
        log_every=1,
        scale_range=(0.75, 1.25),
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
    assert result.status == Status.COMPLETED and result.epochs_done == 3
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
    assert first.status == Status.STOPPED and load(tmp_path / "resumed" / "last.pth")["state"]["step_in_epoch"] == 1
    assert RunSummary.from_run_dir(tmp_path / "resumed").status == Status.STOPPED  # what a torchrun launcher reports
    resumed = fit(replace(interrupted, resume=True))
    assert resumed.status == Status.COMPLETED == RunSummary.from_run_dir(tmp_path / "resumed").status
    a, b = load(tmp_path / "straight" / "last.pth"), load(tmp_path / "resumed" / "last.pth")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [r["epoch"] for r in resumed.history] == [0, 1]
    for ra, rb in zip(straight.history, resumed.history):
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
    assert [r["epoch"] for r in more.history] == [0, 1]


def test_time_budget_stops_cleanly_with_checkpoint_and_evaluation(data, tmp_path):
    run = tmp_path / "run"
    result = fit(tiny_config(data, run, epochs=50, time_budget=0.0005))  # 30 ms: stops after one step
    assert result.status == Status.TIME_BUDGET and result.epochs_done < 50
    assert (run / "last.pth").is_file() and (run / "best_model.pth").is_file()
    assert result.history[-1]["miou"] is not None  # evaluated before stopping


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path):
    run = tmp_path / "run"
    hooks = []

    def poison(row):  # after epoch 0 is saved, every optimizer step leaves NaN weights
        if row.epoch == 0:

            def to_nan(optimizer, args, kwargs):
                with torch.no_grad():
                    for group in optimizer.param_groups:
                        for p in group["params"]:
                            p.fill_(float("nan"))

            hooks.append(register_optimizer_step_post_hook(to_nan))

    try:
        with pytest.raises(TrainingDiverged) as err:
            fit(tiny_config(data, run, epochs=3), on_epoch_end=poison)
    finally:
        for hook in hooks:
            hook.remove()
    msg = str(err.value)
    assert "nan" in msg and "epoch 1" in msg and "lr" in msg and "--resume" in msg
    last = load(run / "last.pth")
    assert last["state"]["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())


# ----------------------------------------------------------------------------- the building blocks, called directly


def _loader(data: Path, size=(32, 64), batch_size=2) -> torch.utils.data.DataLoader:
    from segkit.data.cityscapes import CityscapesDataset
    from segkit.data.discover import find_data_roots, list_samples
    from segkit.data.loaders import collate
    from segkit.data.transforms import eval_transform

    samples = list_samples(find_data_roots(data), "train")[:2]
    ds = CityscapesDataset(samples, eval_transform(size))
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, collate_fn=collate)


def _optim(model, lr=1e-2, scheduler="none", epochs=1, steps=1):
    from segkit.engine import Optim, build_optimizer, build_scheduler
    from segkit.runtime import Precision

    cfg = TrainConfig(lr=lr, scheduler=scheduler, epochs=epochs, weight_decay=0.0)
    optimizer = build_optimizer(cfg, model)
    return Optim(
        optimizer,
        build_scheduler(cfg, optimizer, steps),
        torch.amp.GradScaler("cpu", enabled=False),
        Precision(None, False),
    )


def test_train_one_epoch_makes_the_loss_fall_on_two_images(data):
    from segkit.engine import train_one_epoch
    from segkit.losses import build_loss
    from segkit.models import create_model

    torch.manual_seed(0)
    model = create_model("unet", base_channels=8, depth=2)
    loader, loss_fn, optim = _loader(data), build_loss("ce"), _optim(model, lr=3e-2)
    seen = []
    results = [
        train_one_epoch(
            model=model,
            loader=loader,
            loss_fn=loss_fn,
            optim=optim,
            epoch=e,
            on_step=lambda steps, loss, lr: seen.append((steps, loss, lr)),
        )
        for e in range(8)
    ]
    assert [r.steps for r in results] == [1] * 8 and results[0].images == 2
    assert results[-1].train_loss < 0.7 * results[0].train_loss, [r.train_loss for r in results]
    assert seen[0][0] == 1 and seen[0][1] == pytest.approx(results[0].train_loss) and seen[0][2] == 3e-2
    assert not any(r.stopped_early for r in results)


def test_train_one_epoch_stops_when_asked_after_a_step(data):
    from segkit.engine import train_one_epoch
    from segkit.losses import build_loss
    from segkit.models import create_model

    model = create_model("unet", base_channels=8, depth=2)
    loader = _loader(data, batch_size=1)  # 2 steps
    result = train_one_epoch(
        model=model,
        loader=loader,
        loss_fn=build_loss("ce"),
        optim=_optim(model),
        epoch=0,
        stop=lambda steps: Status.TIME_BUDGET if steps >= 1 else None,
    )
    assert result.steps == 1 and result.stopped_early is True


class _Oracle(torch.nn.Module):
    """Predicts fixed logits: the one-hot of `pred` (what a perfect or a known-wrong model outputs)."""

    def __init__(self, pred: torch.Tensor) -> None:
        super().__init__()
        self.pred = pred
        self.dummy = torch.nn.Parameter(torch.zeros(()))
        set_facts(self, ModelFacts({"name": "oracle"}, 1, (0.5,) * 3, (0.5,) * 3))

    def forward(self, image):
        return torch.nn.functional.one_hot(self.pred, 19).permute(0, 3, 1, 2).float() * 10 + self.dummy


def test_evaluate_known_answer():
    from segkit.evaluation import evaluate

    mask = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 255]]])  # (1, 2, 4): road x4, sidewalk x3, one ignored
    pred = torch.tensor([[[0, 0, 1, 0], [0, 0, 1, 5]]])  # one sidewalk pixel predicted as road
    loader = [{"image": torch.zeros(1, 3, 2, 4), "mask": mask, "name": ["a"]}]
    ev = evaluate(model=_Oracle(pred), loader=loader, image_size=(2, 4), per_image=True)
    cm = ev.confusion
    # road: tp 4, fp 1 -> 4/5; sidewalk: tp 2, fn 1 -> 2/3; the other 17 classes are absent: left out.
    assert cm.iou()[0].item() == pytest.approx(4 / 5) and cm.iou()[1].item() == pytest.approx(2 / 3)
    assert cm.miou() == pytest.approx((4 / 5 + 2 / 3) / 2) and ev.images == 1
    assert ev.per_image == [("a", pytest.approx((4 / 5 + 2 / 3) / 2))] and ev.val_loss is None
    perfect = evaluate(
        model=_Oracle(mask.clamp(max=18)),
        loader=loader,
        image_size=(2, 4),
        loss_fn=torch.nn.CrossEntropyLoss(ignore_index=255),
    )
    assert perfect.confusion.miou() == 1.0 and perfect.val_loss < 1e-3


def _lrs(scheduler, steps, time_fraction=None, warmup=0.0):
    from segkit.engine import build_scheduler

    p = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([p], lr=1.0)
    cfg = TrainConfig(scheduler=scheduler, epochs=1, warmup_epochs=warmup, lr=1.0)
    sched = build_scheduler(cfg, optimizer, steps, time_fraction)
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        sched.step()
    return out


def test_poly_schedule_known_answer_with_warmup():
    lrs = _lrs("poly", 10, warmup=0.2)  # 2 warmup steps over 10
    assert lrs[:2] == pytest.approx([1 / 3, 2 / 3])
    assert lrs[2:] == pytest.approx([(1 - k / 8) ** 0.9 for k in range(8)])


def test_poly_schedule_follows_the_time_budget_when_it_runs_out_first():
    spent = iter([0.0, 0.5, 0.5, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    fraction = lambda: next(spent)  # share of the budget used, read at each step
    lrs = _lrs("poly", 10, time_fraction=fraction)
    # progress = max(steps done / 10, budget used)
    assert lrs[:5] == pytest.approx([1.0, 0.5**0.9, 0.5**0.9, 0.1**0.9, 0.0])
    assert _lrs("none", 3) == [1.0, 1.0, 1.0]


def test_budget_reserves_time_for_the_final_evaluation(monkeypatch):
    from segkit.engine import Budget, stopping

    now = [1000.0]  # the budget's clock, moved by the test: exact answers however loaded the machine is
    monkeypatch.setattr(stopping, "time", SimpleNamespace(monotonic=lambda: now[0]))
    budget = Budget(1.0)  # 60 s
    now[0] += 30  # 30 s spent
    assert not budget.exhausted() and budget.fraction() == 0.5
    budget.reserve = 10  # an evaluation + save took 10 s: keep 2 x 10 s for the last ones
    assert not budget.exhausted() and budget.fraction() == 30 / 40
    budget.reserve = 15
    assert budget.exhausted()
    assert not Budget(0).exhausted() and Budget(0).left() is None


def test_the_final_evaluations_estimate_leaves_out_the_warm_up():
    from segkit.engine.fit import PROBE_IMAGES, evaluation_estimate

    calls = []

    def probe(k):  # seconds to evaluate the first k images: the first call pays a 5 s warm-up
        calls.append(k)
        return (5.0 if len(calls) == 1 else 0.0) + 0.25 * k

    # 101 val images at 0.25 s each: ~25 s, not the 530 s one cold image implies
    assert evaluation_estimate(probe, 101) == pytest.approx(0.25 * 101)
    assert calls == [1, PROBE_IMAGES]
    calls.clear()
    # under torchrun each process evaluates its share and times its own: 51 of 101 images on rank 0
    per_rank = lambda k: 0.25 * -(-k // 2)  # warm: rank 0's ceil(k / 2) images
    assert evaluation_estimate(per_rank, 101, world_size=2) == pytest.approx(0.25 * 51)
    assert evaluation_estimate(probe, 2) == pytest.approx(0.5) and calls == [1, 2]  # never more than there are
