"""The one prediction path: normalise, forward (whole image, sliding window, flip or multi-scale
TTA) at the input's own size, argmax; with PyTorch or onnxruntime behind the same nn.Module call.

Training's validation, `segkit evaluate`, `segkit predict`, the notebooks and TensorBoard all
predict through `infer` (tensors) or `predict_image` (an RGB array in, trainIds out).
`segkit predict` itself (images, folders, videos in; files out) is `segkit.predict`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segkit import backends, runtime
from segkit.data.layouts import IMAGE_ENDINGS
from segkit.data.transforms import MEAN, STD, cover_size, normalize_image
from segkit.errors import SegkitError
from segkit.labels import CITYSCAPES, LabelSpace, space_of_record
from segkit.metrics import OWN_SIZE
from segkit.models import facts, open_checkpoint, unwrap
from segkit.viz import overlay

# Scales, relative to the size the model trained at (the image resized, aspect kept, to cover the
# training size), at which each mode looks; sliding windows wherever the scaled image is larger
# than the training size, so the network always sees windows of the size it trained on.
MODES: dict[str, dict] = {
    "whole": {"scales": (1.0,), "flip": False},
    "slide": {"scales": (1.5,), "flip": False},
    "flip": {"scales": (1.0,), "flip": True},
    "ms": {"scales": (0.75, 1.0, 1.25, 1.5), "flip": True},
}
# HEIC/AVIF are listed so that a folder of iPhone photos is not skipped in silence: each is refused by name.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".heif", ".avif")


@torch.no_grad()
def predicted_classes(scores: torch.Tensor) -> torch.Tensor:
    """The class of each pixel: the index of the highest score over dim 1 (N, C, H, W -> N, H, W).

    `max(1).indices` picks the same first maximum as `argmax(1)` at about a third of its CPU time
    (torch 2.14, 19 x 256 x 512 scores: 17 ms vs 52 ms on one thread), which was half of a video
    frame's prediction.
    """
    return scores.max(1).indices


def infer(
    model: nn.Module,
    image: torch.Tensor,
    image_size: Sequence[int],
    mode: str = "whole",
    out_size: Sequence[int] | None = None,
    size_divisor: int = 32,
) -> torch.Tensor:
    """Class scores for a normalised image batch, resized back to `out_size`.

    "whole" returns logits; the TTA modes return averaged softmax probabilities (argmax is
    what matters for metrics and predictions).

    Args:
        model: segmentation network returning (B, C, h, w) logits.
        image: (B, 3, H, W) normalised float tensor at any resolution.
        image_size: (h, w) training size; scale 1.0 means "resize, keeping the aspect ratio, to
            the smallest size that covers this" (`transforms.cover_size`).
        mode: whole, slide, flip or ms.
        out_size: (H, W) of the scores; defaults to the input's size.
        size_divisor: network inputs are padded (bottom, right) to multiples of this.

    Returns:
        (B, C, H_out, W_out) scores.
    """
    if mode not in MODES:
        raise SegkitError(f"inference mode must be one of {', '.join(MODES)}; got {mode!r}")
    if tuple(image_size) == OWN_SIZE:  # a released model without a Resize: each image at its own size
        image_size = tuple(image.shape[-2:])
    out_size = tuple(out_size or image.shape[-2:])
    spec = MODES[mode]
    if mode == "whole":
        return _upsample(_forward(model, image, image_size, 1.0, size_divisor, slide=False), out_size)
    total = None
    for scale in spec["scales"]:
        flips = (False, True) if spec["flip"] else (False,)
        for flip in flips:
            x = image.flip(-1) if flip else image
            logits = _forward(model, x, image_size, scale, size_divisor, slide=True)
            probs = _upsample(logits, out_size).softmax(1)
            probs = probs.flip(-1) if flip else probs
            total = probs if total is None else total + probs
    return total / (len(spec["scales"]) * (2 if spec["flip"] else 1))


def _forward(
    model: nn.Module, image: torch.Tensor, image_size: Sequence[int], scale: float, divisor: int, slide: bool
) -> torch.Tensor:
    """Resize (aspect kept) to `scale` x the size that covers the training size, run the model (in
    windows of the training size if larger than it), return logits at that resized size.

    The resized image is padded at the bottom and right to a multiple of `divisor` (the padding's
    scores are cut off), so no side is stretched to fit the network.
    """
    th, tw = cover_size(image.shape[-2:], image_size, scale)
    x = (
        image
        if image.shape[-2:] == (th, tw)
        else F.interpolate(image, size=(th, tw), mode="bilinear", align_corners=False, antialias=True)
    )
    x = F.pad(x, (0, -tw % divisor, 0, -th % divisor))  # 0 = the mean colour after normalisation
    if slide and (x.shape[-2] > image_size[0] or x.shape[-1] > image_size[1]):
        return _slide(model, x, image_size)[..., :th, :tw]
    return model(x).float()[..., :th, :tw]


def _slide(model: nn.Module, x: torch.Tensor, window: Sequence[int]) -> torch.Tensor:
    """Average logits of overlapping windows (stride 2/3 of the window) over the whole image."""
    b, _, h, w = x.shape
    wh, ww = min(window[0], h), min(window[1], w)
    starts_y = _starts(h, wh)
    starts_x = _starts(w, ww)
    out = None
    count = torch.zeros((1, 1, h, w), device=x.device)
    for y in starts_y:
        for xs in starts_x:
            logits = model(x[:, :, y : y + wh, xs : xs + ww]).float()  # (B, C, wh, ww)
            if out is None:
                out = torch.zeros((b, logits.shape[1], h, w), device=x.device)
            out[:, :, y : y + wh, xs : xs + ww] += logits
            count[:, :, y : y + wh, xs : xs + ww] += 1
    return out / count


def _starts(length: int, window: int) -> list[int]:
    if length <= window:
        return [0]
    n = math.ceil((length - window) / (window * 2 / 3)) + 1
    return sorted({round(i * (length - window) / (n - 1)) for i in range(n)})


def _upsample(scores: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    if tuple(scores.shape[-2:]) == tuple(size):
        return scores
    return F.interpolate(scores, size=tuple(size), mode="bilinear", align_corners=False)


# ----------------------------------------------------------------------------- images in, trainIds out


def to_input(image: np.ndarray, normalization: dict | None = None) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float tensor, normalised as the training transforms do.

    Args:
        image: the RGB image.
        normalization: {"mean", "std"} from the checkpoint; ImageNet's by default.
    """
    mean, std = (tuple(normalization["mean"]), tuple(normalization["std"])) if normalization else (MEAN, STD)
    return torch.from_numpy(normalize_image(image, mean, std)).permute(2, 0, 1)[None].contiguous()


