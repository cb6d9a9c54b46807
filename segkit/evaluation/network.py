"""Score a network: over a loader (`evaluate`, what validation runs each epoch) or over a split of a
data set (`evaluate_split`, what `segkit evaluate` and a run's final metrics.json run), with the
one protocol builder every model evaluation uses (`protocol_for`)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader

from segkit import progress, runtime
from segkit.data.discover import DataRoots, Sample, list_samples
from segkit.data.loaders import eval_loader
from segkit.data.pairs import protocol_fields
from segkit.inference import infer, predicted_classes
from segkit.labels import CLASS_NAMES, IGNORE_INDEX, Bridge, LabelSpace, bridge
from segkit.metrics import OWN_SIZE, ConfusionMatrix, input_scaling, make_protocol
from segkit.models import facts, model_space
from segkit.runtime import Precision


@dataclass
class Evaluation:
    """What one pass of `evaluate` measured (all-reduced over torchrun processes)."""

    confusion: ConfusionMatrix  # one matrix over every image
    images: int  # images scored
    seconds: float  # wall time of the pass
    val_loss: float | None = None  # mean loss per image ("whole" inference with a loss_fn only)
    per_image: list[tuple[str, float]] = field(default_factory=list)  # (stem, its own mIoU), when asked
    class_names: tuple[str, ...] = CLASS_NAMES  # the classes of the space scored in, in class-index order

    def summary(self, protocol: dict) -> dict:
        """The metrics record (metrics.json's schema) with its protocol, the time and the matrix."""
        out = self.confusion.summary(self.class_names, protocol)
        out["seconds"] = self.seconds
        out["confusion_matrix"] = self.confusion.mat.cpu().tolist()
        return out


def protocol_for(
    *,
    split: str,
    images: int,
    roots: DataRoots | None = None,
    samples: Sequence[Sample] = (),
    image_size: Sequence[int] | None = None,
    inference: str = "whole",
    eval_resolution: str = "label",
    **extra: object,
) -> dict:
    """How numbers on a split were measured: the one place an evaluation's protocol is built.

    Args:
        split: the split.
        images: images scored.
        roots: the data scored (named in the protocol), if known.
        samples: the frames scored: image pairs' labels were decoded from colour masks, which the
            protocol says (`segkit.data.pairs.protocol_fields`).
        image_size: the training size a model's inputs were resized to cover (None: predictions
            made elsewhere, e.g. a folder of PNGs).
        inference: whole, slide, flip, ms (or "unknown" for a folder of predictions).
        eval_resolution: "label" (the label files' own size: official) or "train" (resized labels).
        **extra: further fields (e.g. pred_format).
    """
    if eval_resolution != "label" and image_size is None:
        raise ValueError("eval_resolution 'train' needs the image_size the labels were resized to")
    resolution = "label" if eval_resolution == "label" else f"train {int(image_size[0])}x{int(image_size[1])}"
    known: dict[str, object] = {} if roots is None else {"data": data_name(roots)}
    if image_size is not None:
        known["input"] = input_scaling(image_size)
    known.update(protocol_fields(samples))
    return make_protocol(resolution=resolution, inference=inference, split=split, images=images, **known, **extra)


def data_name(roots: DataRoots) -> str:
    """How a metrics protocol names the data: "synthetic" or the label root."""
    return "synthetic" if roots.synthetic else str(roots.label_root)


@torch.no_grad()
def evaluate(
    *,
    model: nn.Module,
    loader: DataLoader,
    image_size: tuple[int, int],
    precision: Precision | None = None,
    loss_fn: nn.Module | None = None,
    inference: str = "whole",
    per_image: bool = False,
    spaces: Bridge | None = None,
) -> Evaluation:
    """Confusion matrix over the whole loader (all-reduced under torchrun) and the mean loss.

    Masks come at the resolution the loader gives them (the label files' own size for the
    official protocol); scores are upsampled to each mask's size before the argmax.

    Args:
        model: the network (any wrapper); its device is used.
        loader: batches {"image", "mask", "name"}; images and masks may differ in size per item.
        image_size: the training size (what "whole" inference resizes to).
        precision: autocast plan (default: off).
        loss_fn: also report the mean validation loss ("whole" inference only).
        inference: whole, slide, flip or ms.
        per_image: also list (name, mIoU) per image.
        spaces: how the model's classes and the masks' meet (`segkit.labels.bridge`); None = the
            masks are in the model's space.
    """
    precision = precision or Precision(None, False)
    model.eval()
    device = next(model.parameters()).device
    divisor = facts(model).size_divisor
    spaces = spaces or Bridge(model_space(model))
    pred_lut, mask_lut = (
        torch.as_tensor(m.lut, dtype=torch.long, device=device) if m is not None else None
        for m in (spaces.pred_map, spaces.target_map)
    )
    n_classes = spaces.space.num_classes
    cm = ConfusionMatrix(n_classes, IGNORE_INDEX, device=device)
    loss_sum = torch.zeros((), device=device)
    n, per, start = 0, [], time.perf_counter()
    with_loss = loss_fn is not None and inference == "whole"
    for batch in progress.bar(loader, desc="evaluate", unit="batch", leave=False):
        for image, mask, names in _equal_size_groups(batch):
            image, mask = image.to(device, non_blocking=True), mask.to(device, non_blocking=True)
            with runtime.autocast(device, precision):
                scores = infer(model, image, image_size, inference, out_size=mask.shape[-2:], size_divisor=divisor)
            if with_loss and pred_lut is None and mask_lut is None:
                loss_sum += loss_fn(scores.float(), mask).detach() * mask.shape[0]
            pred = predicted_classes(scores)
            if pred_lut is not None:  # the model's classes onto the shared space
                pred = pred_lut[pred.long().clamp(0, 255)]
            if mask_lut is not None:
                mask = mask_lut[mask.long()]
            cm.update(pred, mask)
            n += mask.shape[0]
            if per_image:
                per += [(name, _image_miou(p, m, n_classes)) for p, m, name in zip(pred, mask, names)]
    stats = torch.tensor([float(loss_sum), float(n)], device=device)
    cm.all_reduce()
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(stats)
    images = int(stats[1].item())
    loss = float(stats[0] / max(1, images)) if with_loss and pred_lut is None and mask_lut is None else None
    return Evaluation(cm, images, time.perf_counter() - start, loss, per, spaces.space.names)


def _equal_size_groups(batch: dict) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[str]]]:
    """(image (B,3,H,W), mask (B,H,W), names) groups of equal size from a collated batch."""
    if torch.is_tensor(batch["image"]) and torch.is_tensor(batch["mask"]):
        yield batch["image"], batch["mask"], batch["name"]
        return
    for i, name in enumerate(batch["name"]):
        yield batch["image"][i][None], batch["mask"][i][None], [name]


