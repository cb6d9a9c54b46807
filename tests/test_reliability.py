"""Faults survived, with real processes and real signals: kill -9 (mid-epoch and mid-checkpoint-write),
SIGTERM (Kaggle's session end), Ctrl-C (SIGINT to the whole process group, DataLoader workers
included), a loss that really diverges, a disk that fills up mid-run, and secrets that must never
reach any output. See docs/reliability.md for the table of what each test observed.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import conftest
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from segkit.checkpoint import load_checkpoint
from segkit.models import model_from_checkpoint

TINY = [
    "--base-channels",
    "8",
    "--depth",
    "2",
    "--image-size",
    "32",
    "64",
    "--batch-size",
    "2",
    "--lr",
    "3e-3",
    "--num-vis",
    "1",
    "--log-every",
    "1",
]
# Every subprocess runs with these sentinels; test_no_secret_reaches_any_output searches for them.
SECRETS = {
    "NGROK_AUTHTOKEN": "SENTINEL-TOKEN-XYZ",
    "KAGGLE_KEY": "SENTINEL-KEY-XYZ",
    "SEGKIT_DASHBOARD_AUTH": "user:SENTINEL-PASS-XYZ",
}
ENV = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1", "SEGKIT_PROGRESS": "log", **SECRETS}
TIMEOUT = 240  # seconds for any one process; the machine is shared, so generous


# ----------------------------------------------------------------------------- helpers


class Proc:
    """A `python -m segkit ...` process in its own session, stdout/stderr going to files."""

    def __init__(self, args: list[str], logs: Path, preexec_fn: Callable[[], None] | None = None) -> None:
        logs.parent.mkdir(parents=True, exist_ok=True)
        self.out_path, self.err_path = logs.with_suffix(".out"), logs.with_suffix(".err")
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "segkit", *args],
                stdout=out,
                stderr=err,
                env=ENV,
                start_new_session=True,
                preexec_fn=preexec_fn,  # noqa: PLW1509 - it only sets an rlimit and SIG_IGN
            )
        self.pid = self.popen.pid

    @property
    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = TIMEOUT, every: float = 0.05) -> None:
        """Poll `ready()`; fail with the log tail if the process ends first or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.popen.poll() is not None:
                pytest.fail(f"process ended ({self.popen.returncode}) before {what}:\n{self.err[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}:\n{self.err[-3000:]}")
            time.sleep(every)

    def wait_for_log(self, text: str) -> None:
        self.wait_until(lambda: text in self.err, repr(text))

    def finish(self, timeout: float = TIMEOUT) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"process did not exit within {timeout} s:\n{self.err[-3000:]}")

    def kill_leftovers(self) -> None:
        """Kill what is left of the session this test started (by its id), e.g. after a failure."""
        for pid in session_pids(self.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def run(args: list[str], logs: Path, preexec_fn: Callable[[], None] | None = None) -> Proc:
    proc = Proc(args, logs, preexec_fn)
    proc.finish()
    return proc


def session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes of the session `sid` (our process and its DataLoader workers)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def train_args(data: Path, run_dir: Path, *extra: str, workers: int = 0) -> list[str]:
    return ["train", "--data-root", str(data), "--run-dir", str(run_dir), *TINY, "--num-workers", str(workers), *extra]


def history_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def history_epochs(run_dir: Path) -> list[int]:
    return [int(r["epoch"]) for r in history_rows(run_dir)]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def no_traceback(proc: Proc) -> None:
    assert "Traceback" not in proc.err, proc.err[-3000:]


def all_finite(ckpt: dict) -> bool:
    return all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point())


@pytest.fixture(scope="module")
def data24(tmp_path_factory) -> Path:
    """24 train images -> 12 steps per epoch: long enough to signal mid-epoch."""
    return conftest.write_cityscapes(tmp_path_factory.mktemp("d24"), splits={"train": 24, "val": 2}, size=(32, 64))


@pytest.fixture(scope="module")
def data2(tmp_path_factory) -> Path:
    """2 train images -> 1 step per epoch."""
    return conftest.write_cityscapes(tmp_path_factory.mktemp("d2"), splits={"train": 2, "val": 1}, size=(32, 64))


# ----------------------------------------------------------------------------- SIGTERM + resume


