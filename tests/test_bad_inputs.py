"""Bad inputs, given to the CLI as a user would: each gets a message saying what was expected, what
was found and the fix, a non-zero exit, no traceback, and nothing the user made is changed.

Most cases call `segkit.cli.main` in this process (an exception escaping it is the traceback a user
would see, and is reported as such); the DataLoader-worker case runs a real `python -m segkit`.
See docs/reliability.md for the table of what each test observed.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import conftest
import numpy as np
import pytest
import torch
from PIL import Image

SEGKIT = Path(__file__).resolve().parents[1] / "segkit"
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
    "--num-workers",
    "0",
    "--epochs",
    "1",
    "--lr",
    "3e-3",
    "--num-vis",
    "1",
]


# ----------------------------------------------------------------------------- helpers


@dataclass
class Result:
    code: int | str
    out: str
    err: str

    @property
    def message(self) -> str:
        """The error line(s) the CLI printed."""
        return self.err.split(": error: ", 1)[-1]

    def refused(self) -> Result:
        """Assert the shape of a refusal: exit 2, one message, no traceback."""
        assert self.code == 2, (self.code, self.err[-3000:])
        assert "Traceback" not in self.err and ": error: " in self.err, self.err[-3000:]
        return self


def cli(*argv: str | Path) -> Result:
    """`segkit ARGV` in this process; an escaping exception becomes the traceback a user would see."""
    from segkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse
            code = e.code
        except Exception:  # noqa: BLE001 - exactly what a user would see as a raw traceback
            code = "uncaught"
            traceback.print_exc(file=err)
    return Result(code, out.getvalue(), err.getvalue())


def train(data_root: Path, run_dir: Path, *extra: str) -> Result:
    return cli("train", "--data-root", data_root, "--run-dir", run_dir, *TINY, *extra)


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `root`: proof that nothing was changed."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def first(root: Path, pattern: str) -> Path:
    return min(root.rglob(pattern))


@pytest.fixture
def data(cityscapes_factory):
    def make(**kw) -> Path:
        kw.setdefault("splits", {"train": 4, "val": 2})
        kw.setdefault("size", (32, 64))
        return cityscapes_factory(**kw)

    return make


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """One tiny real training run: its data, run dir and best_model.pth."""
    root = conftest.write_cityscapes(tmp_path_factory.mktemp("data"), splits={"train": 2, "val": 1}, size=(32, 64))
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    assert train(root, run_dir).code == 0
    image = first(root / "leftImg8bit" / "val", "*.png")
    return {"root": root, "run_dir": run_dir, "best": run_dir / "best_model.pth", "image": image}


# ----------------------------------------------------------------------------- data


def test_missing_data_root(tmp_path):
    r = train(tmp_path / "nowhere", tmp_path / "run").refused()
    assert str(tmp_path / "nowhere") in r.message and "does not exist" in r.message
    assert "leftImg8bit/{train,val}/<city>" in r.message and "Fix:" in r.message


def test_empty_data_root(tmp_path):
    (tmp_path / "empty").mkdir()
    r = train(tmp_path / "empty", tmp_path / "run").refused()
    assert str(tmp_path / "empty") in r.message and "expected leftImg8bit/ and gtFine/" in r.message
    assert "Fix:" in r.message


def test_images_without_labels_are_named(data, tmp_path):
    root = data()
    first(root / "gtFine" / "train", "*.png").unlink()
    before = snapshot(root)
    r = train(root, tmp_path / "run").refused()
    assert "1 of 4 images have no label file" in r.message and "_gtFine_labelIds.png" in r.message
    assert "aachen_000000_000019_leftImg8bit.png" in r.message and "Fix:" in r.message
    assert snapshot(root) == before


def test_labels_without_images_are_named(data, tmp_path):
    root = data()
    first(root / "leftImg8bit" / "train", "*.png").unlink()
    before = snapshot(root)
    r = train(root, tmp_path / "run").refused()
    assert "label files have no image" in r.message and "aachen_000000_000019_gtFine_labelIds.png" in r.message
    assert "Fix:" in r.message and snapshot(root) == before


@pytest.mark.parametrize("which", ["leftImg8bit/train", "gtFine/val"])
def test_truncated_png_is_named(data, tmp_path, which):
    root = data()
    bad = first(root / which, "*.png")
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    before = snapshot(root)
    r = train(root, tmp_path / "run").refused()
    assert str(bad) in r.message and "corrupt or truncated" in r.message and "Fix:" in r.message
    assert snapshot(root) == before


def test_data_error_in_a_dataloader_worker_is_still_one_clear_message(data, tmp_path):
    """A real process with 2 workers: the DataError is raised in a worker and re-raised by the DataLoader."""
    root = data()
    bad = first(root / "leftImg8bit" / "train", "*.png")
    bad.write_bytes(bad.read_bytes()[:200])
    args = ["train", "--data-root", str(root), "--run-dir", str(tmp_path / "run"), *TINY, "--num-workers", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "segkit", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "worker" not in proc.stderr, proc.stderr[-3000:]
    assert f"segkit train: error: cannot decode image file {bad}" in proc.stderr


def test_image_label_size_mismatch(data, tmp_path):
    root = data()
    label = first(root / "gtFine" / "train", "*_labelIds.png")
    Image.fromarray(np.full((16, 32), 7, np.uint8)).save(label)
    before = snapshot(root)
    r = train(root, tmp_path / "run").refused()
    assert "sizes differ" in r.message and "32x64" in r.message and "16x32" in r.message and str(label) in r.message
    assert snapshot(root) == before


def test_colour_masks_given_as_labels(data, tmp_path):
    """The seed's original mistake: *_gtFine_color.png content saved as *_gtFine_labelIds.png."""
    root = data(color=True)
    for colour in root.rglob("*_gtFine_color.png"):
        shutil.copy(colour, str(colour).replace("_color.png", "_labelIds.png"))
    before = snapshot(root)
    r = train(root, tmp_path / "run").refused()
    assert "3 channels" in r.message and "colour mask" in r.message and "_gtFine_labelIds.png" in r.message
    assert snapshot(root) == before


