"""Where the code runs: device and precision, torchrun processes, seeding."""

from __future__ import annotations

import gc
import logging
import os
import random
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from segkit.errors import ConfigError, SegkitError
from segkit.progress import setup_logging

log = logging.getLogger("segkit")


def resolve_device(device: str = "auto") -> torch.device:
    """Resolve "auto" once: the local GPU of this process under torchrun, else cuda:0, else CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N; got {device!r}") from None


@dataclass(frozen=True)
class Precision:
    """Mixed-precision plan: the autocast dtype (None = off) and whether a GradScaler is needed."""

    dtype: torch.dtype | None
    use_scaler: bool

    @property
    def name(self) -> str:
        return {torch.float16: "fp16", torch.bfloat16: "bf16", None: "off"}[self.dtype]


def resolve_precision(amp: str, device: torch.device) -> Precision:
    """fp16 + GradScaler on GPUs without bf16 (T4, P100), bf16 on Ampere and newer, off on CPU.

    Args:
        amp: "auto", "fp16", "bf16" or "off".
        device: the resolved device.
    """
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return Precision(None, False)
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("amp=fp16 needs a CUDA GPU (CPU autocast supports bf16); use amp=bf16 or off")
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported(including_emulation=False)):
        return Precision(torch.bfloat16, False)
    return Precision(torch.float16, True)


def autocast(device: torch.device, precision: Precision) -> AbstractContextManager:
    """`torch.autocast` for the plan, or a no-op context when precision is off."""
    if precision.dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=precision.dtype)


def configure_backends(device: torch.device) -> None:
    """cudnn.benchmark and TF32 on CUDA (fixed input sizes); nothing on CPU."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def default_num_workers(requested: int = -1) -> int:
    """DataLoader workers: the request, or CPUs per local process minus one for the main process."""
    if requested >= 0:
        return requested
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_process = cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(8, per_process - 1))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """RNG states as tensors and plain lists, so checkpoints load with weights_only=True."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` saved."""
    torch.set_rng_state(state["torch"])
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    name, keys, pos, has_gauss, gauss_np = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss_np))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- torchrun