@pytest.fixture(scope="module")
def sigterm_run(data24, tmp_path_factory) -> dict:
    """SIGTERM at step 3 of the only epoch, then the same command plus --resume."""
    base = tmp_path_factory.mktemp("sigterm")
    run_dir = base / "run"
    args = train_args(data24, run_dir, "--epochs", "1")
    proc = Proc(args, base / "first")
    try:
        proc.wait_for_log("epoch 0 step 3/12")
        proc.popen.send_signal(signal.SIGTERM)
        code = proc.finish()
    finally:
        proc.kill_leftovers()
    saved = load_checkpoint(run_dir / "last.pth")
    resumed = run(args + ["--resume"], base / "resumed")
    return {"run_dir": run_dir, "first": proc, "code": code, "saved": saved, "resumed": resumed, "args": args}


def test_sigterm_saves_a_checkpoint_and_exits_cleanly_with_a_resume_hint(sigterm_run):
    first = sigterm_run["first"]
    assert sigterm_run["code"] == 0, first.err[-3000:]  # a clean stop, like the time budget
    no_traceback(first)
    assert "SIGTERM received" in first.err and "--resume" in first.err
    state = sigterm_run["saved"]["state"]
    # Saved mid-epoch: after the step that was running when the signal came, not at an epoch end.
    assert state["epoch"] == 0 and 3 <= state["step_in_epoch"] < 12, state
    assert all_finite(sigterm_run["saved"])


def test_resume_after_sigterm_continues_from_that_step(sigterm_run):
    resumed, run_dir = sigterm_run["resumed"], sigterm_run["run_dir"]
    k = sigterm_run["saved"]["state"]["step_in_epoch"]
    assert resumed.popen.returncode == 0, resumed.err[-3000:]
    no_traceback(resumed)
    assert f"at epoch 0, step {k} of the epoch" in resumed.err
    assert f"epoch 0 step {12 - k}/{12 - k}" in resumed.err  # only the remaining steps were run
    rows = history_rows(run_dir)
    assert [int(r["epoch"]) for r in rows] == [0] and int(rows[0]["steps"]) == 12
    assert rows[0]["miou"] != ""  # the completed epoch was evaluated
    assert load_checkpoint(run_dir / "best_model.pth")["epoch"] == 0


def test_the_printed_resume_hint_keeps_the_runs_data_and_epochs(sigterm_run):
    from segkit.cli import build_parser, config_from_args
    from segkit.config import TrainConfig
    from segkit.rundir import merge_resumed_config

    hint = re.search(r"resume with: segkit (train .*)", sigterm_run["first"].err)
    assert hint, sigterm_run["first"].err[-2000:]
    args = build_parser().parse_args(hint.group(1).split())
    cfg, _ = config_from_args(TrainConfig, args)
    saved = sigterm_run["saved"]["config"]
    merged = merge_resumed_config(cfg, saved)
    assert (merged.data_root, merged.epochs, merged.num_workers) == (
        saved["data_root"],
        saved["epochs"],
        saved["num_workers"],
    )


def test_no_secret_reaches_any_output(sigterm_run):
    """Tokens in the environment never reach stdout, stderr or any file of the run (tfevents included)."""
    run_dir = sigterm_run["run_dir"]
    outputs = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert list(run_dir.glob("tb/events.out.tfevents.*")) and run_dir / "best_model.pth" in outputs
    for proc in (sigterm_run["first"], sigterm_run["resumed"]):
        outputs[proc.out_path] = proc.out_path.read_bytes()
        outputs[proc.err_path] = proc.err_path.read_bytes()
    for value in SECRETS.values():
        secret = value.split(":")[-1].encode()
        leaks = [str(p) for p, content in outputs.items() if secret in content or secret.hex().encode() in content]
        assert not leaks, f"{secret!r} found in {leaks}"


# ----------------------------------------------------------------------------- Ctrl-C


@pytest.fixture(scope="module")
def ctrl_c_run(data24, tmp_path_factory) -> dict:
    """SIGINT to the whole process group, as a terminal's Ctrl-C does: main process and 2 workers."""
    base = tmp_path_factory.mktemp("sigint")
    run_dir = base / "run"
    proc = Proc(train_args(data24, run_dir, "--epochs", "1", workers=2), base / "first")
    try:
        proc.wait_for_log("epoch 0 step 3/12")
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.finish()
        time.sleep(0.5)
        leftovers = session_pids(proc.pid)
    finally:
        proc.kill_leftovers()
    return {"run_dir": run_dir, "proc": proc, "code": code, "leftovers": leftovers}