def test_trainid_files_named_labelids(data, tmp_path):
    root = data(train_ids=True)
    for tid in root.rglob("*_gtFine_labelTrainIds.png"):
        tid.replace(str(tid).replace("_labelTrainIds.png", "_labelIds.png"))
    before = snapshot(root)
    r = train(root, tmp_path / "run").refused()
    assert "looks like a trainId file" in r.message and "255" in r.message and "labelTrainIds.png" in r.message
    assert snapshot(root) == before


def test_label_value_outside_the_table(data, tmp_path):
    root = data()
    label = first(root / "gtFine" / "train", "*_labelIds.png")
    values = np.array(Image.open(label))
    values[:4, :4] = 40
    Image.fromarray(values).save(label)
    r = train(root, tmp_path / "run").refused()
    assert str(label) in r.message and "(40;" in r.message and "0..33" in r.message


def test_label_value_outside_the_table_is_not_called_a_trainid_file(data, tmp_path):
    root = data()
    label = first(root / "gtFine" / "train", "*_labelIds.png")
    values = np.array(Image.open(label))
    values[:4, :4] = 40
    Image.fromarray(values).save(label)
    assert "trainId file" not in train(root, tmp_path / "run").refused().message


def test_trainid_value_outside_the_table(data, tmp_path):
    root = data(train_ids=True)
    label = first(root / "gtFine" / "train", "*_labelTrainIds.png")
    values = np.array(Image.open(label))
    values[:4, :4] = 30
    Image.fromarray(values).save(label)
    r = train(root, tmp_path / "run").refused()
    assert str(label) in r.message and "30" in r.message and "0..18" in r.message and "255" in r.message


# ----------------------------------------------------------------------------- one label reader


def misnamed_labels(data, kind: str) -> Path:
    """A data set whose *_gtFine_labelIds.png files hold real trainId annotations or colour masks."""
    root = data(train_ids=kind == "trainIds", color=kind == "colour")
    suffix = {"trainIds": "_gtFine_labelTrainIds.png", "colour": "_gtFine_color.png"}[kind]
    for other in root.rglob(f"*{suffix}"):
        if kind == "trainIds":  # as in real Cityscapes: the ego vehicle is void (255) in every frame
            values = np.array(Image.open(other))
            values[-4:] = 255
            Image.fromarray(values).save(other)
        other.replace(str(other).replace(suffix, "_gtFine_labelIds.png"))
    return root


