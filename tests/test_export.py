"""ONNX export: onnxruntime agrees with PyTorch at several input sizes; `segkit predict --backend onnx`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnxruntime")

from segkit.checkpoint import FORMAT, VERSION, atomic_save, load_checkpoint
from segkit.cli import main as cli_main
from segkit.data.transforms import MEAN, STD
from segkit.errors import SegkitError
from segkit.export import OnnxModel, _require
from segkit.inference import load_predictor, predict_image
from segkit.models import create_model, facts, model_from_checkpoint, model_spec

REPO = Path(__file__).resolve().parents[1]


def make_checkpoint(path: Path, image_size=(32, 64), seed: int = 0) -> Path:
    """A segkit checkpoint of a tiny U-Net with seeded random weights (BatchNorm statistics too)."""
    torch.manual_seed(seed)
    model = create_model("unet", 19, base_channels=8, depth=2)
    model.train()
    with torch.no_grad():  # non-trivial running statistics, so eval-mode BatchNorm is exercised
        model(torch.randn(4, 3, *image_size) * 2 + 0.5)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "model_spec": model_spec(model),
        "num_classes": 19,
        "image_size": list(image_size),
        "normalization": {"mean": list(MEAN), "std": list(STD)},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_save(payload, path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A checkpoint in a run folder, exported once by load_predictor to best_model.onnx beside it."""
    ckpt_path = make_checkpoint(tmp_path_factory.mktemp("run") / "best_model.pth")
    load_predictor(ckpt_path, "onnx")
    return ckpt_path


def test_onnx_logits_match_torch_at_two_sizes(exported):
    torch_model = model_from_checkpoint(load_checkpoint(exported))
    ort_model = OnnxModel(exported.with_suffix(".onnx"))
    assert facts(ort_model).size_divisor == 4  # read from the file's metadata
    gen = torch.Generator().manual_seed(1)
    for shape in ((1, 3, 32, 64), (2, 3, 48, 20)):  # dynamic batch, height and width
        x = torch.randn(*shape, generator=gen)
        with torch.no_grad():
            ref = torch_model(x)
        out = ort_model(x)
        assert out.shape == (shape[0], 19, *shape[2:])
        assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4), (out - ref).abs().max()
        assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.999


@pytest.mark.parametrize("inference", ["whole", "flip"])
def test_load_predictor_equals_predict_image(exported, inference):
    image = np.random.default_rng(0).integers(0, 256, (50, 90, 3), dtype=np.uint8)  # not the training size
    ckpt = load_checkpoint(exported)
    expected = predict_image(model_from_checkpoint(ckpt), ckpt, image, inference)
    pred = load_predictor(exported, "onnx", inference)(image)
    assert pred.shape == (50, 90) and pred.dtype == np.uint8
    assert (pred == expected).mean() >= 0.999


def test_load_predictor_reexports_only_when_the_checkpoint_is_newer(tmp_path):
    ckpt_path = make_checkpoint(tmp_path / "best_model.pth")
    load_predictor(ckpt_path, "onnx")
    onnx_file = tmp_path / "best_model.onnx"
    first = onnx_file.stat().st_mtime_ns
    load_predictor(ckpt_path, "onnx")
    assert onnx_file.stat().st_mtime_ns == first  # reused
    make_checkpoint(ckpt_path, seed=1)
    os.utime(ckpt_path, ns=(first + 10**9, first + 10**9))
    image = np.zeros((32, 64, 3), np.uint8)
    pred = load_predictor(ckpt_path, "onnx")(image)
    assert onnx_file.stat().st_mtime_ns != first  # re-exported from the new weights
    ckpt = load_checkpoint(ckpt_path)
    assert np.array_equal(pred, predict_image(model_from_checkpoint(ckpt), ckpt, image))


def test_export_cli_static_and_error_messages(exported, tmp_path, capsys):
    out = tmp_path / "out" / "m.onnx"
    assert cli_main(["export", "--checkpoint", str(exported), "--output", str(out), "--static"]) == 0
    assert "static" in capsys.readouterr().out
    ort_model = OnnxModel(out)
    assert ort_model.session.get_inputs()[0].shape == [1, 3, 32, 64]
    assert ort_model(torch.zeros(1, 3, 32, 64)).shape == (1, 19, 32, 64)
    assert cli_main(["export", "--checkpoint", str(tmp_path / "nope.pth")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SegkitError, match=r"pip install 'segkit\[onnx\]'"):
        _require("onnxruntime_that_is_not_installed")


@pytest.mark.slow
def test_segkit_predict_backend_onnx_end_to_end(tmp_path):
    ckpt_path = make_checkpoint(tmp_path / "best_model.pth")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a_leftImg8bit.png", "b_leftImg8bit.png"):
        Image.fromarray(rng.integers(0, 256, (40, 72, 3), dtype=np.uint8)).save(images / name)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "segkit",
        "predict",
        "--checkpoint",
        str(ckpt_path),
        "--img",
        str(images),
        "--output",
        str(tmp_path / "pred"),
        "--format",
        "trainIds",
        "--backend",
        "onnx",
        "--device",
        "cpu",
    ]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    model, ckpt = model_from_checkpoint(load_checkpoint(ckpt_path)), load_checkpoint(ckpt_path)
    for name in ("a", "b"):
        written = np.array(Image.open(tmp_path / "pred" / f"{name}_trainIds.png"))
        expected = predict_image(model, ckpt, np.array(Image.open(images / f"{name}_leftImg8bit.png")))
        assert written.shape == (40, 72) and (written == expected).mean() >= 0.999
