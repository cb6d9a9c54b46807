"""Inference backends as data: one `Backend` entry per way of running a segkit model, and `load_backend`.

Each entry says which devices it runs on, which package it needs (and how to install it), whether
it is lossless (the same fp32 arithmetic as eager PyTorch, rounding order aside) and how it is
built. `segkit benchmark` times every entry installed for a device; `segkit predict --backend NAME`
runs one; `--backend auto` picks the fastest one the checkpoint's speed.json measured within an
mIoU budget (`choose_auto`). The artefacts a backend runs (ONNX, int8 ONNX, OpenVINO IR fp32/int8)
are written beside the checkpoint by `build_artifact`, which `segkit export --format` also runs.

Every backend built here is an `nn.Module` taking a normalised (B, 3, H, W) float tensor and
returning (B, num_classes, H, W) float logits, so `segkit.inference.infer` runs them all alike.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segkit import runtime
from segkit.config import IMAGENET_MEAN, IMAGENET_STD, ExportConfig
from segkit.data.cityscapes import sample_image
from segkit.data.discover import DataRoots, list_samples, resolve_data_roots
from segkit.data.transforms import normalize_image, resize_image
from segkit.errors import SegkitError, did_you_mean
from segkit.export import OnnxModel, ensure_onnx, onnx_path_for
from segkit.export import cmd_export as cmd_export_onnx
from segkit.export import register_cli as register_export_onnx
from segkit.files import AtomicFile
from segkit.models import ModelFacts, facts, model_from_checkpoint, open_checkpoint, set_facts
from segkit.models.released import derived_dir

OPENVINO_HINT = "pip install 'segkit[openvino]'  (openvino, nncf)"
ONNX_HINT = "pip install 'segkit[onnx]'  (onnx, onnxruntime, onnxscript)"
ALIASES = {"torch": "eager", "onnx": "onnxruntime"}  # the names `predict --backend` had before the registry
SPEED_FILE = "speed.json"


@dataclass(frozen=True)
class Backend:
    """One way of running a model (a row of `BACKENDS`)."""

    name: str  # what --backend / --backends call it
    devices: tuple[str, ...]  # "cpu", "cuda"
    build: Callable[[BuildContext], nn.Module]  # the runnable model
    doc: str  # what it is and why it is here (README "How fast is it?")
    lossless: bool = True  # same fp32 weights and arithmetic as eager (only rounding order may differ)
    packages: tuple[str, ...] = ()  # Python modules it imports beyond torch
    install: str = ""  # how to install them
    int8: bool = False  # needs calibration images (post-training quantisation)
    provider: str = ""  # the onnxruntime execution provider it needs, if any


@dataclass
class BuildContext:
    """What building a backend needs: the checkpoint, the device, the threads, calibration data."""

    checkpoint: str | Path  # the checkpoint file or released model reference
    ckpt: dict  # its dict (`segkit.models.open_checkpoint`)
    device: str = "cpu"  # cpu, cuda or cuda:N
    threads: int = 0  # intra-op threads, 0 = torch.get_num_threads()
    data_root: str = ""  # int8: training images calibrate it ("" = the data the checkpoint recorded)
    calibration_images: int = ExportConfig.calibration_images  # int8: how many training images

    def torch_model(self) -> nn.Module:
        return model_from_checkpoint(self.ckpt, self.device)


# ----------------------------------------------------------------------------- torch backends


class _Wrapper(nn.Module):
    """A backend around a torch model: `run(x)` does the work; the model's facts (size divisor,
    normalisation) carry over. Holds the model as a submodule so its device is found as usual."""

    def __init__(self, model: nn.Module, run: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.inner = model
        self._run = run
        set_facts(self, facts(model))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self._run(self.inner, image)


def _eager(ctx: BuildContext) -> nn.Module:
    return ctx.torch_model()


def _channels_last(ctx: BuildContext) -> nn.Module:
    model = ctx.torch_model().to(memory_format=torch.channels_last)
    return _Wrapper(model, lambda m, x: m(x.contiguous(memory_format=torch.channels_last)).contiguous())


def _compile(ctx: BuildContext) -> nn.Module:
    model = ctx.torch_model()
    # dynamic=False: one graph per input size (a predict run sees one size); the first call of each compiles.
    compiled = torch.compile(model, dynamic=False)
    return _Wrapper(model, lambda m, x: compiled(x))


def _autocast(dtype: torch.dtype) -> Callable[[BuildContext], nn.Module]:
    def build(ctx: BuildContext) -> nn.Module:
        def run(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
            with torch.autocast("cuda", dtype=dtype):
                return m(x).float()

        return _Wrapper(ctx.torch_model(), run)

    return build


# ----------------------------------------------------------------------------- onnxruntime backends


def _ort(providers: Sequence[Any], int8: bool = False) -> Callable[[BuildContext], nn.Module]:
    def build(ctx: BuildContext) -> nn.Module:
        path = build_artifact(ctx, "onnx-int8" if int8 else "onnx")
        return OnnxModel(path, threads=ctx.threads, providers=providers)

    return build


_TRT_OPTIONS = {"trt_fp16_enable": True, "trt_engine_cache_enable": True}


# ----------------------------------------------------------------------------- OpenVINO backends


class OpenVinoModel(nn.Module):
    """An OpenVINO IR compiled for the CPU, one compiled model per input shape (static shapes run faster).

    Args:
        xml: the IR (model.xml with model.bin beside it).
        threads: inference threads, 0 = torch.get_num_threads().
        size_divisor: input sizes must be multiples of this.

    Shape:
        (B, 3, H, W) float tensor -> (B, num_classes, H, W) float32 CPU tensor.
    """

    def __init__(self, xml: str | Path, threads: int = 0, size_divisor: int = 32) -> None:
        super().__init__()
        ov = require("openvino", OPENVINO_HINT)
        self.core = ov.Core()
        self.model = self.core.read_model(str(xml))
        # f32: the CPU plugin would otherwise run bf16 on CPUs with AMX, which is not the lossless fp32 backend
        self.options = {
            "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        self.compiled: dict[tuple[int, ...], Any] = {}
        set_facts(self, facts(_stub(size_divisor)))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.detach().float().cpu().contiguous().numpy()
        if x.shape not in self.compiled:
            model = self.model.clone()
            model.reshape({model.inputs[0]: list(x.shape)})
            self.compiled[x.shape] = self.core.compile_model(model, "CPU", self.options)
        compiled = self.compiled[x.shape]
        return torch.from_numpy(np.asarray(compiled(x)[compiled.outputs[0]]))


def _stub(size_divisor: int) -> nn.Module:
    """An empty module carrying segkit's default facts with this size divisor (for wrappers without a model)."""
    return set_facts(nn.Module(), ModelFacts({"name": "openvino"}, size_divisor, IMAGENET_MEAN, IMAGENET_STD))


