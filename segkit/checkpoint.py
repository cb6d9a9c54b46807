"""Checkpoint files: atomic writes and safe loads (weights_only=True). File I/O only.

A segkit checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so that
`torch.load(path, weights_only=True)` loads it: loading a file can never run code. Rebuilding a
model from a checkpoint is `segkit.models.model_from_checkpoint`; what a run's checkpoints hold
is decided by `segkit.rundir`.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from segkit.errors import CheckpointError
from segkit.files import atomic_write

FORMAT = "segkit-checkpoint"
VERSION = 1


def atomic_save(obj: dict[str, Any], path: str | Path) -> Path:
    """`torch.save` through `segkit.files.atomic_write`: a crash never leaves half a checkpoint.

    Args:
        obj: the checkpoint dict.
        path: destination file.

    Returns:
        The destination path.
    """
    return atomic_write(path, lambda f: torch.save(obj, f), binary=True)


def safe_load(
    path: str | Path, map_location: str | torch.device = "cpu", what: str = "a checkpoint", mmap: bool = False
) -> Any:
    """`torch.load(weights_only=True)` with one clear CheckpointError per kind of bad file.

    Args:
        path: the file.
        map_location: where tensors go.
        what: how to call the file in messages ("a checkpoint", "an encoder weights file").
        mmap: map the tensors instead of reading them (to look at the plain values only).

    Returns:
        Whatever the file holds (tensors, numbers, strings, lists, dicts).
    """
    path = Path(path)
    if not path.is_file():
        hint = (
            f"; files there: {', '.join(sorted(p.name for p in path.parent.glob('*.pth')))}"
            if path.parent.is_dir()
            else ""
        )
        raise CheckpointError(
            f"{path} does not exist{hint}. Check the path (segkit train writes best_model.pth and last.pth)."
        )
    if not _looks_like_torch_file(path):
        raise CheckpointError(
            f"{path} is not {what} (it is neither a torch zip archive nor a pickle; "
            f"it starts with {path.read_bytes()[:8]!r}). Use best_model.pth or last.pth written by segkit train."
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refused to load {path}: it holds Python objects ({_blocked_global(str(e))}) that could run code "
            f"when unpickled, and segkit loads every file with weights_only=True. "
            f"{what[0].upper()}{what[1:]} segkit can use holds only tensors and plain values; "
            "re-save the weights from a source you trust."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointError(
            f"{path} is not {what.replace('a ', 'a readable ', 1).replace('an ', 'a readable ', 1)} "
            "(truncated, corrupt, or not a torch file: "
            f"{str(e).splitlines()[0][:160]}). Use best_model.pth or last.pth written by segkit train."
        ) from None


def _blocked_global(message: str) -> str:
    """The global torch refused, e.g. "posix.system", from its UnpicklingError text."""
    match = re.search(r"(?:Unsupported global: GLOBAL|GLOBAL) ([\w.]+)", message)
    return f"it references {match.group(1)}" if match else "not tensors or plain values"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Load a segkit checkpoint with `weights_only=True`, with clear errors for every bad file.

    Args:
        path: the .pth file.
        map_location: where tensors go.
        mmap: map the tensors instead of reading them (for the plain values: state, metrics).

    Returns:
        The checkpoint dict (keys: format, model, model_spec, image_size, ...).
    """
    ckpt = safe_load(path, map_location, mmap=mmap)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        looks_like = (
            "a bare state_dict"
            if isinstance(ckpt, dict) and all(torch.is_tensor(v) for v in ckpt.values())
            else type(ckpt).__name__
        )
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