@torch.no_grad()
def predict_image(model: nn.Module, ckpt: dict, image: np.ndarray, inference: str = "whole") -> np.ndarray:
    """trainIds (H, W) uint8 at the image's own size, for a model rebuilt from `ckpt`.

    Args:
        model: the network (a torch model or an `segkit.export.OnnxModel`); its device is used.
        ckpt: its checkpoint dict (training size and normalisation).
        image: (H, W, 3) uint8 RGB.
        inference: whole, slide, flip or ms.
    """
    plain = unwrap(model)
    device = next(plain.parameters(), torch.empty(0)).device  # an OnnxModel has none: CPU
    x = to_input(image, ckpt.get("normalization")).to(device)
    scores = infer(plain, x, tuple(ckpt["image_size"]), inference, size_divisor=facts(plain).size_divisor)
    return predicted_classes(scores)[0].to(torch.uint8).cpu().numpy()


def load_predictor(
    checkpoint: str | Path,
    backend: str = "torch",
    inference: str = "whole",
    device: str = "auto",
    ckpt: dict | None = None,
    max_miou_drop: float = 0.5,
) -> Callable[[np.ndarray], np.ndarray]:
    """A function image (H, W, 3) uint8 RGB -> trainIds (H, W) uint8, for `segkit predict`.

    Args:
        checkpoint: a segkit checkpoint (best_model.pth / last.pth) or a released model (a
            save_pretrained folder or its Hugging Face repo id: `segkit.models.open_checkpoint`).
        backend: a `segkit.backends` name (torch = eager, onnx = onnxruntime: exported next to the
            checkpoint when the .onnx file is missing or older than it), or auto: the fastest in the
            checkpoint's speed.json within `max_miou_drop`, else eager (the choice and why are logged).
        inference: whole, slide, flip or ms.
        device: auto, cpu, cuda; auto runs a CPU-only backend on the CPU.
        ckpt: the checkpoint dict, when the caller opened it already.
        max_miou_drop: backend auto: the largest mIoU loss, in points, a faster backend may cost.
    """
    ckpt = ckpt if ckpt is not None else open_checkpoint(checkpoint)
    dev = runtime.resolve_device(device)
    name = backends.resolve_name(backend, checkpoint, ckpt, dev.type, max_miou_drop)
    if device == "auto" and dev.type not in backends.backend(name).devices:
        dev = torch.device("cpu")  # e.g. --backend onnx on a GPU machine: onnxruntime's CPU provider
    model = backends.load_backend(backends.BuildContext(checkpoint, ckpt, device=str(dev)), name)
    return Predictor(model, ckpt, inference, space_of_record(ckpt))