def test_ctrl_c_with_workers_saves_a_checkpoint_and_exits_cleanly(ctrl_c_run):
    proc = ctrl_c_run["proc"]
    assert ctrl_c_run["code"] == 0, proc.err[-3000:]
    no_traceback(proc)
    assert "SIGINT received" in proc.err and "--resume" in proc.err
    state = load_checkpoint(ctrl_c_run["run_dir"] / "last.pth")["state"]
    assert state["epoch"] == 0 and 3 <= state["step_in_epoch"] < 12, state
    assert ctrl_c_run["leftovers"] == []  # no orphaned DataLoader workers


def test_ctrl_c_is_announced_once(ctrl_c_run):
    assert ctrl_c_run["proc"].err.count("SIGINT received") == 1


# ----------------------------------------------------------------------------- kill -9 mid-epoch


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_has_every_epoch_once(data24, tmp_path):
    run_dir = tmp_path / "run"
    args = train_args(data24, run_dir, "--epochs", "2", workers=2)
    proc = Proc(args, tmp_path / "first")
    try:
        proc.wait_for_log("epoch 1 step 3/12")  # epoch 0 is checkpointed; epoch 1 is running
        proc.popen.send_signal(signal.SIGKILL)
        assert proc.finish() == -signal.SIGKILL
        deadline = time.monotonic() + 20  # workers notice their parent died (watchdog: every 5 s)
        while session_pids(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert session_pids(proc.pid) == [], "DataLoader workers outlived the killed process"
    finally:
        proc.kill_leftovers()
    state = load_checkpoint(run_dir / "last.pth")["state"]
    assert (state["epoch"], state["step_in_epoch"]) == (1, 0)  # lost: only the steps since the checkpoint
    resumed = run(args + ["--resume"], tmp_path / "resumed")
    assert resumed.popen.returncode == 0, resumed.err[-3000:]
    no_traceback(resumed)
    assert "at epoch 1, step 0 of the epoch" in resumed.err
    assert history_epochs(run_dir) == [0, 1]
    final = load_checkpoint(run_dir / "last.pth")
    assert final["state"]["global_step"] == 24 and final["state"]["epoch"] == 2


# ----------------------------------------------------------------------------- kill -9 during a checkpoint write


@pytest.fixture(scope="module")
def killed_while_saving(data2, tmp_path_factory) -> dict:
    """A 7.8M-parameter U-Net (last.pth ~93 MB with Adam state) killed while last.pth is being written."""
    base = tmp_path_factory.mktemp("killsave")
    run_dir = base / "run"
    args = [
        "train",
        "--data-root",
        str(data2),
        "--run-dir",
        str(run_dir),
        "--base-channels",
        "32",
        "--depth",
        "4",
        "--image-size",
        "32",
        "64",
        "--batch-size",
        "2",
        "--num-workers",
        "0",
        "--epochs",
        "3",
        "--num-vis",
        "1",
    ]
    proc = Proc(args, base / "first")
    temps: list[Path] = []
    try:
        proc.wait_until(lambda: (run_dir / "last.pth").exists(), "the first last.pth")
        before = {"last": sha256(run_dir / "last.pth"), "best": sha256(run_dir / "best_model.pth")}
        proc.wait_until(
            lambda: bool(temps.extend(run_dir.glob(".last.pth.*.tmp")) or temps), "a last.pth write", every=0.002
        )
        proc.popen.send_signal(signal.SIGKILL)
        proc.finish()
    finally:
        proc.kill_leftovers()
    return {"run_dir": run_dir, "args": args, "temps": temps, "before": before, "base": base}


@pytest.mark.slow
def test_kill_9_during_checkpoint_write_keeps_the_previous_checkpoints(killed_while_saving):
    run_dir, before = killed_while_saving["run_dir"], killed_while_saving["before"]
    assert all(t.exists() for t in killed_while_saving["temps"]), "the kill missed the write window"
    last, best = load_checkpoint(run_dir / "last.pth"), load_checkpoint(run_dir / "best_model.pth")
    # last.pth is whole: the one from before the write (or, had the rename won the race, the new one).
    assert last["state"]["epoch"] in (1, 2) and all_finite(last) and all_finite(best)
    if sha256(run_dir / "last.pth") == before["last"]:
        assert last["state"]["epoch"] == 1
    model_from_checkpoint(best)  # rebuilds and loads strictly
    resumed = run(killed_while_saving["args"] + ["--resume"], killed_while_saving["base"] / "resumed")
    assert resumed.popen.returncode == 0, resumed.err[-3000:]
    no_traceback(resumed)
    assert history_epochs(run_dir) == [0, 1, 2]
    assert load_checkpoint(run_dir / "last.pth")["state"]["epoch"] == 3


@pytest.mark.slow
def test_stray_checkpoint_temp_files_are_cleaned_on_resume(killed_while_saving):
    run_dir = killed_while_saving["run_dir"]
    if not (run_dir / "history.csv").exists() or history_epochs(run_dir) != [0, 1, 2]:
        run(killed_while_saving["args"] + ["--resume"], killed_while_saving["base"] / "resumed2")
    assert sorted(p.name for p in run_dir.glob(".*.tmp")) == []


# ----------------------------------------------------------------------------- a loss that diverges


@pytest.fixture(scope="module")
def diverged(data2, tmp_path_factory) -> dict:
    """SGD at lr 1e30: the first loss is finite, the update blows the weights up (finite but ~1e29)."""
    base = tmp_path_factory.mktemp("nan")
    run_dir = base / "run"
    args = [
        "train",
        "--data-root",
        str(data2),
        "--run-dir",
        str(run_dir),
        *TINY,
        "--num-workers",
        "0",
        "--epochs",
        "3",
        "--lr",
        "1e30",
        "--optimizer",
        "sgd",
        "--scheduler",
        "none",
    ]
    return {"run_dir": run_dir, "proc": run(args, base / "first"), "data": data2}


def test_diverging_loss_stops_with_lr_step_and_hints(diverged):
    proc, run_dir = diverged["proc"], diverged["run_dir"]
    assert proc.popen.returncode == 2, proc.err[-3000:]
    no_traceback(proc)
    message = proc.err.split("segkit train: error:")[-1]
    for expected in ("blew up", "epoch 0, step 1", "lr 1.00e+30", "--lr", "--grad-clip", "--resume"):
        assert expected in message, (expected, message)
    # The very first update diverged: there was no good state, so nothing was saved at all.
    assert not (run_dir / "last.pth").exists() and not (run_dir / "best_model.pth").exists()
    assert not (run_dir / "history.csv").exists()


def test_the_checkpoints_kept_after_divergence_still_predict(data6, tmp_path):
    """A good epoch first, then divergence: the checkpoint kept is the good one and it predicts."""
    from segkit.config import TrainConfig
    from segkit.engine import TrainingDiverged, fit

    cfg = TrainConfig(
        data_root=str(data6),
        run_dir=str(tmp_path / "run"),
        base_channels=8,
        depth=2,
        image_size=(32, 64),
        batch_size=2,
        num_workers=0,
        epochs=3,
        lr=3e-3,
        num_vis=1,
    )

    hooks = []

    def blow_up(row):  # after epoch 0 is saved, an absurd learning rate takes over
        if row.epoch == 0:

            def huge_lr(optimizer, args, kwargs):
                for group in optimizer.param_groups:
                    group["lr"] = 1e30

            hooks.append(register_optimizer_step_pre_hook(huge_lr))

    try:
        with pytest.raises(TrainingDiverged, match="epoch 1"):
            fit(cfg, on_epoch_end=blow_up)
    finally:
        for hook in hooks:
            hook.remove()
    image = min((data6 / "leftImg8bit" / "val").rglob("*.png"))
    from segkit.data.cityscapes import read_image
    from segkit.data.transforms import eval_transform

    x = eval_transform((32, 64))(image=read_image(image))["image"][None]  # (1, 3, 32, 64)
    for name in ("last.pth", "best_model.pth"):
        ckpt = load_checkpoint(tmp_path / "run" / name)
        assert ckpt.get("state", {"epoch": 1})["epoch"] == 1
        model = model_from_checkpoint(ckpt)
        with torch.no_grad():
            assert torch.isfinite(model(x)).all(), f"{name} gives non-finite logits"


# ----------------------------------------------------------------------------- disk full / unwritable


def file_size_limit(limit: int) -> Callable[[], None]:
    """RLIMIT_FSIZE in the child: writes past `limit` bytes fail with EFBIG, as on a full disk.

    Unlike chmod, this also stops root (tests may run as root, where a read-only run dir is writable).
    """

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process instead of EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.fixture(scope="module")
def data6(tmp_path_factory) -> Path:
    return conftest.write_cityscapes(tmp_path_factory.mktemp("d6"), splits={"train": 6, "val": 2}, size=(32, 64))


def test_disk_full_mid_run_gives_a_clear_error_and_keeps_the_checkpoint(data6, tmp_path):
    from segkit.config import TrainConfig
    from segkit.engine import fit

    run_dir = tmp_path / "run"
    # The first epoch in this process (a setup step, not under test): saves a subprocess start.
    fit(
        TrainConfig(
            data_root=str(data6),
            run_dir=str(run_dir),
            base_channels=8,
            depth=2,
            image_size=(32, 64),
            batch_size=2,
            lr=3e-3,
            num_vis=1,
            log_every=1,
            num_workers=0,
            epochs=1,
        )
    )
    size, digest = (run_dir / "last.pth").stat().st_size, sha256(run_dir / "last.pth")
    # Epoch 1's last.pth is a few hundred bytes larger (one more history row): that write fails.
    args = train_args(data6, run_dir, "--epochs", "3", "--resume")
    proc = run(args, tmp_path / "full", preexec_fn=file_size_limit(size + 16))
    assert proc.popen.returncode == 2, proc.err[-3000:]
    no_traceback(proc)
    message = proc.err.split("segkit train: error:")[-1]
    assert "could not write" in message and "last.pth" in message and "--resume" in message, message
    assert sha256(run_dir / "last.pth") == digest  # the previous checkpoint is intact
    assert load_checkpoint(run_dir / "last.pth")["state"]["epoch"] == 1
    assert list(run_dir.glob(".*.tmp")) == []  # the failed write cleaned up after itself
    assert history_epochs(run_dir) == [0]  # history.csv still matches last.pth


def test_unwritable_run_dir_at_start_gives_a_clear_error(data6, tmp_path):
    proc = run(
        train_args(data6, tmp_path / "run", "--epochs", "1"), tmp_path / "full", preexec_fn=file_size_limit(1000)
    )
    assert proc.popen.returncode == 2, proc.err[-3000:]
    no_traceback(proc)
    assert "config.json" in proc.err and list((tmp_path / "run").glob(".*.tmp")) == []


# ----------------------------------------------------------------------------- atomic writes


@pytest.fixture
def writes_below() -> Callable[[Path], list[tuple[str, str]]]:
    """Every file opened for writing below a folder while the test runs: (path, mode or flags).

    A Python audit hook sees every `open` (builtins and `os.open`, so also mkstemp's temporary
    files and numpy's memory maps); hooks cannot be removed, so it goes quiet after the test.
    """
    seen: list[tuple[str, str]] = []
    active = [True]
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def hook(event: str, args: tuple) -> None:
        if not active[0] or event != "open" or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & write_flags)
        if writing:
            seen.append((os.fsdecode(path), str(mode or flags)))

    sys.addaudithook(hook)

    def below(folder: Path) -> list[tuple[str, str]]:
        root = str(folder.resolve())
        return [(p, m) for p, m in seen if str(Path(p).resolve()).startswith(root + os.sep)]

    yield below
    active[0] = False