def predictions_for(root: Path, out: Path) -> Path:
    """One well-formed labelIds prediction per val frame, so that only the ground truth is wrong."""
    out.mkdir(parents=True)
    for label in (root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"):
        width, height = Image.open(label).size
        pred = np.full((height, width), 7, np.uint8)  # road
        Image.fromarray(pred).save(out / label.name.replace("_gtFine_labelIds", "_pred"))
    return out


# Every command that reads label files, as a user runs it; all go through read_label.
LABEL_READERS = {
    "train": lambda root, tmp: train(root, tmp / "run"),
    "statistics": lambda root, tmp: train(root, tmp / "run", "--class-weights", "inverse"),
    "cache": lambda root, tmp: cli(
        "prepare", "--data-root", root, "--image-size", "32", "64", "--splits", "val", "--out", tmp / "cache"
    ),
    "scoring": lambda root, tmp: cli(
        "evaluate", "--predictions", predictions_for(root, tmp / "pred"), "--data-root", root, "--split", "val"
    ),
}
MISNAMED_MESSAGES = {
    "trainIds": "label file <file> holds values labelIds never take (255; labelIds are 0..33): it looks "
    "like a trainId file (0..18 and 255); rename it *_gtFine_labelTrainIds.png or regenerate labelIds.",
    "colour": "label file <file> has 3 channels: it looks like a colour mask (*_gtFine_color.png); segkit "
    "needs *_gtFine_labelIds.png (one channel, values 0..33). Fix: use the labelIds files from "
    "gtFine_trainvaltest.zip.",
}


@pytest.mark.parametrize("kind", list(MISNAMED_MESSAGES))
@pytest.mark.parametrize("command", list(LABEL_READERS))
def test_misnamed_label_files_get_the_same_message_from_every_command(data, tmp_path, command, kind):
    root = misnamed_labels(data, kind)
    before = snapshot(root)
    r = LABEL_READERS[command](root, tmp_path).refused()
    bad = re.search(r"label file (\S+_gtFine_labelIds\.png)", r.message)
    assert bad and Path(bad[1]).is_relative_to(root), r.message
    assert r.message.strip().replace(bad[1], "<file>") == MISNAMED_MESSAGES[kind]
    assert snapshot(root) == before


# ----------------------------------------------------------------------------- checkpoints


def mismatched(trained: dict, path: Path, **model_kw) -> Path:
    """segkit's own format and model_spec, but weights from another model."""
    from segkit.models import create_model

    ckpt = torch.load(trained["best"], map_location="cpu", weights_only=True)
    num_classes = model_kw.pop("num_classes", 19)
    ckpt["model"] = create_model("unet", num_classes, **model_kw).state_dict()
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize(
    "model_kw, expected",
    [
        ({"num_classes": 5, "base_channels": 8, "depth": 2}, "(5, 8, 1, 1) in checkpoint vs (19, 8, 1, 1) in model"),
        ({"base_channels": 16, "depth": 2}, "(16, 3, 3, 3) in checkpoint vs (8, 3, 3, 3) in model"),
        ({"base_channels": 8, "depth": 3}, "unexpected keys"),
    ],
    ids=["classes", "width", "depth"],
)
def test_checkpoint_from_another_model(trained, tmp_path, command, model_kw, expected):
    ckpt = mismatched(trained, tmp_path / "other.pth", **model_kw)
    before = snapshot(tmp_path)
    if command == "predict":
        r = cli("predict", "--checkpoint", ckpt, "--img", trained["image"], "--output", tmp_path / "out").refused()
    else:
        r = cli(
            "evaluate", "--checkpoint", ckpt, "--data-root", trained["root"], "--output", tmp_path / "m.json"
        ).refused()
    assert "does not match the model" in r.message and "different architecture or number of classes" in r.message
    assert expected in r.message
    assert snapshot(tmp_path) == before  # nothing written, nothing changed


def not_a_checkpoint(kind: str, trained: dict, tmp_path: Path) -> Path:
    path = tmp_path / f"{kind}.pth"
    good = trained["best"].read_bytes()
    if kind == "png":
        path = trained["image"]
    elif kind == "text":
        path.write_text("epochs: 20\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "state_dict":
        torch.save(torch.load(trained["best"], weights_only=True)["model"], path)
    else:  # truncated-N: the first N bytes of a real checkpoint (N < 0: all but the last -N)
        path.write_bytes(good[: int(kind.split("-", 1)[1])])
    return path


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("png", "is not a checkpoint"),
        ("text", "is not a checkpoint"),
        ("empty", "is not a checkpoint"),
        ("state_dict", "found a bare state_dict"),
        ("truncated-1000", "truncated, corrupt"),
        ("truncated--100", "truncated, corrupt"),
        pytest.param("truncated-5000", "truncated, corrupt"),
    ],
)
def test_file_that_is_not_a_checkpoint(trained, tmp_path, kind, expected):
    path = not_a_checkpoint(kind, trained, tmp_path)
    r = cli("predict", "--checkpoint", path, "--img", trained["image"], "--output", tmp_path / "out").refused()
    assert str(path) in r.message and expected in r.message and "best_model.pth" in r.message