def _image_miou(pred: torch.Tensor, mask: torch.Tensor, num_classes: int) -> float:
    one = ConfusionMatrix(num_classes, IGNORE_INDEX, device=pred.device)
    one.update(pred, mask)
    return one.miou()


def evaluate_split(
    model: nn.Module,
    *,
    roots: DataRoots,
    image_size: tuple[int, int],
    split: str = "val",
    inference: str = "whole",
    eval_resolution: str = "label",
    batch_size: int = 1,
    max_images: int = 0,
    precision: Precision | None = None,
    per_image: bool = False,
    space: LabelSpace | None = None,
    class_map: str = "",
) -> dict:
    """Score a model on a split; the summary carries its protocol. What `segkit evaluate` runs.

    Under torchrun each process takes its share of the images; the confusion matrix is summed.

    Args:
        model: network (eval mode is set).
        roots: the data set.
        image_size: the training size the model was trained at.
        split: split name.
        inference: whole, slide, flip or ms.
        eval_resolution: "label" (official: the label files' own size) or "train" (resized labels).
        batch_size: images per forward pass.
        max_images: first N images only (0 = all).
        precision: autocast plan (default: off).
        per_image: also list each image's mIoU (for "worst images").
        space: the label space of the split's label files (None = the model's). A model of another
            space is scored in the space both map to (`class_map`, else the built-in map), named
            in the protocol; with no map it is refused.
        class_map: `--class-map` NAME|FILE between the model's space and the labels'.

    Returns:
        The metrics summary (schema of metrics.json) plus "seconds", "confusion_matrix" and, with
        `per_image`, "per_image": [{"name", "miou"}].
    """
    spaces = bridge(model_space(model), space or model_space(model), class_map)
    if tuple(image_size) == OWN_SIZE:  # a model run at each image's own size: its "train" size is the label's
        eval_resolution = "label"
    samples = list_samples(roots, split)
    samples = samples[:max_images] if max_images else samples
    loader = eval_loader(
        samples,
        None if eval_resolution == "label" else image_size,
        facts(model).normalization,
        batch_size=batch_size,
        num_workers=min(2, runtime.default_num_workers()),
        space=space or model_space(model),
    )
    ev = evaluate(
        model=model,
        loader=loader,
        image_size=image_size,
        precision=precision,
        inference=inference,
        per_image=per_image,
        spaces=spaces,
    )
    mapped = {"class_map": spaces.class_map.describe()} if spaces.class_map else {}
    summary = ev.summary(
        protocol_for(
            roots=roots,
            samples=samples,
            split=split,
            images=ev.images,
            image_size=image_size,
            inference=inference,
            eval_resolution=eval_resolution,
            label_space=spaces.space.tag,
            **mapped,
        )
    )
    if per_image:
        summary["per_image"] = [{"name": n, "miou": m} for n, m in ev.per_image]
    return summary
