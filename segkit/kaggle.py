"""Kaggle: environment preflight, session time budget, chained runs, and the kernel bundle.

In a kernel: data is found under /kaggle/input (`segkit.data.discover`), outputs go to
/kaggle/working, the time budget defaults to what keeps a run inside the 12-hour session, and a
previous kernel's output attached as input (kernel_sources) is resumed from its last.pth.

On your machine: `segkit kaggle bundle --out runs/kaggle-bundle` writes everything a push needs
(see kaggle/README.md): the 02_train notebook with parameters injected, kernel-metadata.json,
and segkit as a wheel in a dataset folder so the kernel installs it without internet.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from collections import deque
from pathlib import Path
from typing import Any

from segkit.errors import ConfigError, SegkitError

log = logging.getLogger("segkit")

RUN_TYPE_ENV = "KAGGLE_KERNEL_RUN_TYPE"  # set by Kaggle in every kernel ("Interactive" or "Batch")
WORKING_ENV = "SEGKIT_KAGGLE_WORKING"  # overrides /kaggle/working (tests)
SESSION_HOURS_ENV = "SEGKIT_KAGGLE_SESSION_HOURS"  # overrides the 12 h limit (TPU sessions: 9)
SESSION_HOURS = 12.0  # Kaggle's limit for one CPU/GPU session
SAFETY_MARGIN_MINUTES = 20.0  # final evaluation + checkpoint + output upload after the budget
MIN_BUDGET_MINUTES = 1.0  # never 0: 0 means "no budget" to TrainConfig
WHEEL_DATASET = "segkit-wheel"  # dataset slug of the segkit wheel, <username>/segkit-wheel
DEFAULT_TITLE = "segkit cityscapes train"
DEFAULT_MACHINE_SHAPE = "NvidiaTeslaT4"
CODE_FILE = "02_train.ipynb"
# Copied from a previous kernel's run into this one; last.pth last, so a half copy never resumes.
CHAINED_FILES = ("config.json", "history.csv", "best_model.pth", "class_counts.json")
CHAINED_DIRS = ("tb",)
_SEARCH_DEPTH = 6  # /kaggle/input/notebooks/<owner>/<slug>/runs/<name>/last.pth
_MAX_DIRS = 5000
_SKIP_DIRS = {"leftImg8bit", "gtFine", "gtCoarse", "__pycache__"}  # data, not runs: don't walk them
# Values that must never end up in a bundle (checked after writing it).
SECRET_ENV = ("KAGGLE_KEY", "NGROK_AUTHTOKEN", "NGROK_API_KEY", "SEGKIT_DASHBOARD_AUTH")
INSTALL_CELL = '''\
# Kaggle kernels run without internet: install segkit from the attached segkit-wheel dataset.
import glob, os, subprocess, sys
if os.path.isdir("/kaggle/input"):
    wheels = sorted(glob.glob("/kaggle/input/segkit-wheel/*.whl")
                    + glob.glob("/kaggle/input/datasets/*/segkit-wheel/*.whl"))
    assert wheels, "attach the segkit-wheel dataset to this notebook (see kaggle/README.md)"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--find-links",
                    os.path.dirname(wheels[-1]), "segkit"], check=True)'''


class BundleError(SegkitError):
    """The kernel bundle cannot be written as asked; the message says how to fix it."""


# ----------------------------------------------------------------------------- where we run


def on_kaggle() -> bool:
    """True inside a Kaggle kernel (Kaggle sets $KAGGLE_KERNEL_RUN_TYPE)."""
    return bool(os.environ.get(RUN_TYPE_ENV))


def working_dir() -> Path:
    """/kaggle/working in a kernel (what Kaggle keeps as output), else the current directory."""
    if os.environ.get(WORKING_ENV):
        return Path(os.environ[WORKING_ENV])
    return Path("/kaggle/working") if on_kaggle() else Path.cwd()


def session_minutes() -> float:
    """The session limit in minutes (12 h, or $SEGKIT_KAGGLE_SESSION_HOURS)."""
    hours = os.environ.get(SESSION_HOURS_ENV)
    try:
        return 60.0 * (float(hours) if hours else SESSION_HOURS)
    except ValueError:
        raise ConfigError(f"${SESSION_HOURS_ENV} must be a number of hours, e.g. 9; got {hours!r}") from None


def session_elapsed_minutes() -> float | None:
    """Minutes this session has run, approximated by the age of the container's PID 1.

    A Kaggle kernel is a fresh container, so its PID 1 starts with the session; if /proc/1 is
    unreadable, this process's own start is used (a papermill kernel starts with the session too).
    """
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    for pid in ("1", "self"):
        try:
            fields_after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            started = int(fields_after_name[19]) / ticks  # field 22 of stat: start time in ticks
        except (OSError, ValueError, IndexError):
            continue
        return max(0.0, (uptime - started) / 60.0)
    return None


def time_budget_for(elapsed: float, session: float = SESSION_HOURS * 60, margin: float = SAFETY_MARGIN_MINUTES) -> float:
    """Minutes of training that end `margin` minutes before the session limit.

    Args:
        elapsed: Minutes the session has already run.
        session: The session limit in minutes.
        margin: Minutes kept for the final evaluation, checkpoint and output upload.

    Returns:
        At least MIN_BUDGET_MINUTES. An `elapsed` beyond the session (not a fresh Kaggle
        container, e.g. a long-lived machine) is ignored: the full session minus the margin.
    """
    if elapsed > session:
        log.warning("session age %.0f min exceeds the %.0f min limit: not a fresh Kaggle container; "
                    "assuming the session just started", elapsed, session)
        elapsed = 0.0
    return max(MIN_BUDGET_MINUTES, session - margin - elapsed)


def default_time_budget() -> float | None:
    """On Kaggle with no budget given: minutes that keep training inside the session; else None."""
    if not on_kaggle():
        return None
    budget = time_budget_for(session_elapsed_minutes() or 0.0, session_minutes())
    log.info("Kaggle: time budget %.0f min (session limit %.0f min, %.0f min margin)",
             budget, session_minutes(), SAFETY_MARGIN_MINUTES)
    return budget


# ----------------------------------------------------------------------------- preflight


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


# ----------------------------------------------------------------------------- chained runs


def find_resume_checkpoint(kaggle_input: Path | None = None, run_name: str | None = None) -> Path | None:
    """The last.pth of a previous kernel's output attached as input, if any.

    Args:
        kaggle_input: The input mount; default `segkit.data.discover.kaggle_input_root()`.
        run_name: Prefer a last.pth whose run directory has this name.

    Returns:
        The chosen last.pth (same run name first, then the newest), or None.
    """
    if kaggle_input is None:
        from segkit.data.discover import kaggle_input_root

        kaggle_input = kaggle_input_root()
    found = _find_files(Path(kaggle_input), "last.pth")
    if not found:
        return None
    found.sort(key=lambda p: (p.parent.name == run_name, p.stat().st_mtime), reverse=True)
    if len(found) > 1:
        log.info("several last.pth under %s; resuming from %s", kaggle_input, found[0])
    return found[0]


def _find_files(root: Path, name: str) -> list[Path]:
    """Breadth-first search for files called `name`, bounded in depth and directory count."""
    found, queue, visited = [], deque([(root, 0)]), 0
    while queue and visited < _MAX_DIRS:
        path, depth = queue.popleft()
        visited += 1
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for entry in entries:
            if entry.name == name and entry.is_file():
                found.append(Path(entry.path))
            elif depth < _SEARCH_DEPTH and entry.is_dir() and entry.name not in _SKIP_DIRS:
                queue.append((Path(entry.path), depth + 1))
    return found


def prepare_chained_resume(run_dir: Path) -> bool:
    """Copy a previous kernel's run (attached as input) into `run_dir` so `resume=True` continues it.

    Args:
        run_dir: This kernel's run directory (e.g. /kaggle/working/runs/train).

    Returns:
        True when a last.pth was copied; False when run_dir already has one or none was found.
        Files already in run_dir are never overwritten.
    """
    run_dir = Path(run_dir)
    if (run_dir / "last.pth").exists():
        return False
    checkpoint = find_resume_checkpoint(run_name=run_dir.name)
    if checkpoint is None:
        log.info("no previous run (last.pth) under the Kaggle inputs; starting fresh in %s", run_dir)
        return False
    source = checkpoint.parent
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in CHAINED_FILES:
        if (source / name).is_file() and not (run_dir / name).exists():
            shutil.copy2(source / name, run_dir / name)
    for name in CHAINED_DIRS:
        if (source / name).is_dir():
            shutil.copytree(source / name, run_dir / name, dirs_exist_ok=True)
    partial = run_dir / ".last.pth.copying"
    shutil.copy2(checkpoint, partial)
    os.replace(partial, run_dir / "last.pth")
    log.info("chained run: copied the previous kernel's run %s into %s; resuming", source, run_dir)
    return True


# ----------------------------------------------------------------------------- bundle: names


def slugify(title: str) -> str:
    """Kaggle's slug of a title: ASCII, lowercase, runs of other characters -> '-', trimmed."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")