@dataclass(frozen=True)
class Predictor:
    """image (H, W, 3) uint8 RGB -> class indices (H, W) uint8 of `space` (what `load_predictor` returns)."""

    model: Any
    ckpt: dict
    inference: str
    space: LabelSpace  # the label space the model predicts in (from its checkpoint)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return predict_image(self.model, self.ckpt, image, self.inference)


# ----------------------------------------------------------------------------- files


def list_images(path: str | Path) -> list[Path]:
    """An image file, or every image below a folder (sorted); a clear error when there are none."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SegkitError(f"--img {path} does not exist; give an image file or a folder of images")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise SegkitError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found below {path}")
    return files


def prediction_name(image_path: Path, fmt: str) -> str:
    """Output file name: the frame's stem (the image's name without a layout's ending such as
    _leftImg8bit or _rgb_anon) and the format, so `segkit evaluate --predictions` can match it."""
    stem = next(
        (image_path.stem.removesuffix(e) for e in IMAGE_ENDINGS if image_path.stem.endswith(e)), image_path.stem
    )
    return f"{stem}_{fmt}.png"


def encode_prediction(pred: np.ndarray, image: np.ndarray, fmt: str, space: LabelSpace = CITYSCAPES) -> np.ndarray:
    """Turn a class-index prediction (H, W) into the requested output array.

    Args:
        pred: (H, W) uint8 class indices of `space`.
        image: (H, W, 3) uint8 RGB input (for overlays).
        fmt: color (the space's colours), overlay, trainIds (class indices 0..N-1) or labelIds (what
            the data set's own label files hold: Cityscapes labelIds, CamVid 0..10, ADE20K 1..150,
            a colour-coded space's colours).
        space: the label space the model predicts in.

    Returns:
        (H, W) uint8 (uint16 for 16-bit label values) for id formats, (H, W, 3) uint8 RGB for colour formats.
    """
    if fmt == "trainIds":
        return pred.astype(np.uint8)
    if fmt == "labelIds":
        return space.to_color(pred) if space.color_coded else space.to_values(pred)
    if fmt == "color":
        return space.to_color(pred)
    if fmt == "overlay":
        return overlay(image, pred, space=space)
    raise SegkitError(f"format must be color, overlay, trainIds or labelIds; got {fmt!r}")
