"""`preflight`: what this machine offers for training (GPU, torch/CUDA, CPU, RAM, disk, session
time and, when asked, the pretrained encoder weights), with the problems found and their fixes."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path
from typing import Any

from segkit.config import TrainConfig
from segkit.dependencies import albumentations_problem
from segkit.errors import ConfigError, SegkitError
from segkit.kaggle.session import SAFETY_MARGIN_MINUTES, session_elapsed_minutes, session_minutes
from segkit.kaggle_env import RUN_TYPE_ENV, on_kaggle, working_dir
from segkit.model_choice import ModelChoice
from segkit.recipes import preset_values


def preflight(
    encoder: str | None = None, encoder_weights: str | None = None, preset: str | None = None
) -> dict[str, Any]:
    """What this machine offers for training; problems are reported, never raised.

    Args:
        encoder: Check that this encoder's pretrained weights are reachable (found on this
            machine, or downloadable); None with no preset: no check.
        encoder_weights: The weights to check: "imagenet" (TrainConfig's default), another
            variant, or a file; overrides the preset's.
        preset: Take encoder and encoder_weights from this preset (`segkit.recipes.PRESETS`).

    Returns:
        A JSON-serialisable dict: on_kaggle, run_type, python, segkit, torch, cuda, arch_list,
        gpus (name, capability, memory_gb, problem), cpu_count, ram_gb, ram_available_gb,
        disk_path, disk_free_gb, time_left_minutes (None off Kaggle), weights (None unless
        asked; else encoder, encoder_weights, reachable (None: no pretrained encoder), detail),
        albumentations (None, or what is wrong: AlbumentationsX, a release outside the MIT
        line segkit needs), problems (list of str).

    Raises:
        ConfigError: An unknown preset, or encoder_weights without an encoder to check.
    """
    import torch

    import segkit

    arch_list = list(torch.cuda.get_arch_list()) if torch.version.cuda else []
    report: dict[str, Any] = {
        "on_kaggle": on_kaggle(),
        "run_type": os.environ.get(RUN_TYPE_ENV),
        "python": platform.python_version(),
        "segkit": segkit.__version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "arch_list": arch_list,
        "gpus": _gpus(arch_list),
        "cpu_count": _cpu_count(),
        **_memory_gb(),
        **_disk(working_dir()),
        "time_left_minutes": _time_left(),
        "weights": _weights(encoder, encoder_weights, preset),
        "albumentations": albumentations_problem(),
    }
    report["problems"] = _problems(report)
    return report


def _requested_weights(encoder: str | None, encoder_weights: str | None, preset: str | None) -> ModelChoice | None:
    """What training would build, for its weights: the arguments over the preset's fields over
    TrainConfig's defaults (as `segkit train` resolves them); None when nothing was asked."""
    given = {k: v for k, v in (("encoder", encoder), ("encoder_weights", encoder_weights)) if v is not None}
    if not given and not preset:
        return None
    cfg = TrainConfig(**preset_values({"preset": preset or "", **given}, set(given) | {"preset"}))
    if encoder_weights is not None and not cfg.encoder:
        raise ConfigError(
            f"--encoder-weights {encoder_weights} needs an encoder to check: add --encoder NAME "
            "(e.g. resnet34) or a --preset that has one"
        )
    return ModelChoice.from_config(cfg, set(given))


def _weights(encoder: str | None, encoder_weights: str | None, preset: str | None) -> dict[str, Any] | None:
    """Whether training will get the pretrained encoder weights; never downloads."""
    choice = _requested_weights(encoder, encoder_weights, preset)
    if choice is None:
        return None
    report = {
        "encoder": choice.encoder,
        "encoder_weights": choice.encoder_weights or "none",
        "reachable": None,
        "detail": "no pretrained encoder, random initialisation",
    }
    if not choice.pretrained:
        return report
    from segkit.models.weights import reachability  # imports smp and timm: only when asked

    try:
        report["reachable"], report["detail"] = reachability(choice.encoder, choice.encoder_weights)
    except SegkitError as e:  # an unknown encoder or variant would stop training too: report it
        report["reachable"], report["detail"] = False, str(e)
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
        gpus.append(
            {
                "index": i,
                "name": props.name,
                "capability": f"{props.major}.{props.minor}",
                "memory_gb": round(props.total_memory / 2**30, 1),
                "problem": unsupported_gpu_message(capability, arch_list, props.name),
            }
        )
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
        problems.append(
            "no GPU visible: training would run on CPU. In the notebook editor choose "
            "Settings > Accelerator > GPU T4 x2 (kernel-metadata.json: enable_gpu true)"
        )
    if report["disk_free_gb"] is not None and report["disk_free_gb"] < 2:
        problems.append(
            f"only {report['disk_free_gb']} GB free in {report['disk_path']}: checkpoints may not fit; delete old runs"
        )
    left = report["time_left_minutes"]
    if left is not None and left < SAFETY_MARGIN_MINUTES + 10:
        problems.append(f"only {left:.0f} min left in this session: too little to train; start a new session")
    if report.get("albumentations"):  # absent from reports made before the check existed
        problems.append(report["albumentations"])
    weights = report.get("weights")
    if weights and weights["reachable"] is False:
        problems.append(f"pretrained weights {weights['encoder']}/{weights['encoder_weights']}: {weights['detail']}")
    return problems


def format_preflight(report: dict[str, Any]) -> str:
    """The preflight report as a few readable lines (problems last, with their fixes)."""
    where = f"Kaggle ({report['run_type']})" if report["on_kaggle"] else "not Kaggle"
    arch = ", ".join(report["arch_list"]) or "CPU-only build"
    lines = [
        f"segkit {report['segkit']} | python {report['python']} | {where}",
        f"torch {report['torch']} | CUDA {report['cuda'] or 'none'} | built for: {arch}",
    ]
    for g in report["gpus"]:
        status = "NOT SUPPORTED by this torch" if g.get("problem") else "ok"
        lines.append(
            f"GPU {g['index']}: {g['name']} | sm_{g.get('capability', '?').replace('.', '')} | "
            f"{g.get('memory_gb', '?')} GB | {status}"
        )
    if not report["gpus"]:
        lines.append("GPU: none (training runs on CPU)")
    lines.append(
        f"CPU: {report['cpu_count']} cores | RAM: {report['ram_gb']} GB total, "
        f"{report['ram_available_gb']} GB available | disk: {report['disk_free_gb']} GB free in "
        f"{report['disk_path']}"
    )
    left = report["time_left_minutes"]
    lines.append(
        "session: "
        + (
            f"about {left:.0f} min left of {session_minutes():.0f} (estimated)"
            if left is not None
            else "no time limit known"
        )
    )
    if report.get("weights"):  # absent from reports made before the check existed
        lines.append(_weights_line(report["weights"]))
    lines += [f"PROBLEM: {p}" for p in report["problems"]]
    return "\n".join(lines)


def _weights_line(weights: dict[str, Any]) -> str:
    """ "pretrained weights resnet50/imagenet: found at ... | will download ... | NOT reachable"."""
    if weights["reachable"] is None:
        return f"pretrained weights: none ({weights['detail']})"
    detail = weights["detail"]
    if weights["reachable"] is False:
        status = "NOT reachable (see PROBLEM below)"
    elif detail.startswith("found: "):  # reachability's wording for a file on this machine
        status = "found at " + detail.removeprefix("found: ")
    else:  # Kaggle cannot tell a kernel whether its internet is on, so say what the download needs
        status = (
            detail.removeprefix("not on disk; ") + " (needs internet: Kaggle Settings > Internet on; "
            "or attach the weights, kaggle/README.md)"
        )
    return f"pretrained weights {weights['encoder']}/{weights['encoder_weights']}: {status}"