def check_title(title: str) -> str:
    """Validate a kernel title (5-50 characters, slug of at least 5) and return its slug."""
    slug = slugify(title)
    if not 5 <= len(title.strip()) <= 50 or len(slug) < 5:
        raise BundleError(
            f"kernel title {title!r} must have 5-50 characters and a slug (lowercase letters/digits, '-' between) "
            f"of at least 5; its slug is {slug!r}. Try e.g. --title 'segkit {title.strip() or 'cityscapes'} train'"
        )
    return slug


def check_ref(ref: str, what: str) -> str:
    """`owner/slug` references (datasets, kernels): exactly one '/', both parts non-empty."""
    owner, sep, slug = ref.partition("/")
    if not sep or not owner or not slug or "/" in slug or slug != slugify(slug):
        raise BundleError(f"{what} {ref!r} must look like owner/slug (as in kaggle.com/.../owner/slug), "
                          f"lowercase with '-' between words, e.g. {owner or 'someone'}/{slugify(slug or ref) or 'name'}")
    return ref


def kaggle_username(explicit: str | None = None) -> str:
    """--username, else $KAGGLE_USERNAME, else the username field of kaggle.json (the key is not read)."""
    if explicit:
        return explicit
    if os.environ.get("KAGGLE_USERNAME"):
        return os.environ["KAGGLE_USERNAME"]
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    path = config_dir / "kaggle.json"
    try:
        username = json.loads(path.read_text()).get("username")
    except (OSError, ValueError, AttributeError):
        username = None
    if not username:
        raise BundleError(f"no Kaggle username: pass --username NAME, set KAGGLE_USERNAME, or create {path} "
                          "(kaggle.com > Settings > API > Create New Token)")
    return str(username)


