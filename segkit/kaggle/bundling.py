"""The kernel bundle: the 02_train notebook with parameters injected and an offline install cell,
kernel-metadata.json, and a dataset folder with the wheels a kernel without internet needs and
Kaggle's image lacks: segkit's and segmentation_models_pytorch's (never torch, which Kaggle has)."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from segkit import progress
from segkit.config import BundleConfig
from segkit.credentials import SECRET_ENV
from segkit.errors import SegkitError, did_you_mean
from segkit.files import write_json
from segkit.kaggle import auth

log = logging.getLogger("segkit")

WHEEL_DATASET = "segkit-wheel"  # dataset slug of the wheels, <username>/segkit-wheel
SMP_DIST = "segmentation-models-pytorch"  # segkit needs it, Kaggle's image lacks it: its wheel travels too
DEFAULT_TITLE = BundleConfig.title
DEFAULT_MACHINE_SHAPE = BundleConfig.machine_shape  # GPU T4 x2
CODE_FILE = "02_train.ipynb"
INSTALL_CELL = """\
# Kaggle kernels may run without internet: install segkit and segmentation_models_pytorch from the
# attached segkit-wheel dataset. --no-index: pip can install only the wheels of that folder, so
# torch, torchvision and the rest stay Kaggle's own (they already satisfy segkit's requirements).
import glob, os, subprocess, sys
kaggle_input = os.environ.get("SEGKIT_KAGGLE_INPUT", "/kaggle/input")
if os.path.isdir(kaggle_input):
    wheels = sorted(glob.glob(f"{kaggle_input}/segkit-wheel/segkit-*.whl")
                    + glob.glob(f"{kaggle_input}/datasets/*/segkit-wheel/segkit-*.whl"))
    assert wheels, "attach the segkit-wheel dataset to this notebook (see kaggle/README.md)"
    wheel_dir = os.path.dirname(wheels[-1])
    assert glob.glob(f"{wheel_dir}/segmentation_models_pytorch-*.whl"), (
        f"{wheel_dir} has no segmentation_models_pytorch wheel: run segkit kaggle bundle again and "
        "upload it with kaggle datasets version (see kaggle/README.md)")
    print("installing", ", ".join(os.path.basename(w) for w in sorted(glob.glob(f"{wheel_dir}/*.whl"))),
          "from", wheel_dir)  # pip -q: its output would fill the executed notebook
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheel_dir,
                          "segkit"], check=False)
    assert pip.returncode == 0, (
        f"pip could not install segkit from {wheel_dir} (its error is above): without internet, what this "
        "image lacks cannot come from an index. If it is albumentations (an image with AlbumentationsX), "
        "see kaggle/README.md; else turn the kernel's internet on")"""


class BundleError(SegkitError):
    """The kernel bundle cannot be written as asked; the message says how to fix it."""


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
        raise BundleError(
            f"{what} {ref!r} must look like owner/slug (as in kaggle.com/.../owner/slug), "
            f"lowercase with '-' between words, e.g. {owner or 'someone'}/{slugify(slug or ref) or 'name'}"
        )
    return ref


def kaggle_username(explicit: str | None = None) -> str:
    """--username, else $KAGGLE_USERNAME, else the username of a legacy kaggle.json (`auth`)."""
    if explicit:
        return explicit
    if os.environ.get("KAGGLE_USERNAME"):
        return os.environ["KAGGLE_USERNAME"]
    username = auth.legacy_username()
    if not username:
        raise BundleError(auth.no_username_message())
    return username


# ----------------------------------------------------------------------------- bundle: parts


def repo_root() -> Path:
    """The segkit source checkout (pyproject.toml, notebooks/, kaggle/); a wheel install has none."""
    root = Path(__file__).resolve().parents[2]  # segkit/kaggle/bundling.py -> the checkout
    if not (root / "pyproject.toml").is_file() or not (root / "kaggle").is_dir():
        raise BundleError(
            f"the bundle is built from a segkit source checkout, but {root} has no pyproject.toml "
            "and kaggle/: run it from a clone of the repository (pip install -e .)"
        )
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
            raise BundleError(
                f"unknown notebook parameter {name!r} for {notebook.name}"
                f"{did_you_mean(name, sorted(known))}; known: {', '.join(sorted(known))}"
            )


def prepare_notebook(source: Path, target: Path, params: dict[str, Any]) -> None:
    """papermill --prepare-only (parameters injected, nothing run), then the offline install cell."""
    import nbformat
    import papermill

    papermill.execute_notebook(
        str(source), str(target), parameters=params, prepare_only=True, progress_bar=False, log_output=False
    )
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
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(dest),
            str(src),
        ]
        result = subprocess.run(cmd, check=False, capture_output=True, text=True, env=_env_without_secrets())
    wheels = sorted(dest.glob("segkit-*.whl"))
    if result.returncode != 0 or not wheels:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BundleError(
            f"building the segkit wheel failed (exit {result.returncode}):\n{tail}\n"
            "It needs setuptools in this environment: pip install 'setuptools>=68' wheel"
        )
    return wheels[-1]


def smp_wheel(dest: Path, wheels_dir: Path | None = None) -> Path:
    """The segmentation_models_pytorch wheel, of the version installed here, copied into `dest`.

    Only that wheel (`--no-deps`): what smp needs (torch, timm, huggingface_hub, ...) is on
    Kaggle's image, and the kernel must keep Kaggle's torch.

    Args:
        dest: The wheel dataset folder.
        wheels_dir: A folder that already holds the wheel (`--wheels`); None downloads it with
            `pip download` from pip's configured index.

    Raises:
        BundleError: The download failed, or `wheels_dir` lacks the wheel; the message says the fix.
    """
    version = _installed_version(SMP_DIST)
    name = re.sub(r"[-_.]+", "_", SMP_DIST)  # wheel file names spell it segmentation_models_pytorch
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob(f"{name}-*.whl"):
        old.unlink()
    if wheels_dir is not None and not Path(wheels_dir).is_dir():
        raise BundleError(f"--wheels {wheels_dir} is not a folder. Fix: {_download_command(version, wheels_dir)}")
    with tempfile.TemporaryDirectory(prefix="segkit-smp-") as tmp:
        folder = Path(wheels_dir) if wheels_dir is not None else _pip_download(version, Path(tmp))
        found = sorted(folder.glob(f"{name}-{version}-*.whl"))
        if not found:
            others = sorted(p.name for p in folder.glob("*.whl")) or "no wheels"
            raise BundleError(
                f"{folder} has no {name}-{version}-*.whl ({SMP_DIST} {version} is installed "
                f"here; found: {others}). Fix: {_download_command(version, wheels_dir or 'DIR')}"
            )
        wheel = Path(shutil.copy2(found[-1], dest / found[-1].name))
    log.info("%s (%s): %s", wheel.name, f"from {wheels_dir}" if wheels_dir is not None else "downloaded", dest)
    return wheel


def _installed_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise BundleError(
            f"{dist} is not installed here, so its version is unknown. Fix: pip install -e . in the segkit checkout"
        ) from None


def _download_command(version: str, folder: Path | str) -> str:
    return f"pip download --no-deps --only-binary=:all: {SMP_DIST}=={version} -d {folder}"


def _pip_download(version: str, folder: Path) -> Path:
    """`pip download` of smp's wheel (no dependencies) into `folder`, from pip's configured index."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        f"{SMP_DIST}=={version}",
        "-d",
        str(folder),
    ]
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, env=_env_without_secrets())
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-10:])
        raise BundleError(
            f"downloading the {SMP_DIST} wheel failed (exit {result.returncode}):\n{tail}\n"
            "Kaggle's image lacks it, so the wheel dataset must carry it. Fix: run "
            "the bundle where pip reaches its index (internet), or, on a machine that does, "
            f"{_download_command(version, 'DIR')} and pass --wheels DIR (bundle(..., wheels_dir=DIR))"
        )
    return folder


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
    problems += [
        f"{k} must be true/false"
        for k in ("is_private", "enable_gpu", "enable_internet")
        if not isinstance(meta.get(k), bool)
    ]
    for key in ("dataset_sources", "kernel_sources"):
        refs = meta.get(key, [])
        problems += [f"{key}: {r!r} is not owner/slug" for r in refs if str(r).count("/") != 1]
    return problems


