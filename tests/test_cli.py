"""The CLI end to end, as a user runs it: train -> predict -> evaluate, in real processes."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segkit.labels import MAX_LABEL_ID

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
    "--lr",
    "3e-3",
    "--num-vis",
    "1",
]


def segkit(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "segkit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"segkit {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """One tiny training run shared by the tests of this module."""
    import conftest

    root = conftest.write_cityscapes(tmp_path_factory.mktemp("data"), splits={"train": 4, "val": 2}, size=(48, 96))
    run = tmp_path_factory.mktemp("runs") / "run"
    segkit("train", "--data-root", str(root), "--run-dir", str(run), "--epochs", "2", *TINY)
    return root, run


@pytest.mark.slow
def test_train_predict_evaluate_round_trip(trained, tmp_path):
    root, run = trained
    preds = tmp_path / "preds"
    segkit(
        "predict",
        "--checkpoint",
        str(run / "best_model.pth"),
        "--img",
        str(root / "leftImg8bit" / "val"),
        "--output",
        str(preds),
        "--format",
        "labelIds",
    )
    files = sorted(preds.glob("*_labelIds.png"))
    assert len(files) == 2
    pred = np.array(Image.open(files[0]))
    assert pred.shape == (48, 96) and pred.dtype == np.uint8 and pred.max() <= MAX_LABEL_ID  # input's own size
    out = tmp_path / "scores.json"
    segkit("evaluate", "--predictions", str(preds), "--data-root", str(root), "--split", "val", "--output", str(out))
    scored = json.loads(out.read_text())
    ckpt_eval = tmp_path / "ckpt.json"
    segkit(
        "evaluate", "--checkpoint", str(run / "best_model.pth"), "--data-root", str(root), "--output", str(ckpt_eval)
    )
    direct = json.loads(ckpt_eval.read_text())
    # Writing labelIds PNGs and scoring them gives the checkpoint's own official-protocol numbers.
    assert scored["miou"] == pytest.approx(direct["miou"], abs=1e-9)
    assert direct["protocol"] == {
        **direct["protocol"],
        "resolution": "label",
        "inference": "whole",
        "split": "val",
        "images": 2,
    }
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["miou"] == pytest.approx(direct["miou"], abs=1e-9)


@pytest.mark.parametrize("fmt, channels", [("color", 3), ("overlay", 3), ("trainIds", 1)])
def test_predict_formats_keep_the_input_size(trained, tmp_path, capsys, fmt, channels):
    """The CLI's own entry point, in this process (a real process per format is the round trip's job above)."""
    from segkit.cli import main

    root, run = trained
    image = root / "leftImg8bit" / "val" / "aachen" / "aachen_000000_000019_leftImg8bit.png"
    args = ["predict", "--checkpoint", str(run / "best_model.pth"), "--img", str(image), "--output", str(tmp_path)]
    assert main([*args, "--format", fmt, "--inference", "flip"]) == 0
    out = np.array(Image.open(tmp_path / f"aachen_000000_000019_{fmt}.png"))
    assert out.shape[:2] == (48, 96) and (out.ndim == 3) == (channels == 3)
    capsys.readouterr()
    assert main([*args, "--format", fmt]) == 2  # the file is there: refused, not overwritten
    err = capsys.readouterr().err
    assert "--overwrite" in err and "Traceback" not in err


def test_help_lists_every_command():
    out = segkit("--help").stdout
    for command in ("train", "evaluate", "predict", "synth"):
        assert command in out


def test_user_error_is_one_message_without_traceback(tmp_path):
    proc = segkit("train", "--data-root", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "r"), check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "missing" in proc.stderr


def loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter has imported after running `code`."""
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def test_help_starts_without_importing_torch():
    """`segkit --help` and usage errors answer before torch (~2 s) is imported."""
    code = (
        "from segkit.cli import main\n"
        "for argv in (['--help'], ['train', '--help'], ['train', '--epoch', '3']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
    )
    assert loaded_after(code, ("torch",)) == []


def test_segkits_own_unet_needs_neither_smp_nor_timm():
    """smp, timm and torchvision (~1.2 s of a process's start on 2 cores) load only for a model on an encoder."""
    code = (
        "import segkit.launch, segkit.engine, segkit.inference, segkit.evaluation\n"
        "from segkit.models import create_model, model_spec\n"
        "model_spec(create_model('unet', 19, base_channels=8, depth=2))\n"
    )
    assert loaded_after(code, ("segmentation_models_pytorch", "timm", "torchvision")) == []


def test_listed_help_of_lazy_commands_equals_their_own():
    """The help `segkit --help` shows for a lazily registered command is what its module registers."""
    import argparse

    from segkit.cli import EXTENSIONS, build_parser

    def listed(parser: argparse.ArgumentParser) -> dict[str, str]:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return {c.dest: c.help for c in sub._choices_actions}

    full, lazy = listed(build_parser()), listed(build_parser("train"))
    assert list(full) == list(lazy)  # the same commands, in the same order, either way
    for name, (_, help_text) in EXTENSIONS.items():
        assert full[name] == help_text


def test_presets_lists_cost_and_measured_speed_of_every_preset(capsys):
    from segkit.cli import main
    from segkit.recipes import PRESETS

    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name, preset in PRESETS.items():
        block = out.split(f"{name}: ", 1)[1].splitlines()[1]
        assert "M params" in block and "GFLOPs/image" in block and "T4: not measured" in block, block
        if preset.cpu_img_s is None:  # a preset nobody has measured yet
            assert "CPU (2 cores): not measured" in block
        else:
            assert f"{preset.cpu_img_s:g} img/s measured" in block
    seed = out.split("seed: ", 1)[1].splitlines()[1]
    assert seed.startswith("   31.0 M params"), seed  # the seed U-Net (base 64, depth 4): 31.04 M