# ----------------------------------------------------------------------------- bundle: parts


def repo_root() -> Path:
    """The segkit source checkout (pyproject.toml, notebooks/, kaggle/); a wheel install has none."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file() or not (root / "kaggle").is_dir():
        raise BundleError(f"the bundle is built from a segkit source checkout, but {root} has no pyproject.toml "
                          "and kaggle/: run it from a clone of the repository (pip install -e .)")
    return root


def load_params(path: Path) -> dict[str, Any]:
    """Notebook parameters from a .json or .yaml file (a mapping of name -> literal)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise BundleError(f"--params {path}: cannot read it ({e.strerror})") from None
    params = _parse_params(text, path)
    if not isinstance(params, dict):
        raise BundleError(f"--params {path} must hold a mapping name: value, found {type(params).__name__}")
    return params


def _parse_params(text: str, path: Path) -> Any:
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise BundleError(f"--params {path} is not valid YAML: {e}") from None
    try:
        return json.loads(text)
    except ValueError as e:
        raise BundleError(f"--params {path} is not valid JSON ({e}); use .yaml/.yml for YAML") from None


def notebook_parameters(notebook: Path) -> set[str]:
    """The names assigned in the notebook's `parameters` cell.

    Read with `ast` rather than `papermill.inspect_notebook`, whose line parser skips lines
    with a ';' in their comment (and would make valid names look unknown).
    """
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        raise BundleError(f"{notebook} has no cell tagged 'parameters' (papermill needs one to inject values)")
    try:
        tree = ast.parse(cell.source)
    except SyntaxError as e:
        raise BundleError(f"the parameters cell of {notebook} is not valid Python: {e}") from None
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def check_params(params: dict[str, Any], known: set[str], notebook: Path) -> None:
    """Unknown names fail (papermill itself would only warn and the kernel would ignore them)."""
    for name in params:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise BundleError(f"unknown notebook parameter {name!r} for {notebook.name}{hint} "
                              f"Known: {', '.join(sorted(known))}")