def _openvino(int8: bool) -> Callable[[BuildContext], nn.Module]:
    def build(ctx: BuildContext) -> nn.Module:
        xml = build_artifact(ctx, "openvino-int8" if int8 else "openvino")
        return OpenVinoModel(xml, ctx.threads, _size_divisor(ctx.ckpt))

    return build


# ----------------------------------------------------------------------------- the registry

_ORT_CPU = ["CPUExecutionProvider"]
_ORT = {"packages": ("onnx", "onnxruntime"), "install": ONNX_HINT}
_OV = {"packages": ("onnx", "openvino", "nncf"), "install": OPENVINO_HINT}
_GPU_ORT = {"packages": ("onnx", "onnxruntime"), "install": "pip install onnxruntime-gpu (and tensorrt for TensorRT)"}
BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("eager", ("cpu", "cuda"), _eager, "PyTorch as trained: the reference the others are compared with"),
        Backend(
            "channels_last",
            ("cpu", "cuda"),
            _channels_last,
            "PyTorch with NHWC memory: oneDNN / cuDNN pick faster convolution kernels for it on many machines",
        ),
        Backend(
            "compile",
            ("cpu", "cuda"),
            _compile,
            "torch.compile (Inductor): fuses element-wise work around the convolutions; the first call compiles",
        ),
        Backend(
            "onnxruntime",
            ("cpu",),
            _ort(_ORT_CPU),
            "ONNX Runtime on the CPU: a graph-optimising runtime with no Python in the loop",
            **_ORT,
        ),
        Backend(
            "onnxruntime-int8",
            ("cpu",),
            _ort(_ORT_CPU, int8=True),
            "ONNX Runtime static int8 (QDQ, per-channel weights, min/max calibrated on training images)",
            lossless=False,
            int8=True,
            **_ORT,
        ),
        Backend(
            "openvino",
            ("cpu",),
            _openvino(int8=False),
            "OpenVINO fp32 on the CPU: Intel's runtime, the fastest CPU runtime for convolutional nets on x86",
            **_OV,
        ),
        Backend(
            "openvino-int8",
            ("cpu",),
            _openvino(int8=True),
            "OpenVINO int8 by NNCF post-training quantisation calibrated on training images",
            lossless=False,
            int8=True,
            **_OV,
        ),
        Backend(
            "onnxruntime-cuda",
            ("cuda",),
            _ort(["CUDAExecutionProvider"]),
            "ONNX Runtime's CUDA execution provider",
            provider="CUDAExecutionProvider",
            **_GPU_ORT,
        ),
        Backend(
            "tensorrt",
            ("cuda",),
            _ort([("TensorrtExecutionProvider", _TRT_OPTIONS), "CUDAExecutionProvider"]),
            "TensorRT fp16 through ONNX Runtime's TensorRT execution provider (engines cached beside the model)",
            lossless=False,
            provider="TensorrtExecutionProvider",
            **_GPU_ORT,
        ),
        Backend("fp16", ("cuda",), _autocast(torch.float16), "CUDA autocast to float16 (tensor cores)", lossless=False),
        Backend(
            "bf16",
            ("cuda",),
            _autocast(torch.bfloat16),
            "CUDA autocast to bfloat16: native on Ampere (sm80) and newer; the T4 (sm75) has no native bf16",
            lossless=False,
        ),
    )
}


