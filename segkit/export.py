"""`segkit export`: a checkpoint to ONNX; `segkit predict --backend onnx` runs it with onnxruntime.

The TorchScript exporter (`torch.onnx.export(..., dynamo=False)`) is used: for these
convolutional models it exports in ~2 s with dynamic batch, height and width, while the
torch.export-based default of torch 2.9+ takes ~25 s here and upgrades opset 17 to 18.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

import segkit
from segkit.config import IMAGENET_MEAN, IMAGENET_STD, ExportConfig
from segkit.errors import SegkitError
from segkit.files import AtomicFile
from segkit.labels import space_of_record
from segkit.metrics import OWN_SIZE
from segkit.models import (
    ModelFacts,
    facts,
    is_released,
    model_from_checkpoint,
    open_checkpoint,
    set_facts,
)
from segkit.models.released import derived_dir
from segkit.reflect import add_config_flags, config_from_args
from segkit.runtime import log

INSTALL_HINT = "pip install 'segkit[onnx]'  (onnx, onnxruntime, onnxscript)"
INPUT_NAME, OUTPUT_NAME = "image", "logits"


def _require(module: str) -> Any:
    """Import an optional ONNX dependency, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise SegkitError(f"{module} is not installed; ONNX export and inference need it: {INSTALL_HINT}") from None


def export_onnx(
    checkpoint: str | Path,
    output: str | Path,
    opset: int = ExportConfig.opset,
    dynamic: bool = True,
    ckpt: dict | None = None,
) -> Path:
    """Export a segkit checkpoint's model to an ONNX file (written to a temporary file, then renamed).

    Args:
        checkpoint: best_model.pth / last.pth written by segkit train, or a released model
            (`segkit.models.open_checkpoint`).
        ckpt: the checkpoint dict, when the caller opened it already.
        output: The .onnx file to write.
        opset: ONNX opset version.
        dynamic: Dynamic batch, height and width (heights and widths must stay multiples of the
            model's size_divisor); False fixes the input to (1, 3, *image_size).

    Returns:
        `output`. Its metadata holds image_size, normalization, size_divisor and class names.

    Shape:
        input "image" (B, 3, H, W) float32 normalised -> "logits" (B, num_classes, H, W) float32.
    """
    onnx = _require("onnx")
    ckpt = ckpt if ckpt is not None else open_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt, "cpu")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    size = tuple(ckpt["image_size"])
    if size == OWN_SIZE and not dynamic:
        raise SegkitError(
            "this model runs at each image's own size (its preprocessing has no Resize), so it has no fixed input "
            "to export: drop --static (the ONNX model then takes any height and width)"
        )
    example = torch.zeros(1, 3, *(size if size != OWN_SIZE else (512, 512)))  # (1, 3, H, W): any size traces it
    axes = {0: "batch", 2: "height", 3: "width"}
    with AtomicFile(output) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy TorchScript exporter": chosen on purpose
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            opset_version=opset,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes} if dynamic else None,
        )
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto)
        for key, value in _metadata(ckpt, model, checkpoint).items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(tmp))
    return output


def _metadata(ckpt: dict, model: nn.Module, checkpoint: str | Path) -> dict[str, str]:
    """What a consumer of the .onnx file needs to pre- and post-process like segkit does."""
    return {
        "segkit_version": segkit.__version__,
        "checkpoint": str(checkpoint),
        "image_size": json.dumps(list(ckpt["image_size"])),
        "size_divisor": str(facts(model).size_divisor),
        "normalization": json.dumps(ckpt.get("normalization", {})),
        "class_names": json.dumps(ckpt.get("class_names", [])),
        "space": json.dumps(space_of_record(ckpt).to_dict()),  # the whole label space (LabelSpace.from_dict)
    }


