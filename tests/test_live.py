"""The live view of a run in a notebook: what it draws from a real history, nothing headless, and
a torchrun run started from a real kernel shown in place without flooding the cell."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import kernel_streams

from segkit.config import TrainConfig
from segkit.engine import fit
from segkit.launch import train
from segkit.live import LiveView, live_view


def tiny_config(data_root: Path, run_dir: Path, **changes) -> TrainConfig:
    base = TrainConfig(
        data_root=str(data_root),
        run_dir=str(run_dir),
        base_channels=8,
        depth=2,
        image_size=(32, 64),
        epochs=3,
        batch_size=2,
        lr=3e-3,
        num_workers=0,
        num_vis=1,
        log_every=1,
        encoder_weights="",
        device="cpu",
    )
    return replace(base, **changes)


@pytest.fixture
def data(cityscapes_factory) -> Path:
    return cityscapes_factory(splits={"train": 4, "val": 2}, size=(32, 64))


def test_the_view_draws_a_real_run_epoch_by_epoch(data, tmp_path):
    cfg = tiny_config(data, tmp_path / "run", time_budget=10.0)
    shown: list[dict] = []
    view = LiveView.for_config(cfg, show=shown.append)
    history = fit(cfg, on_epoch_end=view).history

    assert len(shown) == 3  # one redraw per epoch
    lines = {line.get_label(): line for ax in view.figure().axes for line in ax.get_lines()}
    assert list(lines["train_loss"].get_ydata()) == pytest.approx([r["train_loss"] for r in history])
    assert list(lines["val_loss"].get_ydata()) == pytest.approx([r["val_loss"] for r in history])
    assert list(lines["miou"].get_xdata()) == [0, 1, 2]
    assert list(lines["miou"].get_ydata()) == pytest.approx([r["miou"] for r in history])

    last, used = history[-1], history[-1]["minutes"]
    status = view.status()
    assert status.startswith("3/3 epochs done | best val mIoU")
    assert f"{used:.1f} min used" in status and f"{10 - used:.1f} min left of the 10 min budget" in status
    assert "1/3 epochs done" in shown[0]["text/plain"] and "the other 2 epochs need ~" in shown[0]["text/plain"]

    page = shown[-1]["text/html"]
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1))
    assert png.startswith(b"\x89PNG") and page.count("<img") == 1  # one figure, redrawn, never appended
    cells = re.findall(r"<td>([^<]*)</td>", page)
    assert cells[:4] == ["2", f"{last['train_loss']:.4g}", f"{last['val_loss']:.4g}", f"{last['miou']:.4g}"]
    assert shown[-1]["text/plain"].splitlines()[0] == status


def test_a_resumed_run_is_drawn_with_its_earlier_epochs(data, tmp_path):
    cfg = tiny_config(data, tmp_path / "run", epochs=2)
    fit(cfg)
    view = LiveView.for_config(replace(cfg, resume=True, epochs=4), show=lambda bundle: None)
    assert sorted(view.rows) == [0, 1] and view.status().startswith("2/4 epochs done")


def test_headless_there_is_no_view_and_the_log_lines_stay(data, tmp_path, capsys):
    cfg = tiny_config(data, tmp_path / "run", epochs=1)
    assert live_view(cfg) is None  # pytest: neither a terminal nor a notebook a person watches
    train(cfg)
    out, err = capsys.readouterr()
    assert "epoch 0 step 1/2 loss" in err and "epoch 0 val mIoU" in err  # today's plain lines
    assert "\r" not in out + err and "epochs done" not in out + err


# ----------------------------------------------------------------------------- torchrun from a notebook

CELL = """
from segkit.config import TrainConfig
from segkit.launch import train
cfg = TrainConfig(data_root={data!r}, run_dir={run!r}, epochs=2, nproc=2, base_channels=8, depth=2,
                  image_size=(32, 64), batch_size=1, num_workers=0, num_vis=1, encoder_weights="", device="cpu")
result = train(cfg)
"""


@pytest.mark.slow
def test_torchrun_from_a_watched_notebook_is_shown_in_place(jupyter_kernel, cityscapes_factory, tmp_path):
    data = cityscapes_factory(splits={"train": 8, "val": 2}, size=(32, 64))
    messages = jupyter_kernel.run(CELL.format(data=str(data), run=str(tmp_path / "run")), allow_stdin=True)
    errors = [m["content"] for m in messages if m["msg_type"] == "error"]
    assert not errors, errors
    outputs = {m["content"]["transient"]["display_id"]: m for m in messages if m["msg_type"] == "display_data"}
    assert len(outputs) == 2  # the live view, and the bar under it: nothing else is drawn
    updates = [m["content"] for m in messages if m["msg_type"] == "update_display_data"]
    views = [u for u in updates if "text/html" in u["data"]]
    bars = [u["data"]["text/plain"] for u in updates if "text/html" not in u["data"]]
    assert [v["data"]["text/plain"].split(" |")[0] for v in views] == ["1/2 epochs done", "2/2 epochs done"]
    assert any(re.match(r"epoch [01]: +\d+%\|", bar) for bar in bars)  # rank 0's bar, redrawn in its place
    stdout, stderr = kernel_streams(messages, "stdout"), kernel_streams(messages, "stderr")
    assert "\r" not in stdout + stderr and "epoch 0:" not in stdout + stderr  # no refresh became a line
    assert stdout.count("val mIoU") == 2 and "val mIoU" not in stderr  # INFO is plain output, rank 0 alone


@pytest.mark.slow
def test_torchrun_from_a_headless_notebook_logs_plain_lines(jupyter_kernel, cityscapes_factory, tmp_path):
    data = cityscapes_factory(splits={"train": 8, "val": 2}, size=(32, 64))
    messages = jupyter_kernel.run(CELL.format(data=str(data), run=str(tmp_path / "run")), allow_stdin=False)
    assert not [m for m in messages if m["msg_type"] in ("display_data", "update_display_data", "error")]
    stdout = kernel_streams(messages, "stdout")
    assert "epoch 0 step 4/4 loss" in stdout and stdout.count("val mIoU") == 2
    assert "\r" not in stdout + kernel_streams(messages, "stderr")