def _check_no_secrets(out: Path) -> None:
    """A bundle is uploaded to Kaggle: refuse (and remove) it if any secret value ended up inside
    (the environment's, and the Kaggle CLI's access_token and kaggle.json key)."""
    values = [os.environ[k] for k in SECRET_ENV if len(os.environ.get(k, "")) >= 6] + auth.file_secrets()
    if not values:
        return
    for path in out.rglob("*"):
        if path.is_file() and any(v.encode() in path.read_bytes() for v in values):
            shutil.rmtree(out / "kernel", ignore_errors=True)
            raise BundleError(
                f"a secret (from the environment or the Kaggle CLI's credential files) ended up in "
                f"{path}; the bundle was removed. "
                "Secrets belong in Kaggle Secrets, never in parameters or notebooks"
            )


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
    wheels_dir: Path | None = None,
) -> Path:
    """Write a Kaggle kernel push folder and the wheel dataset folder.

    Args:
        out: Output folder; gets `kernel/` (02_train.ipynb + kernel-metadata.json) and
            `segkit-wheel/` (segkit's and segmentation_models_pytorch's wheels + dataset-metadata.json).
        params: Notebook parameters to inject (names must exist in the parameters cell).
        title: Kernel title; its slug is the kernel id's slug.
        datasets: Cityscapes dataset references (owner/slug) to attach.
        resume_from: A previous kernel (owner/slug) whose output is attached and resumed.
        username: Kaggle username (else $KAGGLE_USERNAME or a legacy kaggle.json).
        enable_gpu: Request a GPU.
        enable_internet: Internet in the kernel (not needed: segkit installs offline).
        machine_shape: Kaggle machine shape, e.g. NvidiaTeslaT4 (T4 x2).
        notebook: The notebook to bundle; default the repository's notebooks/02_train.ipynb.
        wheels_dir: A folder holding the segmentation_models_pytorch wheel; default: download it.

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
    meta = {
        **_template(root, "kernel-metadata.template.json"),
        "id": f"{user}/{slug}",
        "title": title.strip(),
        "code_file": CODE_FILE,
        "enable_gpu": enable_gpu,
        "enable_internet": enable_internet,
        "machine_shape": machine_shape,
        "dataset_sources": datasets + [f"{user}/{WHEEL_DATASET}"],
        "kernel_sources": kernel_sources,
    }
    problems = validate_kernel_metadata(meta, kernel_dir)
    if problems:
        raise BundleError("kernel-metadata.json would be rejected: " + "; ".join(problems))
    write_json(kernel_dir / "kernel-metadata.json", meta)
    _write_wheels(wheel_dir, wheels_dir, root)
    dataset_meta = {**_template(root, "dataset-metadata.template.json"), "id": f"{user}/{WHEEL_DATASET}"}
    write_json(wheel_dir / "dataset-metadata.json", dataset_meta)
    _check_no_secrets(out)
    return out


def _write_wheels(wheel_dir: Path, wheels_dir: Path | None, root: Path) -> None:
    """smp's wheel (first: without internet it fails, and says what to do), then segkit's (pip, ~30 s)."""
    steps = {
        "segmentation_models_pytorch wheel": lambda: smp_wheel(wheel_dir, wheels_dir),
        "segkit wheel": lambda: build_wheel(wheel_dir, root),
    }
    with progress.bar(total=len(steps), desc="bundle", unit="step", every=0) as bar:
        for name, step in steps.items():
            bar.set_postfix_str(name)
            step()
            bar.update()


def _bundle_params(notebook: Path, params: dict[str, Any], chained: bool) -> dict[str, Any]:
    known = notebook_parameters(notebook)
    check_params(params, known, notebook)
    if chained and "resume" in known:
        params.setdefault("resume", True)  # the chained kernel continues the attached run
    elif chained:
        log.warning("%s has no 'resume' parameter: the chained kernel cannot resume", notebook.name)
    return params