class Exploit:
    """Unpickling this runs `touch MARKER`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"format": "segkit-checkpoint", "model": {"w": Exploit(marker)}}, path)
    return path


def entry_point(how: str, evil: Path, trained: dict, tmp_path: Path) -> Result:
    """Give the malicious file to segkit the way a user could."""
    if how == "predict":
        return cli("predict", "--checkpoint", evil, "--img", trained["image"], "--output", tmp_path / "out")
    if how == "evaluate":
        return cli("evaluate", "--checkpoint", evil, "--data-root", trained["root"], "--output", tmp_path / "m.json")
    if how == "resume":
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        shutil.copy(evil, run_dir / "last.pth")
        return train(trained["root"], run_dir, "--resume")
    return train(trained["root"], tmp_path / "run", "--encoder", "resnet18", "--encoder-weights", str(evil))


@pytest.mark.parametrize("how", ["predict", "evaluate", "resume", "encoder_weights"])
def test_checkpoint_whose_pickle_would_run_code_is_refused(trained, tmp_path, how):
    marker = tmp_path / "MARKER"
    evil = malicious_checkpoint(tmp_path / "evil.pth", marker)
    r = entry_point(how, evil, trained, tmp_path).refused()
    assert ("last.pth" if how == "resume" else evil.name) in r.message
    assert not marker.exists(), "loading the checkpoint executed code"
    torch.load(evil, weights_only=False)  # proof that the file really is an exploit (only here, on purpose)
    assert marker.exists()


@pytest.mark.parametrize("how", ["predict", "encoder_weights"])
def test_refusal_names_the_blocked_code_and_does_not_suggest_weights_only_false(trained, tmp_path, how):
    evil = malicious_checkpoint(tmp_path / "evil.pth", tmp_path / "MARKER")
    message = entry_point(how, evil, trained, tmp_path).refused().message
    assert "weights_only` set to `False" not in message and "weights_only=False" not in message
    assert "system" in message


def test_every_torch_load_in_segkit_uses_weights_only_true():
    """A grep, by syntax tree: every torch.load(...) call in the package passes weights_only=True."""
    calls, offenders = 0, []
    for path in sorted(SEGKIT.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _is_torch_load(node.func):
                calls += 1
                kw = {k.arg: k.value for k in node.keywords}
                ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                if not ok:
                    offenders.append(f"{path.relative_to(SEGKIT.parent)}:{node.lineno}")
        text = path.read_text()
        for unsafe in ("pickle.load(", "pickle.loads(", "weights_only=False", "dill.load"):
            if unsafe in text:
                offenders.append(f"{path.relative_to(SEGKIT.parent)}: {unsafe}")
    assert calls >= 1 and offenders == []


def _is_torch_load(func: ast.expr) -> bool:
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "load"
        and isinstance(func.value, ast.Name)
        and func.value.id == "torch"
    )


# ----------------------------------------------------------------------------- configuration


def test_negative_lr(trained, tmp_path):
    r = train(trained["root"], tmp_path / "run", "--lr", "-0.001").refused()
    assert "lr must be > 0, got -0.001" in r.message
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize("size, depth, nearest", [("250 500", "4", "256x496"), ("33 65", "2", "32x64")])
def test_image_size_the_network_cannot_take_names_the_nearest_valid_one(trained, tmp_path, size, depth, nearest):
    args = [a for a in TINY]
    args[args.index("--image-size") + 1 : args.index("--image-size") + 3] = size.split()
    args[args.index("--depth") + 1] = depth
    r = cli("train", "--data-root", trained["root"], "--run-dir", tmp_path / "run", *args).refused()
    assert f"multiple of {2 ** int(depth)}" in r.message and f"try {nearest}" in r.message


def test_lr_too_large_for_float32(trained, tmp_path):
    train(trained["root"], tmp_path / "run", "--lr", "1e39", "--optimizer", "sgd").refused()


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--epochs", "two", "invalid int value: 'two'"),
        ("--optimizer", "adamx", "one of adamw, adam, sgd; got 'adamx'"),
        ("--lr", "fast", "invalid float value: 'fast'"),
    ],
)
def test_ill_typed_or_unknown_flag_values(trained, tmp_path, flag, value, expected):
    r = cli("train", "--data-root", trained["root"], "--run-dir", tmp_path / "run", flag, value)
    assert r.code == 2 and "Traceback" not in r.err and expected in r.err, r.err[-2000:]


def test_unknown_flag_is_refused(tmp_path):
    # Not a prefix of a real flag: argparse would silently expand "--epoch" to "--epochs".
    r = cli("train", "--run-dir", tmp_path / "run", "--epocs", "3")
    assert r.code == 2 and "Traceback" not in r.err and "unrecognized arguments: --epocs" in r.err


def test_resume_and_overwrite_together(trained, tmp_path):
    r = train(trained["root"], tmp_path / "run", "--resume", "--overwrite").refused()
    assert "exclude each other" in r.message


@pytest.mark.parametrize(
    "injected, expected",
    [
        ({"epoch": 5}, "unknown parameter 'epoch' for TrainConfig (did you mean 'epochs'?)"),
        ({"epochs": "many"}, "epochs must be an integer, got 'many'"),
        ({"epochs": 2.5}, "epochs must be an integer, got 2.5"),
        ({"lr": "fast"}, "lr must be a number, got 'fast'"),
        ({"image_size": "250x500"}, "try 256x496"),
        ({"optimizer": "adamx"}, "one of adamw, adam, sgd; got 'adamx'"),
    ],
)
def test_unknown_or_ill_typed_notebook_parameter(injected, expected):
    from segkit import notebook
    from segkit.config import TrainConfig
    from segkit.errors import ConfigError

    namespace = {"__name__": "__main__", "Path": Path}
    before = notebook.snapshot(namespace)
    namespace.update({"epochs": 3, "run_dir": "runs/x"}, **injected)  # the parameters cell, then papermill's
    with pytest.raises(ConfigError) as err:
        notebook.config_from_namespace(TrainConfig, namespace, before)
    assert expected in str(err.value)


# ----------------------------------------------------------------------------- the run directory


def test_existing_run_dir_is_refused_and_left_untouched(trained):
    run_dir = trained["run_dir"]
    (run_dir / "my_notes.txt").write_text("mine")
    before = snapshot(run_dir)
    r = train(trained["root"], run_dir).refused()
    assert "already holds a run" in r.message and "--resume" in r.message and "--overwrite" in r.message
    assert f"{run_dir}-2" in r.message
    assert snapshot(run_dir) == before


def test_overwrite_replaces_only_segkits_files(trained, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained["run_dir"], run_dir)
    (run_dir / "my_notes.txt").write_text("mine")
    old_best = snapshot(run_dir)["best_model.pth"]
    r = train(trained["root"], run_dir, "--overwrite", "--seed", "1")
    assert r.code == 0, r.err[-3000:]
    assert (run_dir / "my_notes.txt").read_text() == "mine"
    assert snapshot(run_dir)["best_model.pth"] != old_best  # segkit's own file was replaced


def test_run_dir_holding_only_user_files_is_used_and_they_survive(trained, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "README.txt").write_text("my experiment")
    assert train(trained["root"], run_dir).code == 0
    assert (run_dir / "README.txt").read_text() == "my experiment" and (run_dir / "best_model.pth").is_file()


def test_same_command_works_after_fixing_the_data(data, tmp_path):
    root = data()
    label = first(root / "gtFine" / "train", "*.png")
    saved = label.read_bytes()
    label.unlink()
    train(root, tmp_path / "run").refused()
    label.write_bytes(saved)
    r = train(root, tmp_path / "run")
    assert r.code == 0, r.err[-2000:]