def require(module: str, hint: str) -> Any:
    """Import an optional dependency, or say which package to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise SegkitError(f"{module} is not installed: {hint}") from None


def backend(name: str) -> Backend:
    """The registry entry called `name` (or a former alias: torch, onnx); an unknown name gets a did-you-mean."""
    name = ALIASES.get(name, name)
    if name not in BACKENDS:
        raise SegkitError(
            f"unknown backend {name!r}{did_you_mean(name, list(BACKENDS) + ['auto'])}; "
            f"valid backends: {', '.join(BACKENDS)}, auto"
        )
    return BACKENDS[name]


def _installed(package: str) -> bool:
    """Whether `package` can be imported (a package whose lookup itself fails counts as missing)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def unavailable(name: str, device: str) -> str | None:
    """Why backend `name` cannot run on `device` here (None: it can)."""
    entry = backend(name)
    if device not in entry.devices:
        return f"runs on {' or '.join(entry.devices)}, not {device}"
    missing = [p for p in entry.packages if not _installed(p)]
    if missing:
        return f"not installed ({', '.join(missing)}): {entry.install}"
    if device == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available on this machine (torch.cuda.is_available() is False)"
        major, minor = torch.cuda.get_device_capability()
        if entry.name == "bf16" and major < 8:
            return (
                f"{torch.cuda.get_device_name()} (compute capability {major}.{minor}) has no native bf16 "
                "(Ampere, sm80, and newer have); use fp16"
            )
    if entry.provider:
        import onnxruntime

        if entry.provider not in onnxruntime.get_available_providers():
            return f"onnxruntime has no {entry.provider} here: {entry.install}"
    if entry.name == "compile" and device == "cpu" and not shutil.which(os.environ.get("CXX", "g++")):
        return "torch.compile on the CPU needs a C++ compiler (g++) on PATH"
    return None


def available(device: str) -> list[str]:
    """The backends that can run on `device` here, in registry order."""
    return [name for name in BACKENDS if unavailable(name, device) is None]