def prepare_notebook(source: Path, target: Path, params: dict[str, Any]) -> None:
    """papermill --prepare-only (parameters injected, nothing run), then the offline install cell."""
    import nbformat
    import papermill

    papermill.execute_notebook(str(source), str(target), parameters=params, prepare_only=True,
                               progress_bar=False, log_output=False)
    nb = nbformat.read(str(target), as_version=4)
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    cell = nbformat.v4.new_code_cell(INSTALL_CELL, metadata={"tags": ["segkit-install"]})
    nb.cells.insert(first_code, cell)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    # Local paths of the machine that built the bundle are no business of the kernel.
    for key in ("input_path", "output_path"):
        nb.metadata.get("papermill", {}).pop(key, None)
    nbformat.write(nb, str(target))


def build_wheel(dest: Path, root: Path | None = None) -> Path:
    """A segkit wheel built offline (`pip wheel --no-deps --no-build-isolation --no-index`).

    The sources are copied to a temporary folder first, so the checkout gets no build/ or
    egg-info/ and a stale build can't leak into the wheel.
    """
    root = root or repo_root()
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("segkit-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="segkit-wheel-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(root / "segkit", src / "segkit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, src / name)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
               "--disable-pip-version-check", "-q", "-w", str(dest), str(src)]
        result = subprocess.run(cmd, check=False, capture_output=True, text=True, env=_env_without_secrets())
    wheels = sorted(dest.glob("segkit-*.whl"))
    if result.returncode != 0 or not wheels:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BundleError(f"building the segkit wheel failed (exit {result.returncode}):\n{tail}\n"
                          "It needs setuptools in this environment: pip install 'setuptools>=68' wheel")
    return wheels[-1]


def _env_without_secrets() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SECRET_ENV}


def _template(root: Path, name: str) -> dict[str, Any]:
    path = root / "kaggle" / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BundleError(f"template {path} is missing or not JSON ({e}); restore it from git") from None


def validate_kernel_metadata(meta: dict[str, Any], folder: Path) -> list[str]:
    """What `kaggle kernels push` would reject or warn about (empty list = valid).

    Args:
        meta: The kernel-metadata.json content.
        folder: The kernel folder (code_file is relative to it).
    """
    problems = []
    owner, _, slug = str(meta.get("id", "")).partition("/")
    title = str(meta.get("title", ""))
    if not owner or not slug or len(slug) < 5:
        problems.append(f"id {meta.get('id')!r} must be owner/slug with a slug of at least 5 characters")
    if not 5 <= len(title) <= 50 or slugify(title) != slug:
        problems.append(f"title {title!r} must have 5-50 characters and slugify to the id's slug {slug!r}")
    if not (folder / str(meta.get("code_file", ""))).is_file():
        problems.append(f"code_file {meta.get('code_file')!r} not found in {folder}")
    expected = {"language": "python", "kernel_type": "notebook"}
    problems += [f"{k} must be {v!r}" for k, v in expected.items() if meta.get(k) != v]
    problems += [f"{k} must be true/false" for k in ("is_private", "enable_gpu", "enable_internet")
                 if not isinstance(meta.get(k), bool)]
    for key in ("dataset_sources", "kernel_sources"):
        refs = meta.get(key, [])
        problems += [f"{key}: {r!r} is not owner/slug" for r in refs if str(r).count("/") != 1]
    return problems