def test_every_run_directory_file_is_written_to_a_temporary_name_then_renamed(data6, tmp_path, writes_below):
    """docs/architecture.md: nothing segkit writes into a run directory is ever half a file."""
    import pandas as pd

    from segkit.config import EvalConfig, TrainConfig
    from segkit.engine import fit
    from segkit.evaluation import run_evaluation
    from segkit.viz import plot_curves, save_figure

    run_dir = tmp_path / "run"
    # class weights (class_counts.json), the cache (cache/), TensorBoard, both checkpoints, metrics.json.
    fit(
        TrainConfig(
            data_root=str(data6),
            run_dir=str(run_dir),
            base_channels=8,
            depth=2,
            image_size=(32, 64),
            batch_size=2,
            lr=3e-3,
            num_vis=1,
            log_every=1,
            num_workers=0,
            epochs=2,
            class_weights="median",
            cache="build",
            eval_resolution="train",
        )
    )
    run_evaluation(EvalConfig(run_dir=str(run_dir), max_images=1))  # eval_val_whole_label.json
    save_figure(plot_curves(pd.read_csv(run_dir / "history.csv")), run_dir / "figures" / "curves.png")
    root = run_dir.resolve()
    opened = {Path(p).resolve().relative_to(root) for p, _ in writes_below(run_dir)}
    final = {p.relative_to(root) for p in root.rglob("*") if p.is_file()}
    exempt = {
        Path("train.lock"),
        Path("cache") / "build.lock",
    }  # locks, never content; tb/: TensorBoard's appending writer
    files = {f for f in final - exempt if f.parts[0] != "tb"}
    assert {
        "config.json",
        "last.pth",
        "best_model.pth",
        "history.csv",
        "metrics.json",
        "class_counts.json",
        "eval_val_whole_label.json",
    } <= {str(f) for f in files} and any(f.parts[0] == "cache" for f in files)
    _assert_each_came_from_a_temporary_file(files, opened)


