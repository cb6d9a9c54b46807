"""Checkpoints: atomic writes, safe loads (weights_only=True), rebuilding the model from its spec.

A segkit checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so that
`torch.load(path, weights_only=True)` loads it: loading a file can never run code.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segkit.errors import CheckpointError

FORMAT = "segkit-checkpoint"
VERSION = 1


def atomic_save(obj: dict[str, Any], path: str | Path) -> Path:
    """Write `obj` with torch.save to a temporary file in the same folder, fsync, then rename.

    A crash or a full disk at any moment leaves the previous file at `path` intact.

    Args:
        obj: the checkpoint dict.
        path: destination file.

    Returns:
        The destination path.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise CheckpointError(
            f"could not write {path}: {e.strerror or e}. The previous {path.name} (if any) is intact; "
            "free disk space or make the run directory writable, then resume with --resume."
        ) from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete temporary files a killed `atomic_save` left behind (they are never valid checkpoints)."""
    stale = [p for p in Path(folder).glob(".*.pth.*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _fsync_dir(folder: Path) -> None:
    # The rename itself must reach the disk, or a power cut could lose the new name.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (e.g. FUSE mounts) refuse fsync on directories; the rename still happened
    finally:
        os.close(fd)


def safe_load(path: str | Path, map_location: str | torch.device = "cpu", what: str = "a checkpoint") -> Any:
    """`torch.load(weights_only=True)` with one clear CheckpointError per kind of bad file.

    Args:
        path: the file.
        map_location: where tensors go.
        what: how to call the file in messages ("a checkpoint", "an encoder weights file").

    Returns:
        Whatever the file holds (tensors, numbers, strings, lists, dicts).
    """
    path = Path(path)
    if not path.is_file():
        hint = f"; files there: {', '.join(sorted(p.name for p in path.parent.glob('*.pth')))}" if path.parent.is_dir() else ""
        raise CheckpointError(f"{path} does not exist{hint}. Check the path (segkit train writes best_model.pth and last.pth).")
    if not _looks_like_torch_file(path):
        raise CheckpointError(
            f"{path} is not {what} (it is neither a torch zip archive nor a pickle; "
            f"it starts with {path.read_bytes()[:8]!r}). Use best_model.pth or last.pth written by segkit train."
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refused to load {path}: it holds Python objects ({_blocked_global(str(e))}) that could run code "
            f"when unpickled, and segkit loads every file with weights_only=True. {what[0].upper()}{what[1:]} segkit can use holds "
            "only tensors and plain values; re-save the weights from a source you trust."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointError(
            f"{path} is not {what.replace('a ', 'a readable ', 1).replace('an ', 'a readable ', 1)} (truncated, corrupt, or not a torch file: "
            f"{str(e).splitlines()[0][:160]}). Use best_model.pth or last.pth written by segkit train."
        ) from None


def _blocked_global(message: str) -> str:
    """The global torch refused, e.g. "posix.system", from its UnpicklingError text."""
    match = re.search(r"(?:Unsupported global: GLOBAL|GLOBAL) ([\w.]+)", message)
    return f"it references {match.group(1)}" if match else "not tensors or plain values"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a segkit checkpoint with `weights_only=True`, with clear errors for every bad file.

    Args:
        path: the .pth file.
        map_location: where tensors go.

    Returns:
        The checkpoint dict (keys: format, model, model_spec, image_size, ...).
    """
    ckpt = safe_load(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        looks_like = "a bare state_dict" if isinstance(ckpt, dict) and all(torch.is_tensor(v) for v in ckpt.values()) else type(ckpt).__name__
        raise CheckpointError(
            f"{path} is not a segkit checkpoint (found {looks_like}; expected a dict with format={FORMAT!r}, "
            "model weights and model_spec). Use best_model.pth or last.pth from a segkit run; ImageNet encoder "
            "weights go to --encoder-weights instead."
        )
    return ckpt


def _looks_like_torch_file(path: Path) -> bool:
    """torch.save writes a zip archive (or, in old versions, a pickle starting with 0x80)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK") or head[:1] == b"\x80"


def model_from_checkpoint(ckpt: dict[str, Any], device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the architecture from `model_spec` and load the weights (strict), in eval mode."""
    from segkit.models import model_from_spec

    spec = dict(ckpt["model_spec"])
    spec.pop("encoder_weights", None)  # the weights come from the checkpoint, not ImageNet
    model = model_from_spec(spec)
    load_weights(model, ckpt["model"], source="checkpoint")
    return model.to(device).eval()


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict(strict=True), turning mismatches into a message that names them."""
    state_dict = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state_dict.items()}
    own = model.state_dict()
    shape_diff = [
        f"{k}: {tuple(v.shape)} in {source} vs {tuple(own[k].shape)} in model"
        for k, v in state_dict.items()
        if k in own and own[k].shape != v.shape
    ]
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if shape_diff or missing or unexpected:
        parts = []
        if shape_diff:
            parts.append("shape mismatches: " + "; ".join(shape_diff[:3]))
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        raise CheckpointError(
            f"the {source} does not match the model ({'; '.join(parts)}): it was saved from a different "
            "architecture or number of classes. Rebuild the model from the checkpoint's model_spec "
            "(segkit predict/evaluate do this) or pick the matching checkpoint."
        )
    model.load_state_dict(state_dict, strict=True)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel and/or torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)