def _check_no_secrets(out: Path) -> None:
    """A bundle is uploaded to Kaggle: refuse (and remove) it if any secret value ended up inside."""
    values = [os.environ[k] for k in SECRET_ENV if len(os.environ.get(k, "")) >= 6]
    if not values:
        return
    for path in out.rglob("*"):
        if path.is_file() and any(v.encode() in path.read_bytes() for v in values):
            shutil.rmtree(out / "kernel", ignore_errors=True)
            raise BundleError(f"a secret from the environment ended up in {path}; the bundle was removed. "
                              "Secrets belong in Kaggle Secrets, never in parameters or notebooks")


# ----------------------------------------------------------------------------- bundle


def bundle(
    out: Path,
    params: dict[str, Any] | None = None,
    title: str = DEFAULT_TITLE,
    datasets: list[str] | None = None,
    resume_from: str | None = None,
    username: str | None = None,
    enable_gpu: bool = True,
    enable_internet: bool = False,
    machine_shape: str = DEFAULT_MACHINE_SHAPE,
    notebook: Path | None = None,
) -> Path:
    """Write a Kaggle kernel push folder and the segkit wheel dataset folder.

    Args:
        out: Output folder; gets `kernel/` (02_train.ipynb + kernel-metadata.json) and
            `segkit-wheel/` (the wheel + dataset-metadata.json).
        params: Notebook parameters to inject (names must exist in the parameters cell).
        title: Kernel title; its slug is the kernel id's slug.
        datasets: Cityscapes dataset references (owner/slug) to attach.
        resume_from: A previous kernel (owner/slug) whose output is attached and resumed.
        username: Kaggle username (else $KAGGLE_USERNAME or kaggle.json).
        enable_gpu: Request a GPU.
        enable_internet: Internet in the kernel (not needed: segkit installs offline).
        machine_shape: Kaggle machine shape, e.g. NvidiaTeslaT4 (T4 x2).
        notebook: The notebook to bundle; default the repository's notebooks/02_train.ipynb.

    Returns:
        `out`.
    """
    user, slug = kaggle_username(username), check_title(title)
    datasets = [check_ref(d, "dataset") for d in (datasets or [])]
    kernel_sources = [check_ref(resume_from, "--resume-from kernel")] if resume_from else []
    root = repo_root()
    notebook = Path(notebook) if notebook else root / "notebooks" / CODE_FILE
    if not notebook.is_file():
        raise BundleError(f"notebook {notebook} not found; pass notebook= / --notebook")
    params = _bundle_params(notebook, dict(params or {}), bool(resume_from))
    if not datasets:
        log.warning("no --datasets: the kernel will find no Cityscapes data and train on SYNTHETIC data")
    out = Path(out)
    kernel_dir, wheel_dir = out / "kernel", out / WHEEL_DATASET
    kernel_dir.mkdir(parents=True, exist_ok=True)
    prepare_notebook(notebook, kernel_dir / CODE_FILE, params)
    meta = {**_template(root, "kernel-metadata.template.json"), "id": f"{user}/{slug}", "title": title.strip(),
            "code_file": CODE_FILE, "enable_gpu": enable_gpu, "enable_internet": enable_internet,
            "machine_shape": machine_shape, "dataset_sources": datasets + [f"{user}/{WHEEL_DATASET}"],
            "kernel_sources": kernel_sources}
    problems = validate_kernel_metadata(meta, kernel_dir)
    if problems:
        raise BundleError("kernel-metadata.json would be rejected: " + "; ".join(problems))
    _write_json(kernel_dir / "kernel-metadata.json", meta)
    build_wheel(wheel_dir, root)
    dataset_meta = {**_template(root, "dataset-metadata.template.json"), "id": f"{user}/{WHEEL_DATASET}"}
    _write_json(wheel_dir / "dataset-metadata.json", dataset_meta)
    _check_no_secrets(out)
    return out