def load_backend(ctx: BuildContext, name: str) -> nn.Module:
    """Build backend `name` (checked: known, for this device, installed) for the checkpoint in `ctx`."""
    entry = backend(name)
    why = unavailable(entry.name, torch.device(ctx.device).type)
    if why is not None:
        raise SegkitError(f"backend {entry.name} cannot run here: {why}")
    return entry.build(ctx)


# ----------------------------------------------------------------------------- --backend auto


def speed_path(checkpoint: str | Path, ckpt: dict) -> Path:
    """Where `segkit benchmark` keeps a checkpoint's speed.json: beside it (a released model: runs/released/<name>/)."""
    return derived_dir(checkpoint, ckpt) / SPEED_FILE


def choose_auto(speed: dict | None, device: str, max_miou_drop: float) -> tuple[str, str]:
    """(backend, why) for `--backend auto`: the highest end-to-end frame rate in `speed` whose mIoU change
    stays within `max_miou_drop` points, among backends that can run here; eager when nothing qualifies.

    Lossless backends qualify without a measured mIoU only when their class maps equalled eager's;
    lossy ones need a measured `miou_delta`.
    """
    if speed is None:
        return "eager", f"no {SPEED_FILE} beside the checkpoint (run segkit benchmark --checkpoint ... to make one)"
    if speed.get("device") != device:
        return "eager", f"{SPEED_FILE} was measured on {speed.get('device')}, this run is on {device}"
    ranked = []
    for name, rec in speed.get("backends", {}).items():
        if name not in BACKENDS or not rec.get("end_to_end_fps") or unavailable(name, device) is not None:
            continue
        delta = rec.get("miou_delta")
        if delta is not None and -100 * delta > max_miou_drop:
            continue
        if delta is None and not (BACKENDS[name].lossless and rec.get("outputs_equal")):
            continue
        ranked.append((rec["end_to_end_fps"], name, delta))
    if not ranked:
        return "eager", f"no backend in {SPEED_FILE} is measured within {max_miou_drop:g} mIoU points and usable here"
    fps, name, delta = max(ranked)
    cost = "class maps equal to eager's" if delta is None else f"mIoU change {100 * delta:+.2f} points"
    return name, (
        f"fastest in {SPEED_FILE} within {max_miou_drop:g} mIoU points: {fps:.1f} frames/s end to end, {cost}"
    )


def read_speed(checkpoint: str | Path, ckpt: dict) -> dict | None:
    """The checkpoint's speed.json, or None when there is none."""
    path = speed_path(checkpoint, ckpt)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SegkitError(f"{path} is not a readable speed.json ({e}); run segkit benchmark again") from None


def resolve_name(name: str, checkpoint: str | Path, ckpt: dict, device: str, max_miou_drop: float) -> str:
    """The backend `name` stands for (auto: chosen from speed.json and logged with the reason)."""
    if name != "auto":
        return backend(name).name
    chosen, why = choose_auto(read_speed(checkpoint, ckpt), device, max_miou_drop)
    runtime.log.info("backend auto -> %s: %s", chosen, why)
    return chosen


# ----------------------------------------------------------------------------- artefacts


def artifact_path(checkpoint: str | Path, ckpt: dict, kind: str) -> Path:
    """Where an artefact of `kind` (onnx, onnx-int8, openvino, openvino-int8) lives, beside the ONNX export."""
    onnx = onnx_path_for(checkpoint, ckpt)
    stem = onnx.with_suffix("")
    return {
        "onnx": onnx,
        "onnx-int8": stem.with_name(stem.name + ".int8.onnx"),
        "openvino": stem.with_name(stem.name + "_openvino") / "model.xml",
        "openvino-int8": stem.with_name(stem.name + "_openvino_int8") / "model.xml",
    }[kind]


