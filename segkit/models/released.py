"""What `--checkpoint` and `--init-from` may name: a segkit checkpoint, or a model someone released.

`open_checkpoint(ref)` is the one way segkit opens one. It takes

- a segkit checkpoint file (`best_model.pth`, `last.pth`);
- a segmentation_models_pytorch model saved with `save_pretrained` (a folder holding
  `config.json`, `model.safetensors` and the preprocessing `albumentations_config_eval.json`),
  given as that folder or as its Hugging Face repo id (`smp-hub/segformer-b0-640x1280-city-160k`),
  which is found on this machine exactly like encoder weights (hub cache, `$SEGKIT_WEIGHTS_DIR`,
  `/kaggle/input`: `segkit.models.weights`), else downloaded, else refused with what to attach.

A released model becomes a segkit checkpoint dict in memory (architecture spec, weights, the
normalisation and input size of its own preprocessing), so evaluate, predict, export, the
notebooks and fine-tuning treat it as any checkpoint, and nothing downloads when it is rebuilt.
It is refused, naming what was found, unless it is an smp architecture with 19 outputs that are
Cityscapes' trainIds in order, returns logits, and its preprocessing is a fixed-size resize and a
normalisation (what segkit reproduces).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

import segkit
from segkit.checkpoint import FORMAT, VERSION, load_checkpoint
from segkit.errors import CheckpointError
from segkit.labels import CLASS_NAMES, NUM_CLASSES, LabelSpace, builtin_space
from segkit.metrics import OWN_SIZE
from segkit.model_choice import FAMILIES
from segkit.models.weights import fetch, released_source
from segkit.models.zoo import smp_module
from segkit.runtime import log

CONFIG = "config.json"  # smp's save_pretrained: the architecture's arguments and `_model_class`
WEIGHTS = "model.safetensors"
PREPROCESSING = "albumentations_config_eval.json"  # A.Compose(...).save_pretrained(folder): key "eval"
MODEL_CARD = "README.md"
EXAMPLE = "smp-hub/segformer-b0-640x1280-city-160k"
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_NOT_OPTIONS = ("_model_class", "encoder_name", "encoder_weights", "classes")


def open_checkpoint(ref: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """A segkit checkpoint dict for `ref`: a checkpoint file, a save_pretrained folder, or a hub repo id.

    Args:
        ref: what the user gave (`--checkpoint`, `--init-from`, a notebook's `checkpoint`).
        map_location: where a checkpoint file's tensors go (released weights load on the CPU).

    Returns:
        The checkpoint dict (model, model_spec, image_size, normalization, ...); a released
        model's also has "released": {"ref", "folder", "repo_id", "model_class"}.

    Raises:
        CheckpointError: not a checkpoint or a usable released model (what was found, the fix).
        WeightsUnavailable: a repo id neither on this machine nor downloadable (what to attach).
    """
    path = Path(ref).expanduser()
    if path.is_file():
        return load_checkpoint(path, map_location=map_location)
    if path.is_dir():
        if not (path / CONFIG).is_file():
            found = sorted(p.name for p in path.iterdir())[:8]
            raise CheckpointError(
                f"{path} is a folder without {CONFIG}: expected a checkpoint file (best_model.pth, last.pth) or a "
                f"released model saved with smp's save_pretrained ({CONFIG}, {WEIGHTS}, {PREPROCESSING}); "
                f"found {found or 'nothing'}"
                + (". Fix: --checkpoint " + str(path / "best_model.pth") if (path / "best_model.pth").is_file() else "")
            )
        return released_checkpoint(path, str(ref))
    if is_repo_id(str(ref)):
        found = fetch(released_source(str(ref), companions=(CONFIG, PREPROCESSING)))
        return released_checkpoint(found.parent, str(ref), repo_id=str(ref))
    hint = (
        f"; files there: {', '.join(sorted(p.name for p in path.parent.glob('*.pth')))}" if path.parent.is_dir() else ""
    )
    raise CheckpointError(
        f"{ref} does not exist{hint}. Expected best_model.pth or last.pth written by segkit train, a folder saved with "
        f"smp's save_pretrained, or a released model's Hugging Face repo id, e.g. {EXAMPLE}"
    )


def is_repo_id(ref: str) -> bool:
    """`owner/name` that is no file or folder here and no checkpoint file name: a Hugging Face repo id."""
    return bool(_REPO_ID.fullmatch(ref)) and not ref.endswith((".pth", ".pt")) and not Path(ref).exists()


def is_released(ckpt: dict[str, Any]) -> bool:
    """Whether a checkpoint dict came from a released model (not from segkit train)."""
    return "released" in ckpt


def _smp_families() -> dict[str, str]:
    """smp's model class name (a save_pretrained config's `_model_class`) -> the family built on it."""
    classes = smp_module().MODEL_ARCHITECTURES_MAPPING
    return {classes[f.name].__name__: f.name for f in FAMILIES.values() if f.smp and f.name in classes}


def released_checkpoint(folder: Path, ref: str, repo_id: str | None = None) -> dict[str, Any]:
    """Read a save_pretrained folder into a segkit checkpoint dict, refusing what segkit cannot reproduce."""
    folder = Path(folder)
    config = _read_json(folder / CONFIG, "its architecture")
    model_class = config.get("_model_class")
    families = _smp_families()
    if model_class not in families:
        keys = ", ".join(sorted(config)[:8])
        raise CheckpointError(
            f"{folder / CONFIG} is not a segmentation model saved by segmentation_models_pytorch: its _model_class is "
            f"{model_class!r} (keys: {keys}); segkit opens smp's save_pretrained folders, whose _model_class is one "
            f"of {', '.join(families)}"
        )
    space = _check_outputs(config, folder, ref)
    image_size, mean, std = preprocessing(folder)
    spec = {
        "name": families[model_class],
        "num_classes": space.num_classes,
        "encoder": config.get("encoder_name", ""),
        **{k: v for k, v in config.items() if k not in _NOT_OPTIONS},
    }
    if not (folder / WEIGHTS).is_file():
        raise CheckpointError(
            f"{folder} has {CONFIG} but no {WEIGHTS}: the weights are missing. Fix: download or "
            f"copy the whole folder (hf download {repo_id or '<repo id>'} --local-dir {folder})"
        )
    return {
        "format": FORMAT,
        "version": VERSION,
        "segkit_version": segkit.__version__,
        "model": load_file(str(folder / WEIGHTS)),
        "model_spec": spec,
        "num_classes": space.num_classes,
        "label_space": space.tag,
        "class_names": list(space.names),
        "space": space.to_dict(),
        "image_size": list(image_size),
        "normalization": {"mean": list(mean), "std": list(std)},
        "pretrained": None,
        "released": {"ref": ref, "folder": str(folder), "repo_id": repo_id, "model_class": model_class},
    }


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(
            f"{path.parent} has no {path.name}, which holds {what}; segkit needs the whole "
            f"save_pretrained folder ({CONFIG}, {WEIGHTS}, {PREPROCESSING})"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not readable JSON ({e}); re-download the model") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds {type(data).__name__}, expected a JSON object")
    return data


# Released models' label spaces, by their number of outputs: smp-hub's Cityscapes and ADE20K models.
RELEASED_SPACES = {NUM_CLASSES: "cityscapes", 150: "ade20k"}


def _check_outputs(config: dict[str, Any], folder: Path, ref: str) -> LabelSpace:
    """Its label space: 19 logits in Cityscapes' trainId order, or ADE20K's 150; anything else is refused."""
    classes = config.get("classes")
    if classes not in RELEASED_SPACES:
        known = {21: " (Pascal VOC's 21?)", 1: " (a binary mask?)"}.get(classes, "")
        raise CheckpointError(
            f"{ref} predicts {classes} classes{known}; segkit takes released models trained on Cityscapes' 19 "
            "train classes (e.g. smp-hub/segformer-b0-640x1280-city-160k) or ADE20K's 150 (e.g. "
            "smp-hub/segformer-b0-512x512-ade-160k)"
        )
    if classes != NUM_CLASSES:
        _check_common(config, ref)
        return builtin_space(RELEASED_SPACES[classes])
    _check_common(config, ref)
    _check_cityscapes_names(config, folder, ref)
    return builtin_space("cityscapes")


def _check_common(config: dict[str, Any], ref: str) -> None:
    if config.get("activation") not in (None, "identity"):
        raise CheckpointError(
            f"{ref} ends in activation {config['activation']!r}; segkit needs its logits (activation "
            "None): save the model with activation=None"
        )
    if config.get("in_channels", 3) != 3:
        raise CheckpointError(f"{ref} takes {config['in_channels']} input channels; segkit feeds RGB images (3)")


def _check_cityscapes_names(config: dict[str, Any], folder: Path, ref: str) -> None:
    names = config.get("class_names") or config.get("id2label")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names, key=int)]
    if names is not None:
        found = [str(n).lower().replace("_", " ") for n in names]
        if found != list(CLASS_NAMES):
            raise CheckpointError(
                f"{ref}'s classes are {found}; segkit needs Cityscapes' 19 trainIds in order: {list(CLASS_NAMES)}"
            )
        return
    card = folder / MODEL_CARD
    card_says = card.is_file() and re.search(
        r"dataset name:\s*cityscapes", card.read_text(errors="replace"), re.IGNORECASE
    )
    if not card_says and not re.search(r"city", Path(ref).name + folder.name, re.IGNORECASE):
        raise CheckpointError(
            f"cannot tell whether {ref}'s 19 outputs are Cityscapes' trainIds: its {CONFIG} names no classes, "
            f"its model card ({MODEL_CARD}) names no Cityscapes data set and its name does not say city. "
            "Fix, if it was trained on Cityscapes' trainIds: save it with "
            "model.save_pretrained(folder, dataset='cityscapes')"
        )


def preprocessing(folder: Path) -> tuple[tuple[int, int], tuple[float, ...], tuple[float, ...]]:
    """(input size (H, W), mean, std in 0..1 units) from the folder's albumentations_config_eval.json.

    segkit reproduces a fixed-size `Resize` (as a resize that keeps the aspect ratio and covers
    that size: the same for the 2:1 frames these models are trained on) and a standard `Normalize`;
    with no Resize the input size is `OWN_SIZE` (each image at its own size, padded to the model's
    size divisor), and the log says so. A pipeline with anything else is refused, naming it, rather
    than predicting on other pixels.
    """
    data = _read_json(folder / PREPROCESSING, "its preprocessing (input size, normalisation)")
    steps = (data.get("transform") or {}).get("transforms") or []
    kinds = [str(step.get("__class_fullname__", "?")).rsplit(".", 1)[-1] for step in steps]
    other = [k for k in kinds if k not in ("Resize", "Normalize", "ToTensorV2")]
    if other or kinds.count("Resize") > 1 or kinds.count("Normalize") != 1:
        raise CheckpointError(
            f"{folder / PREPROCESSING} holds {kinds or 'no transforms'}; segkit reproduces at most one Resize(height, "
            "width) and exactly one Normalize(mean, std), so it cannot predict as this model expects"
        )
    norm = steps[kinds.index("Normalize")]
    if norm.get("normalization", "standard") != "standard":
        raise CheckpointError(
            f"{folder / PREPROCESSING}: Normalize(normalization={norm['normalization']!r}); segkit "
            "reproduces normalization='standard' (mean, std) only"
        )
    scale = float(norm.get("max_pixel_value", 255.0)) / 255.0  # albumentations: (x - mean * m) / (std * m)
    mean = tuple(float(v) * scale for v in norm["mean"])
    std = tuple(float(v) * scale for v in norm["std"])
    if "Resize" not in kinds:  # e.g. smp-hub's ADE20K SegFormers: each image at its own size
        log.info("%s has no Resize: the model runs at each image's own size", folder / PREPROCESSING)
        return OWN_SIZE, mean, std
    resize = steps[kinds.index("Resize")]
    return (int(resize["height"]), int(resize["width"])), mean, std


def at_image_size(ckpt: dict[str, Any], image_size: tuple[int, int] | list[int] = (0, 0)) -> dict[str, Any]:
    """The checkpoint to run at `image_size` (`--image-size H W`; (0, 0) = its own), the log saying which.

    A model is run at the size its inputs are resized to cover; a released model whose preprocessing has
    no Resize runs at each image's own size (`OWN_SIZE`) unless a size is given.
    """
    size, own = tuple(int(v) for v in image_size), tuple(int(v) for v in ckpt["image_size"])
    own_text = "each image's own size (its preprocessing has no Resize)" if own == OWN_SIZE else f"{own[0]}x{own[1]}"
    if size == (0, 0):
        if own == OWN_SIZE:
            log.info("the model runs at %s; --image-size H W runs it at another", own_text)
        return ckpt
    log.info("the model runs at %dx%d (--image-size; its own: %s)", size[0], size[1], own_text)
    return {**ckpt, "image_size": size}


def checkpoint_origin(ckpt: dict[str, Any]) -> str:
    """Where a checkpoint dict came from, for logs and a run's record."""
    released = ckpt.get("released")
    if released:
        return f"released model {released['ref']} ({released['model_class']}, from {released['folder']})"
    return f"segkit checkpoint (epoch {ckpt.get('epoch', '?')}, {ckpt.get('model_spec', {}).get('name', '?')})"


def derived_dir(ref: str | Path, ckpt: dict[str, Any]) -> Path:
    """Where files made from a checkpoint go (evaluation reports, ONNX exports): beside a checkpoint
    file; for a released model `runs/released/<name>/`, never into the hub cache or an attached input."""
    if is_released(ckpt):
        return Path("runs") / "released" / re.sub(r"[^\w.-]+", "-", Path(str(ref)).name)
    return Path(ref).parent