class OnnxModel(nn.Module):
    """An onnxruntime session behind the nn.Module call of segkit's models, for `segkit.inference.infer`.

    Args:
        path: The .onnx file (from `export_onnx`).
        threads: Intra-op threads; 0 = torch.get_num_threads(), so both backends use the same.
        size_divisor: Input sizes must be multiples of this (stored in the file's metadata).
        providers: onnxruntime execution providers, in order of preference (`segkit.backends`).

    Shape:
        (B, 3, H, W) float tensor -> (B, num_classes, H, W) float32 CPU tensor.
    """

    def __init__(
        self,
        path: str | Path,
        threads: int = 0,
        size_divisor: int | None = None,
        providers: Sequence[Any] = ("CPUExecutionProvider",),
    ) -> None:
        super().__init__()
        ort = _require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=list(providers))
        meta = self.session.get_modelmeta().custom_metadata_map
        norm = json.loads(meta.get("normalization") or "{}")
        set_facts(
            self,
            ModelFacts(
                {"name": "onnx", "file": str(path)},
                size_divisor or int(meta.get("size_divisor", 32)),
                tuple(norm.get("mean", IMAGENET_MEAN)),
                tuple(norm.get("std", IMAGENET_STD)),
            ),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.detach().float().cpu().contiguous().numpy()
        (logits,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})
        return torch.from_numpy(logits)


def onnx_path_for(checkpoint: str | Path, ckpt: dict | None = None) -> Path:
    """Where `segkit predict --backend onnx` keeps the export: next to the checkpoint, else under runs/onnx/
    (a released model's: runs/released/<name>/model.onnx)."""
    if ckpt is not None and is_released(ckpt):
        return derived_dir(checkpoint, ckpt) / "model.onnx"
    checkpoint = Path(checkpoint)
    beside = checkpoint.with_suffix(".onnx")
    if os.access(checkpoint.parent, os.W_OK):
        return beside
    # e.g. a checkpoint attached read-only under /kaggle/input
    return Path("runs") / "onnx" / f"{checkpoint.parent.name}_{beside.name}"


def ensure_onnx(checkpoint: str | Path, ckpt: dict | None = None) -> Path:
    """The checkpoint's ONNX export, exported now if missing or older than the checkpoint's weights."""
    ckpt = ckpt if ckpt is not None else open_checkpoint(checkpoint)
    path = onnx_path_for(checkpoint, ckpt)
    source = Path(ckpt["released"]["folder"]) / "model.safetensors" if is_released(ckpt) else Path(checkpoint)
    if not path.is_file() or path.stat().st_mtime < source.stat().st_mtime:
        path.parent.mkdir(parents=True, exist_ok=True)
        log.info("exporting %s to %s", checkpoint, export_onnx(checkpoint, path, ckpt=ckpt))
    return path


# ----------------------------------------------------------------------------- CLI


def register_cli(sub: Any) -> None:
    """`segkit export`: every ExportConfig field is a flag."""
    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX or OpenVINO, fp32 or int8 (for segkit predict --backend)",
        description=__doc__.split("\n\n")[0],
    )
    add_config_flags(p, ExportConfig)
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    cfg, _ = config_from_args(ExportConfig, args)
    ckpt = open_checkpoint(cfg.checkpoint)  # a checkpoint file or a released model; a clear error otherwise
    default = (
        derived_dir(cfg.checkpoint, ckpt) / "model.onnx"
        if is_released(ckpt)
        else Path(cfg.checkpoint).with_suffix(".onnx")
    )
    out = export_onnx(
        cfg.checkpoint, Path(cfg.output) if cfg.output else default, cfg.opset, dynamic=not cfg.static, ckpt=ckpt
    )
    size = out.stat().st_size / 2**20
    print(
        f"wrote {out} ({size:.1f} MB, opset {cfg.opset}, {'static' if cfg.static else 'dynamic batch/height/width'} "
        f"input '{INPUT_NAME}' (B, 3, H, W) normalised float32 -> '{OUTPUT_NAME}' (B, C, H, W))"
    )
    return 0