def build_artifact(ctx: BuildContext, kind: str, force: bool = False) -> Path:
    """The artefact of `kind` for the checkpoint, made now if missing or older than the checkpoint's weights."""
    onnx = ensure_onnx(ctx.checkpoint, ctx.ckpt)
    if kind == "onnx":
        return onnx
    path = artifact_path(ctx.checkpoint, ctx.ckpt, kind)
    if path.is_file() and path.stat().st_mtime >= onnx.stat().st_mtime and not force:
        return path
    if kind == "onnx-int8":
        _quantize_onnx(onnx, path, calibration_batches(ctx))
    elif kind == "openvino":
        _save_openvino(_read_openvino(onnx), path)
    else:
        _save_openvino(_nncf_quantize(_read_openvino(onnx), calibration_batches(ctx)), path)
    runtime.log.info("wrote %s", path)
    return path


def _size_divisor(ckpt: dict) -> int:
    return facts(model_from_checkpoint(ckpt)).size_divisor


def calibration_batches(ctx: BuildContext) -> list[np.ndarray]:
    """`calibration_images` training images as the network sees them: (1, 3, H, W) float32, normalised, at the
    checkpoint's training size (rounded to its size divisor).

    Raises:
        SegkitError: no data to calibrate with (no --data-root and none recorded in the checkpoint).
    """
    roots = calibration_roots(ctx.data_root, ctx.ckpt)
    split = "train" if "train" in _splits(roots) else min(_splits(roots))
    samples = list_samples(roots, split)[: ctx.calibration_images]
    divisor = _size_divisor(ctx.ckpt)
    h, w = (max(divisor, round(s / divisor) * divisor) for s in ctx.ckpt["image_size"])
    norm = ctx.ckpt.get("normalization") or {}
    mean, std = tuple(norm.get("mean", ())), tuple(norm.get("std", ()))
    out = []
    for sample in samples:
        image = resize_image(sample_image(sample), (h, w))
        x = normalize_image(image, mean, std) if mean else normalize_image(image)
        out.append(np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32))
    runtime.log.info("int8 calibration: %d %s image(s) from %s at %dx%d", len(out), split, roots.image_root, h, w)
    return out


def _splits(roots: DataRoots) -> set[str]:
    from segkit.data.discover import list_splits

    return set(list_splits(roots))


def calibration_roots(data_root: str, ckpt: dict) -> DataRoots:
    """The data int8 calibrates on: --data-root, else the data the checkpoint recorded while it exists."""
    if data_root:
        return resolve_data_roots(data_root)
    record = ckpt.get("data")
    if record and Path(record["image_root"]).is_dir() and Path(record["label_root"]).is_dir():
        return DataRoots.from_record(record)
    raise SegkitError(
        "int8 needs calibration images and this checkpoint records no data set that exists here: "
        "give --data-root (a data set whose training images calibrate it, e.g. --data-root data/cityscapes)"
    )


# Ops that take a shape-derived tensor as an argument (pads, sizes, indices) and the image's data as input:
# what comes out of them is data again, so the walk from a Shape stops there.
_SHAPE_CONSUMERS = {"Pad", "Resize", "Reshape", "Expand", "Slice", "Tile", "ConstantOfShape", "Upsample"}


def shape_arithmetic(model: Any) -> list[str]:
    """Names of the nodes of an ONNX graph that compute on a tensor's shape, not on the image.

    An export with dynamic height and width computes some arguments at run time from the input's
    shape: timm's TensorFlow "same" padding (tf_efficientnet_*: Shape -> Cast -> Div -> Ceil -> Mul
    -> Sub -> ... -> Pad), sizes to interpolate to. These are integers carried as floats; a quantiser
    that calibrates every float tensor would round them to uint8 steps and pad by the wrong amount
    (FPN on Lite0 then failed in its first addition of two maps; a U-Net on Lite0, whose decoder
    resizes to match, lost 18 mIoU points on CamVid where OpenVINO's int8 lost 0.2; with them in float, 0.77).
    """
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    todo = [out for node in model.graph.node if node.op_type == "Shape" for out in node.output]
    found: dict[int, Any] = {}
    while todo:
        for node in consumers.get(todo.pop(), ()):
            if node.op_type not in _SHAPE_CONSUMERS and id(node) not in found:
                found[id(node)] = node
                todo.extend(node.output)
    return [node.name for node in found.values() if node.name]