def distributed_env() -> bool:
    """True when launched by torchrun (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


# Seconds a process waits for the others (joining the group, then at each collective); unset: torch's default.
DIST_TIMEOUT_ENV = "SEGKIT_DIST_TIMEOUT"


def init_distributed(device: torch.device) -> None:
    """Join the torchrun process group (NCCL on GPUs, gloo on CPU); no-op for one process.

    When the others do not join within SEGKIT_DIST_TIMEOUT seconds (torch's default when unset),
    a ConfigError names this process, the endpoint it waited on and what to check.
    """
    if distributed_env() and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        timeout = dist_timeout()
        try:
            dist.init_process_group(
                backend="nccl" if device.type == "cuda" else "gloo",
                **({"timeout": timeout} if timeout is not None else {}),
            )
        except (RuntimeError, TimeoutError) as e:  # DistStoreError / DistNetworkError are RuntimeErrors
            raise ConfigError(_never_joined(e, timeout)) from None


def dist_timeout() -> timedelta | None:
    """SEGKIT_DIST_TIMEOUT as a timedelta, None when unset (torch's own default then)."""
    raw = os.environ.get(DIST_TIMEOUT_ENV, "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise ConfigError(f"{DIST_TIMEOUT_ENV} must be a number of seconds > 0, got {raw!r}")
    return timedelta(seconds=seconds)


def node() -> str:
    """This process's node: "node 1 (host h)" (torchrun's GROUP_RANK)."""
    return f"node {os.environ.get('GROUP_RANK', '0')} (host {socket.gethostname()})"


def where() -> str:
    """This process among the others: "rank 1 of 2, local rank 0 on node 1 (host h)"."""
    return (
        f"rank {os.environ.get('RANK', '0')} of {os.environ.get('WORLD_SIZE', '1')}, "
        f"local rank {os.environ.get('LOCAL_RANK', '0')} on {node()}"
    )


def _never_joined(error: BaseException, timeout: timedelta | None) -> str:
    endpoint = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    waited = f"{timeout.total_seconds():.0f} s" if timeout is not None else "torch's default timeout"
    host, port = endpoint.rsplit(":", 1)
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"{where()} waited {waited} for the other {int(os.environ.get('WORLD_SIZE', '1')) - 1} processes to "
        f"join the process group at {endpoint}, and they did not ({first}). Check that every node runs the "
        "same torchrun command with the same --nnodes, --nproc-per-node and --rdzv-endpoint, that none of "
        f"them failed before joining (their own output), and that this host reaches {endpoint}: "
        f"python -c \"import socket; socket.create_connection(('{host}', {port}), 5)\". "
        f"{DIST_TIMEOUT_ENV}=SECONDS sets how long to wait."
    )


def setup_device(device: str = "auto") -> torch.device:
    """Everything a training process does once: logging, the device, a GPU check, the torchrun
    process group and cuDNN/TF32 settings. Returns the device."""
    setup_logging()
    resolved = resolve_device(device)
    check_gpu(resolved)
    init_distributed(resolved)
    configure_backends(resolved)
    return resolved


def leave_process_group() -> None:
    """All ranks leave together: free what still holds the group, a barrier, then destroy it.

    The caller drops its DistributedDataParallel wrapper first. DDP sits in reference cycles, so
    only the cyclic garbage collector frees it, and with it the last reference to the gloo/NCCL
    process group. Left to interpreter shutdown, the group's worker threads are destroyed while
    still joinable and the process aborts ("terminate called without an active exception",
    exit -6), and torchrun reports the finished run as failed. The barrier makes every rank wait
    for rank 0's last writes (metrics.json) before any of them tears the group down.
    """
    if dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def rank() -> int:
    """This process's rank (from torchrun's RANK before/after the process group exists)."""
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Global rank 0 alone logs and writes the run directory (on its own host: other nodes may not see it)."""
    return rank() == 0


def local_rank() -> int:
    """This process's rank on its own node (torchrun's LOCAL_RANK; 0 for one process)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_local_main() -> bool:
    """The first process of this node: it alone builds what each node keeps for itself (the cache)."""
    return local_rank() == 0


def several_nodes() -> bool:
    """Whether this torchrun job spans several nodes (more processes than this node's own)."""
    return world_size() > int(os.environ.get("LOCAL_WORLD_SIZE", world_size()))


def from_main(value: Any) -> Any:
    """Rank 0's `value` on every rank (pickled, so keep it to what others cannot read themselves)."""
    if not dist.is_initialized():
        return value
    box = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gathered(value: Any) -> list[Any]:
    """Every rank's `value`, in rank order, on every rank ([value] for one process)."""
    if not dist.is_initialized():
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def on_every_rank(step: Callable[[], Any]) -> Any:
    """Run `step` on every rank; when it raises a SegkitError on any of them, every rank raises one.

    For what each node checks on its own disk (its data root): a rank that stopped alone would
    leave the others waiting at the next collective. The message names each node that failed.
    """
    if not dist.is_initialized():
        return step()
    try:
        value, failure = step(), None
    except SegkitError as e:
        value, failure = None, (type(e), str(e))
    failed = {place: f for place, f in gathered((node(), failure)) if f is not None}  # one line per node
    if failed:
        cls = next(iter(failed.values()))[0]
        message = " | ".join(f"{place}: {text}" for place, (_, text) in failed.items())
        try:
            error = cls(message)
        except TypeError:
            error = SegkitError(message)
        raise error
    return value


def main_decides(decide: Callable[[], Any]) -> Any:
    """Run `decide` on rank 0 only; every rank returns its result, or raises its SegkitError.

    For what only rank 0's host can see (the run directory): the others would otherwise decide
    differently, or wait at the next collective for a rank that has already stopped.
    """
    outcome: tuple[str, Any] = ("ok", None)
    if is_main():
        try:
            outcome = ("ok", decide())
        except SegkitError as e:
            outcome = ("error", (type(e), str(e)))
    kind, value = from_main(outcome)
    if kind == "error":
        cls, message = value
        try:
            error = cls(message)
        except TypeError:  # an error class built from other arguments: its message says it all
            error = SegkitError(message)
        raise error
    return value


def any_rank(flag: bool, device: torch.device) -> bool:
    """True if `flag` is true on any process (all ranks must agree on stopping)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def unsupported_gpu_message(capability: tuple[int, int], arch_list: list[str], name: str) -> str | None:
    """Explain a GPU this torch build has no kernels for (the P100, sm_60, on current Kaggle images).

    Args:
        capability: (major, minor) compute capability of the GPU.
        arch_list: `torch.cuda.get_arch_list()`, e.g. ["sm_75", "sm_80", "compute_90"].
        name: the GPU's name.

    Returns:
        The message, or None when torch can run on this GPU.
    """
    major, minor = capability
    sms = {int(a.split("_")[1]) for a in arch_list if a.startswith("sm_")}
    ptx = {int(a.split("_")[1]) for a in arch_list if a.startswith("compute_")}
    cc = major * 10 + minor
    # Same-major binary compatibility (sm_86 runs sm_80 kernels) and PTX JIT for newer GPUs.
    if not arch_list or any(s // 10 == major and s <= cc for s in sms) or any(p <= cc for p in ptx):
        return None
    return (
        f"GPU {name} has compute capability sm_{cc}, but this torch {torch.__version__} was built only for "
        f"{', '.join(sorted(arch_list))}: CUDA calls would fail with 'no kernel image is available'. "
        "Fixes: on Kaggle choose the 'GPU T4 x2' accelerator (Settings > Accelerator; the P100 is being "
        "retired), or install a torch build that still ships sm_60 kernels (e.g. a cu118/cu121 wheel of "
        "torch<=2.5), or run on CPU with --device cpu."
    )


def check_gpu(device: torch.device) -> None:
    """Refuse early, with the fix, a GPU the installed torch cannot run on."""
    if device.type != "cuda":
        return
    idx = device.index or 0
    msg = unsupported_gpu_message(
        torch.cuda.get_device_capability(idx), torch.cuda.get_arch_list(), torch.cuda.get_device_name(idx)
    )
    if msg:
        raise ConfigError(msg)
