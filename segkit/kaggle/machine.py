"""`preflight`: what this machine offers for training (GPU, torch/CUDA, CPU, RAM, disk, session
time), with the problems found and their fixes."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path
from typing import Any

from segkit.kaggle.session import SAFETY_MARGIN_MINUTES, session_elapsed_minutes, session_minutes
from segkit.kaggle_env import RUN_TYPE_ENV, on_kaggle, working_dir


def preflight() -> dict[str, Any]:
    """What this machine offers for training; problems are reported, never raised.

    Returns:
        A JSON-serialisable dict: on_kaggle, run_type, python, segkit, torch, cuda, arch_list,
        gpus (name, capability, memory_gb, problem), cpu_count, ram_gb, ram_available_gb,
        disk_path, disk_free_gb, time_left_minutes (None off Kaggle), problems (list of str).
    """
    import torch

    import segkit

    arch_list = list(torch.cuda.get_arch_list()) if torch.version.cuda else []
    report: dict[str, Any] = {
        "on_kaggle": on_kaggle(), "run_type": os.environ.get(RUN_TYPE_ENV),
        "python": platform.python_version(), "segkit": segkit.__version__,
        "torch": torch.__version__, "cuda": torch.version.cuda, "arch_list": arch_list,
        "gpus": _gpus(arch_list), "cpu_count": _cpu_count(), **_memory_gb(), **_disk(working_dir()),
        "time_left_minutes": _time_left(),
    }
    report["problems"] = _problems(report)
    return report


def _gpus(arch_list: list[str]) -> list[dict[str, Any]]:
    """Each visible GPU; a GPU this torch cannot drive gets the explanation with the remedies."""
    import torch

    from segkit.runtime import unsupported_gpu_message

    gpus = []
    for i in range(torch.cuda.device_count()):
        try:
            props = torch.cuda.get_device_properties(i)
        except RuntimeError as e:  # a broken driver must not crash a preflight
            gpus.append({"index": i, "name": "?", "problem": f"cannot query GPU {i}: {e}"})
            continue
        capability = (props.major, props.minor)
        gpus.append({
            "index": i, "name": props.name, "capability": f"{props.major}.{props.minor}",
            "memory_gb": round(props.total_memory / 2**30, 1),
            "problem": unsupported_gpu_message(capability, arch_list, props.name),
        })
    return gpus


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _memory_gb() -> dict[str, float | None]:
    """RAM from /proc/meminfo, capped by a cgroup limit (containers see the host's RAM there)."""
    info: dict[str, float] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info[key] = float(value.split()[0]) / 2**20  # kB -> GB
    except (OSError, ValueError, IndexError):
        return {"ram_gb": None, "ram_available_gb": None}
    total, available = info.get("MemTotal"), info.get("MemAvailable")
    limit = _cgroup_memory_limit_gb()
    if limit is not None and total is not None and limit < total:
        total, available = limit, min(available or limit, limit)
    return {"ram_gb": _round(total), "ram_available_gb": _round(available)}


def _cgroup_memory_limit_gb() -> float | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text) / 2**30
    return None


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _disk(path: Path) -> dict[str, Any]:
    try:
        free = shutil.disk_usage(path).free / 2**30
    except OSError:
        return {"disk_path": str(path), "disk_free_gb": None}
    return {"disk_path": str(path), "disk_free_gb": round(free, 1)}


def _time_left() -> float | None:
    if not on_kaggle():
        return None
    elapsed = session_elapsed_minutes()
    return None if elapsed is None else round(max(0.0, session_minutes() - elapsed), 1)


def _problems(report: dict[str, Any]) -> list[str]:
    problems = [g["problem"] for g in report["gpus"] if g.get("problem")]
    if report["on_kaggle"] and not report["gpus"]:
        problems.append("no GPU visible: training would run on CPU. In the notebook editor choose "
                        "Settings > Accelerator > GPU T4 x2 (kernel-metadata.json: enable_gpu true)")
    if report["disk_free_gb"] is not None and report["disk_free_gb"] < 2:
        problems.append(f"only {report['disk_free_gb']} GB free in {report['disk_path']}: checkpoints may not fit; "
                        "delete old runs")
    left = report["time_left_minutes"]
    if left is not None and left < SAFETY_MARGIN_MINUTES + 10:
        problems.append(f"only {left:.0f} min left in this session: too little to train; start a new session")
    return problems


def format_preflight(report: dict[str, Any]) -> str:
    """The preflight report as a few readable lines (problems last, with their fixes)."""
    where = f"Kaggle ({report['run_type']})" if report["on_kaggle"] else "not Kaggle"
    arch = ", ".join(report["arch_list"]) or "CPU-only build"
    lines = [f"segkit {report['segkit']} | python {report['python']} | {where}",
             f"torch {report['torch']} | CUDA {report['cuda'] or 'none'} | built for: {arch}"]
    for g in report["gpus"]:
        status = "NOT SUPPORTED by this torch" if g.get("problem") else "ok"
        lines.append(f"GPU {g['index']}: {g['name']} | sm_{g.get('capability', '?').replace('.', '')} | "
                     f"{g.get('memory_gb', '?')} GB | {status}")
    if not report["gpus"]:
        lines.append("GPU: none (training runs on CPU)")
    lines.append(f"CPU: {report['cpu_count']} cores | RAM: {report['ram_gb']} GB total, "
                 f"{report['ram_available_gb']} GB available | disk: {report['disk_free_gb']} GB free in "
                 f"{report['disk_path']}")
    left = report["time_left_minutes"]
    lines.append("session: " + (f"about {left:.0f} min left of {session_minutes():.0f} (estimated)"
                                if left is not None else "no time limit known"))
    lines += [f"PROBLEM: {p}" for p in report["problems"]]
    return "\n".join(lines)