def _quantize_onnx(onnx_path: Path, out: Path, batches: list[np.ndarray]) -> None:
    """onnxruntime static int8 (QDQ, per-channel int8 weights, uint8 activations, min/max calibration),
    the graph's shape arithmetic left in float (`shape_arithmetic`)."""
    require("onnxruntime", ONNX_HINT)
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(batches)

        def get_next(self) -> dict | None:
            x = next(self.items, None)
            return None if x is None else {"image": x}

    fp32 = onnx.load(str(onnx_path))  # read once: its shape arithmetic and its metadata
    with AtomicFile(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Please consider to run pre-processing": shapes are dynamic on purpose
        quantize_static(
            str(onnx_path),
            str(tmp),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=shape_arithmetic(fp32),
        )
        _copy_metadata(fp32, tmp)


def _copy_metadata(src: Any, target: Path) -> None:
    """The segkit metadata of the fp32 export `src` (size divisor, normalisation, classes) onto the int8 file."""
    import onnx

    dst = onnx.load(str(target))
    have = {p.key for p in dst.metadata_props}
    for prop in src.metadata_props:
        if prop.key not in have:
            dst.metadata_props.add(key=prop.key, value=prop.value)
    onnx.save(dst, str(target))


def _read_openvino(onnx_path: Path) -> Any:
    ov = require("openvino", OPENVINO_HINT)
    return ov.Core().read_model(str(onnx_path))


def _nncf_quantize(model: Any, batches: list[np.ndarray]) -> Any:
    """NNCF post-training int8 quantisation of an OpenVINO model (its performance preset: symmetric)."""
    nncf = require("nncf", OPENVINO_HINT)
    return nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches))


def _save_openvino(model: Any, xml: Path) -> None:
    """model.xml + model.bin in a folder, written beside it and renamed into place whole."""
    ov = require("openvino", OPENVINO_HINT)
    tmp = xml.parent.with_name(f".{xml.parent.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    ov.save_model(model, str(tmp / xml.name), compress_to_fp16=False)  # fp32 weights: the lossless backend
    shutil.rmtree(xml.parent, ignore_errors=True)
    os.replace(tmp, xml.parent)


# ----------------------------------------------------------------------------- segkit export --format


def export_artifact(cfg: ExportConfig) -> Path:
    """`segkit export` beyond plain ONNX: int8 ONNX, OpenVINO IR fp32 or int8, at the default place or --output."""
    ckpt = open_checkpoint(cfg.checkpoint)
    kind = cfg.format + ("-int8" if cfg.int8 else "")
    ctx = BuildContext(cfg.checkpoint, ckpt, data_root=cfg.data_root, calibration_images=cfg.calibration_images)
    if cfg.int8:
        calibration_roots(cfg.data_root, ckpt)  # fail before the export when there is nothing to calibrate on
    for package in ("onnx", "openvino", "nncf") if cfg.format == "openvino" else ("onnx", "onnxruntime"):
        require(package, OPENVINO_HINT if package in ("openvino", "nncf") else ONNX_HINT)
    path = build_artifact(ctx, kind, force=True)
    if cfg.output:
        target = Path(cfg.output)
        if path.name == "model.xml":
            shutil.copytree(path.parent, target, dirs_exist_ok=True)
            return target / "model.xml"
        shutil.copy2(path, target)
        return target
    return path


def register_cli(sub: Any) -> None:
    """`segkit export`: ONNX (`segkit.export`), int8 ONNX and OpenVINO (here); every ExportConfig field is a flag."""
    register_export_onnx(sub)
    sub.choices["export"].set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from segkit.reflect import config_from_args

    cfg, _ = config_from_args(ExportConfig, args)
    if cfg.format == "onnx" and not cfg.int8:
        return cmd_export_onnx(args)
    out = export_artifact(cfg)
    size = sum(p.stat().st_size for p in out.parent.iterdir()) if out.name == "model.xml" else out.stat().st_size
    print(f"wrote {out} ({size / 2**20:.1f} MB, {cfg.format}{' int8' if cfg.int8 else ' fp32'})")
    return 0
