"""Model families: one registry entry is all a new family needs (segkit.model_choice.FAMILIES).

A tiny family registered here, and nowhere else, must be listed by `segkit train --help`, pass
the config's checks, train through `segkit train`, save a checkpoint that rebuilds with no flags
and export to ONNX with the same logits; the registry's checks refuse what the entry does not accept.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import write_cityscapes
from torch import nn

from segkit.checkpoint import load_checkpoint
from segkit.cli import build_parser, main
from segkit.config import TrainConfig
from segkit.errors import ConfigError
from segkit.export import OnnxModel, export_onnx
from segkit.model_choice import FAMILIES, Family, ModelChoice, register
from segkit.models import create_model, facts, model_from_checkpoint


class TinyNet(nn.Module):
    """conv stride 2 -> BatchNorm -> ReLU -> 1x1 classifier -> bilinear x2: a real, minimal segmentation net."""

    def __init__(self, num_classes: int, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.features(x))  # (B, C, H/2, W/2)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


@pytest.fixture
def tinynet():
    """The family "tinynet", registered for one test and removed afterwards."""
    family = register(Family("tinynet", "two layers, for tests", build=TinyNet, size_divisor=2))
    yield family
    del FAMILIES[family.name]


def test_one_registry_entry_trains_saves_loads_and_exports(tinynet, tmp_path: Path, capsys) -> None:
    assert "tinynet" in _train_help()
    data = write_cityscapes(tmp_path / "data", splits={"train": 2, "val": 1}, size=(32, 64))
    run_dir = tmp_path / "run"
    flags = ["--data-root", str(data), "--run-dir", str(run_dir), "--image-size", "32", "64", "--epochs", "1"]
    flags += ["--batch-size", "2", "--num-workers", "0", "--num-vis", "1", "--device", "cpu", "--eval-every", "1"]
    assert main(["train", "--model", "tinynet", *flags]) == 0
    assert "best model:" in capsys.readouterr().out
    assert main(["models"]) == 0
    assert "tinynet: two layers, for tests [--encoder: none]" in capsys.readouterr().out.splitlines()

    ckpt = load_checkpoint(run_dir / "best_model.pth")
    assert ckpt["model_spec"] == {"name": "tinynet", "num_classes": 19, "encoder": "", "width": 8}  # defaults filled
    model = model_from_checkpoint(ckpt)  # no flags: the spec names the family
    assert facts(model).size_divisor == 2 and isinstance(model, TinyNet)
    onnx = OnnxModel(export_onnx(run_dir / "best_model.pth", tmp_path / "tiny.onnx"))
    x = torch.randn(2, 3, 32, 48, generator=torch.Generator().manual_seed(0))  # another size: dynamic axes
    with torch.no_grad():
        assert torch.allclose(onnx(x), model(x), atol=1e-4)


def _train_help() -> str:
    parser = build_parser("train")
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return " ".join(commands.choices["train"].format_help().split())


def test_what_an_entry_does_not_accept_is_refused_with_the_fix(tinynet) -> None:
    assert TrainConfig(model="tinynet", image_size=(32, 64)).size_divisor == 2
    with pytest.raises(ConfigError, match=r"image size 33x64 is not a multiple of 2; try 34x64"):
        TrainConfig(model="tinynet", image_size=(33, 64))
    with pytest.raises(ConfigError, match="'tinynet' is segkit's own network and takes no encoder; drop --encoder"):
        ModelChoice("tinynet", "resnet18")
    with pytest.raises(
        ConfigError, match=r"unknown option\(s\) \['depth'\] for segkit's own tinynet; valid: \['width'\]"
    ):
        create_model("tinynet", depth=3)
    with pytest.raises(ConfigError, match="model family 'tinynet' exists already"):
        register(Family("tinynet", "again", build=TinyNet))
    with pytest.raises(ConfigError, match="needs a constructor"):
        Family("nothing", "neither built nor smp")


def test_every_family_is_listed_and_the_builtin_entries_build_what_they_did() -> None:
    assert f"one of: {', '.join(FAMILIES)}" in _train_help()  # --model's help lists the registry
    net = create_model("unet", 19, base_channels=4, depth=2)  # the seed's U-Net: its spec as checkpoints hold it
    assert facts(net).spec == {
        "name": "unet",
        "num_classes": 19,
        "encoder": "",
        "base_channels": 4,
        "depth": 2,
        "upsample": "transpose",
        "dropout": 0.0,
        "in_channels": 3,
    }
    assert facts(net).size_divisor == 4