def test_exports_videos_synthetic_manifests_and_chained_runs_are_written_to_a_temporary_name_then_renamed(
    tiny_run, tmp_path, writes_below, monkeypatch
):
    """The writers that need a path (torch.onnx.export, PyAV's container, shutil.copy2) and the synthetic
    set's manifest go through `files.AtomicFile` / `write_json` too (the cache's memory maps: the test above)."""
    import cv2
    import numpy as np

    from segkit import video
    from segkit.data import generate_synthetic
    from segkit.export import export_onnx
    from segkit.kaggle.session import prepare_chained_resume
    from segkit.kaggle_env import KAGGLE_INPUT_ENV

    pytest.importorskip("onnx")
    pytest.importorskip("av")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"f{i}.png"), np.full((32, 64, 3), 40 * i, np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    export_onnx(tiny_run / "best_model.pth", out / "model.onnx")
    video.predict_clip(video.open_clip(frames, fps=5), lambda image: np.zeros(image.shape[:2], np.uint8), out)
    generate_synthetic(out / "synth", num_train=1, num_val=1, image_size=(32, 64))
    monkeypatch.setenv(KAGGLE_INPUT_ENV, str(tiny_run.parent))  # tiny_run as a previous kernel's output
    assert prepare_chained_resume(out / "chained" / tiny_run.name)

    root = out.resolve()
    opened = {Path(p).resolve().relative_to(root) for p, _ in writes_below(out)}
    final = {p.relative_to(root) for p in root.rglob("*") if p.is_file()}
    written_by_cv2_or_tb = {f for f in final if f.suffix == ".png" or "tb" in f.parts}  # C writers: not audited
    files = final - written_by_cv2_or_tb
    assert {
        "model.onnx",
        "frames_overlay.mp4",
        "synth/synthetic.json",
        "chained/run/last.pth",
        "chained/run/config.json",
    } <= {str(f) for f in files}, sorted(map(str, files))
    _assert_each_came_from_a_temporary_file(files, opened)


def test_atomic_file_replaces_only_when_complete_with_the_folders_usual_permissions(tmp_path):
    from segkit.errors import SegkitError
    from segkit.files import AtomicFile

    target = tmp_path / "model.onnx"
    target.write_text("previous")
    with pytest.raises(RuntimeError, match="writer died"), AtomicFile(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer died")
    with (
        pytest.raises(SegkitError, match=r"could not write .*model.onnx: .*free disk space"),
        AtomicFile(target) as tmp,
    ):
        raise OSError(28, "No space left on device")
    assert target.read_text() == "previous" and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]

    old = os.umask(0o027)
    try:
        with AtomicFile(tmp_path / "new.onnx") as tmp:
            tmp.write_text("whole")
    finally:
        os.umask(old)
    assert (tmp_path / "new.onnx").read_text() == "whole"
    assert (tmp_path / "new.onnx").stat().st_mode & 0o777 == 0o640  # as open() would make it, not mkstemp's 0600


def _assert_each_came_from_a_temporary_file(files: set[Path], opened: set[Path]) -> None:
    """No final file was opened for writing under its own name; each has a `.<name>.*` temporary file."""
    direct = sorted(str(f) for f in files & opened)
    assert direct == [], f"opened for writing under their final name, not a temporary one: {direct}"
    temporary = {f for f in opened if f.name.startswith(".")}
    unexplained = sorted(
        str(f) for f in files if not any(t.parent == f.parent and t.name.startswith(f".{f.name}.") for t in temporary)
    )
    assert unexplained == [], f"final files no temporary file became: {unexplained}"