def _bundle_params(notebook: Path, params: dict[str, Any], chained: bool) -> dict[str, Any]:
    known = notebook_parameters(notebook)
    check_params(params, known, notebook)
    if chained and "resume" in known:
        params.setdefault("resume", True)  # the chained kernel continues the attached run
    elif chained:
        log.warning("%s has no 'resume' parameter: the chained kernel cannot resume", notebook.name)
    return params


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


# ----------------------------------------------------------------------------- CLI


def register_cli(sub: Any) -> None:
    """`segkit kaggle preflight` and `segkit kaggle bundle --out DIR ...`."""
    p = sub.add_parser("kaggle", help="Kaggle: environment preflight and kernel bundle", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    ksub = p.add_subparsers(dest="kaggle_command", required=True, metavar="{preflight,bundle}")
    pre = ksub.add_parser("preflight", help="GPU/torch/CUDA, CPU, RAM, disk, session time; problems with fixes")
    pre.add_argument("--json", action="store_true", help="print the report as JSON")
    pre.set_defaults(func=cmd_preflight)
    b = ksub.add_parser("bundle", help="write a kernel push folder + the segkit wheel dataset folder")
    b.add_argument("--out", type=Path, default=Path("runs/kaggle-bundle"), help="output folder (default: runs/kaggle-bundle)")
    b.add_argument("--params", type=Path, help="notebook parameters, .json or .yaml (names of 02_train's parameters cell)")
    b.add_argument("--title", default=DEFAULT_TITLE, help=f"kernel title, 5-50 characters (default: {DEFAULT_TITLE!r})")
    b.add_argument("--datasets", nargs="*", default=[], metavar="OWNER/SLUG", help="Cityscapes datasets to attach")
    b.add_argument("--resume-from", metavar="OWNER/KERNEL", help="chain: attach this kernel's output and resume it")
    b.add_argument("--username", help="Kaggle username (default: $KAGGLE_USERNAME or ~/.kaggle/kaggle.json)")
    b.add_argument("--no-gpu", dest="enable_gpu", action="store_false", help="CPU kernel")
    b.add_argument("--internet", dest="enable_internet", action="store_true", help="internet on in the kernel")
    b.add_argument("--machine-shape", default=DEFAULT_MACHINE_SHAPE, help=f"default: {DEFAULT_MACHINE_SHAPE} (T4 x2)")
    b.add_argument("--notebook", type=Path, help="notebook to bundle (default: notebooks/02_train.ipynb)")
    b.set_defaults(func=cmd_bundle)


def cmd_preflight(args: argparse.Namespace) -> int:
    """Exit 0 when nothing is wrong, 1 when a problem was found (printed with its fix)."""
    report = preflight()
    print(json.dumps(report, indent=2) if args.json else format_preflight(report))
    return 1 if report["problems"] else 0


def cmd_bundle(args: argparse.Namespace) -> int:
    """Write the bundle and print the kaggle commands that upload it."""
    params = load_params(args.params) if args.params else {}
    out = bundle(args.out, params, args.title, args.datasets, args.resume_from, args.username,
                 args.enable_gpu, args.enable_internet, args.machine_shape, args.notebook)
    meta = json.loads((out / "kernel" / "kernel-metadata.json").read_text())
    print(f"wrote {out / 'kernel'} (kernel {meta['id']}) and {out / WHEEL_DATASET}. Next:\n"
          f"  kaggle datasets create -p {out / WHEEL_DATASET}   (later: kaggle datasets version -p "
          f"{out / WHEEL_DATASET} -m 'segkit update')\n"
          f"  kaggle kernels push -p {out / 'kernel'}\n"
          f"  kaggle kernels status {meta['id']}\n"
          f"  kaggle kernels output {meta['id']} -p runs/kaggle-output")
    return 0
