"""A Kaggle kernel rehearsal: the bundle's notebook executed end to end the way a kernel runs it.

`segkit kaggle bundle` (the real 02_train notebook, --params, --wheels from files made here) is
executed by papermill in a network namespace with no network and a mount namespace where the
input folder is read-only, by a fresh venv standing in for Kaggle's image: it sees this
environment's packages (torch, torchvision, timm, papermill, albumentations, the notebook stack)
but not segkit and segmentation_models_pytorch, which the notebook's install cell must bring from
the attached segkit-wheel dataset. The input folder holds that dataset, a Cityscapes-layout
dataset and an encoder-weights dataset; the working folder is the kernel's cwd.

Where the kernel's folders are: segkit's own path variables (`SEGKIT_KAGGLE_INPUT`,
`SEGKIT_KAGGLE_WORKING`, which `segkit.kaggle_env` reads instead of /kaggle/input and
/kaggle/working) point at tmp_path, with `KAGGLE_KERNEL_RUN_TYPE=Batch` as Kaggle sets it. A mount
namespace cannot put them at /kaggle itself without creating /kaggle on the host; it is used to
make the input read-only, as Kaggle mounts it (root ignores file permissions, not a read-only mount).

The namespaces need root (CI runs as root) or unprivileged user namespaces; where neither is
allowed the test fails as root or under CI=true, and is skipped with the reason otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from test_kaggle import SMP_DIST, SMP_VERSION, SMP_WHEEL, offline_pip, overlay_venv

from segkit.cli import main

REPO = Path(__file__).resolve().parent.parent
ENCODER = "tu-tf_efficientnet_lite0"  # a small real ImageNet encoder (4.7 M parameters)
WEIGHTS_SLUG = "tf-efficientnet-lite0-in1k"  # Kaggle's slug of timm/tf_efficientnet_lite0.in1k
DATA_SLUG = "cityscapes-mini"
RUN_DIR = "runs/rehearsal"
# Small enough for 2 CPU cores: 4 train / 2 val images of 64x128, one epoch.
PARAMS = {
    "run_dir": RUN_DIR,
    "model": "unet",
    "encoder": ENCODER,
    "encoder_weights": "imagenet",
    "epochs": 1,
    "batch_size": 2,
    "image_size": [64, 128],
    "num_workers": 0,
    "device": "cpu",
    "amp": "off",
    "nproc": 1,
    "log_every": 1,
    "num_vis": 1,
    "time_budget": 10.0,
}
# Brings the loopback interface up in the new network namespace (the Jupyter kernel talks to
# papermill over it), then becomes papermill. No `ip` needed: one ioctl.
_LOOPBACK_UP_THEN_EXEC = """\
import fcntl, os, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack('16sH', fcntl.ioctl(s, 0x8913, struct.pack('16sH', b'lo', 0)))[1]  # SIOCGIFFLAGS
fcntl.ioctl(s, 0x8914, struct.pack('16sH', b'lo', flags | 1))  # SIOCSIFFLAGS: IFF_UP
print('network interfaces:', sorted(name for _, name in socket.if_nameindex()), flush=True)  # of this namespace
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""
# Inside the mount namespace: the input folder becomes a read-only bind mount of itself.
_READ_ONLY_INPUT = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'


# --- the machine ----------------------------------------------------------------------------


def namespace_prefix() -> list[str]:
    """`unshare` arguments for a network + mount namespace, or fail/skip saying why not."""
    unshare = shutil.which("unshare")
    attempts = [["--net", "--mount"]] if os.geteuid() == 0 else [["--user", "--map-root-user", "--net", "--mount"]]
    errors = []
    for flags in attempts if unshare else []:
        probe = subprocess.run([unshare, *flags, "--", "true"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return [unshare, *flags, "--"]
        errors.append(f"`unshare {' '.join(flags)} true` failed: {probe.stderr.strip()}")
    why = "; ".join(errors) or "unshare (util-linux) is not on PATH"
    message = (
        f"the Kaggle rehearsal runs the kernel in a network namespace without network and a mount "
        f"namespace, and this machine does not allow it: {why}."
    )
    if os.geteuid() == 0 or os.environ.get("CI"):
        pytest.fail(
            message + " It must run in CI (root): install util-linux, or run the container with "
            "CAP_SYS_ADMIN (e.g. docker run --privileged)."
        )
    pytest.skip(
        message + " Run it as root (CI does), or allow unprivileged user namespaces "
        "(sysctl kernel.unprivileged_userns_clone=1)."
    )


# --- what the test makes --------------------------------------------------------------------


def wheel_of_installed(dist_name: str, dest: Path) -> Path:
    """A real wheel of an installed pure-Python distribution, packed from its installed files.

    Why: the bundle needs segmentation_models_pytorch's wheel and the tests have no index; the
    installed copy holds the same files (RECORD lists them), so they are zipped back with the
    dist-info pip wrote, less what only an install adds, and a new RECORD.
    """
    dist = importlib.metadata.distribution(dist_name)
    info = f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}.dist-info"
    tag = next(line.split(": ", 1)[1] for line in dist.read_text("WHEEL").splitlines() if line.startswith("Tag: "))
    skip = {f"{info}/{n}" for n in ("INSTALLER", "REQUESTED", "RECORD", "direct_url.json")}
    files = [
        f
        for f in dist.files or []
        if not str(f).startswith("..") and str(f) not in skip and "__pycache__" not in f.parts and f.suffix != ".pyc"
    ]
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{info.removesuffix('.dist-info')}-{tag}.whl"
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(files, key=str):
            data = Path(dist.locate_file(f)).read_bytes()
            zf.writestr(str(f), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{f},sha256={digest},{len(data)}")
        zf.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return wheel


def encoder_weights_dataset(folder: Path) -> Path:
    """The encoder-weights dataset: `<folder>/tf-efficientnet-lite0-in1k/model.safetensors`, real ImageNet
    weights (Google's EfficientNet-Lite0 from PyPI under timm's names: `tests/lite0.py`), in the layout
    a Kaggle dataset made from `hf download timm/tf_efficientnet_lite0.in1k` mounts as."""
    from lite0 import lite0_state_dict
    from safetensors.torch import save_file

    path = folder / WEIGHTS_SLUG / "model.safetensors"
    path.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in lite0_state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def kernel_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`segkit kaggle bundle` of the real 02_train notebook with the rehearsal's --params and
    smp's real wheel from --wheels."""
    tmp = tmp_path_factory.mktemp("rehearsal-bundle")
    wheel = wheel_of_installed(SMP_DIST, tmp / "wheels")
    assert wheel.name == SMP_WHEEL
    (tmp / "params.yaml").write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in PARAMS.items()))
    with pytest.MonkeyPatch.context() as mp:
        offline_pip(mp)  # --wheels must not download
        for name in ("KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_USERNAME"):
            mp.delenv(name, raising=False)
        status = main(
            [
                "kaggle",
                "bundle",
                "--out",
                str(tmp / "out"),
                "--wheels",
                str(wheel.parent),
                "--params",
                str(tmp / "params.yaml"),
                "--username",
                "tester",
                "--no-gpu",
                "--title",
                "segkit rehearsal",
                "--datasets",
                f"tester/{DATA_SLUG}",
                f"tester/{WEIGHTS_SLUG}",
            ]
        )
    assert status == 0
    return tmp / "out"


@pytest.fixture(scope="module")
def kaggle_input(tmp_path_factory: pytest.TempPathFactory, kernel_bundle: Path) -> Path:
    """/kaggle/input as the kernel sees it: the wheel dataset, the data, the encoder weights."""
    from conftest import write_cityscapes

    mount = tmp_path_factory.mktemp("kaggle") / "input"
    shutil.copytree(kernel_bundle / "segkit-wheel", mount / "segkit-wheel")
    write_cityscapes(mount / DATA_SLUG, splits={"train": 4, "val": 2})
    encoder_weights_dataset(mount)
    return mount


# --- the kernel -----------------------------------------------------------------------------


def kaggle_image(venv: Path) -> Path:
    """A venv standing in for Kaggle's image (no segkit, no smp) with a `python3` Jupyter kernel
    that runs its own interpreter."""
    python = overlay_venv(venv, hide=("segkit", SMP_DIST))
    spec = venv / "share" / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3",
                "language": "python",
            }
        )
    )
    return python


def installed(python: Path) -> dict[str, tuple[str, str]]:
    """normalised name -> (version, its METADATA file, links resolved) of every distribution."""
    code = (
        "import importlib.metadata as m, json, os, re; print(json.dumps({re.sub('[-_.]+', '-', "
        "d.metadata['Name']).lower(): (d.version, os.path.realpath(d.locate_file(next((f for f in d.files or [] "
        "if f.name == 'METADATA'), '')))) for d in m.distributions()}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True, cwd="/")
    return {k: tuple(v) for k, v in json.loads(out.stdout).items()}


def run_kernel(kernel_bundle: Path, kaggle_input: Path, tmp: Path) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """The bundle's notebook run by papermill as Kaggle runs a committed kernel: returns the
    papermill process, the executed notebook and the kernel's python."""
    python = kaggle_image(tmp / "image")
    working = tmp / "working"
    (tmp / "home").mkdir()
    working.mkdir()
    executed = tmp / "executed.ipynb"
    env = {
        "PATH": f"{python.parent}:/usr/bin:/bin",
        "HOME": str(tmp / "home"),
        "LANG": "C.UTF-8",
        "KAGGLE_KERNEL_RUN_TYPE": "Batch",
        "SEGKIT_KAGGLE_INPUT": str(kaggle_input),
        "SEGKIT_KAGGLE_WORKING": str(working),
        "HF_HOME": str(tmp / "home" / "hf"),
        "JUPYTER_PATH": str(tmp / "image" / "share" / "jupyter"),
        "JUPYTER_DATA_DIR": str(tmp / "jupyter"),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "OMP_NUM_THREADS": "2",
        "TMPDIR": str(tmp),
    }
    papermill = [
        "-m",
        "papermill",
        str(kernel_bundle / "kernel" / "02_train.ipynb"),
        str(executed),
        "--cwd",
        str(working),
        "-k",
        "python3",
        "--no-progress-bar",
        "--execution-timeout",
        "400",
    ]
    cmd = [
        *namespace_prefix(),
        "sh",
        "-c",
        _READ_ONLY_INPUT,
        "sh",
        str(kaggle_input),
        str(python),
        "-c",
        _LOOPBACK_UP_THEN_EXEC,
        *papermill,
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=working, timeout=540, check=False)
    return run, executed, python


def outputs_text(nb: nbformat.NotebookNode) -> str:
    """Every output of every cell as text (streams, results, errors with their tracebacks)."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(str(out.get("data", {}).get("text/plain", "")))
            parts.append("\n".join(out.get("traceback", [])))
    return "\n".join(parts)


# --- the rehearsals -------------------------------------------------------------------------


@pytest.mark.slow
def test_kernel_rehearsal_trains_offline(kernel_bundle: Path, kaggle_input: Path, tmp_path: Path) -> None:
    files_before = sorted(str(p.relative_to(kaggle_input)) for p in kaggle_input.rglob("*"))
    started = time.monotonic()
    run, executed, python = run_kernel(kernel_bundle, kaggle_input, tmp_path)
    minutes = (time.monotonic() - started) / 60
    assert run.returncode == 0, f"the kernel failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    assert "network interfaces: ['lo']" in run.stdout  # nothing but loopback: no network at all

    # The install cell installed exactly segkit and smp from the wheel dataset; torch & co. untouched.
    image = installed(python)
    here = installed(Path(sys.executable))
    added = {name: image[name][0] for name in image if name not in here or image[name] != here[name]}
    assert added == {"segkit": "0.1.0", SMP_DIST: SMP_VERSION}, added
    for name in ("torch", "torchvision", "timm", "albumentations"):
        assert image[name] == here[name], (name, image[name], here[name])
    torch_entries = list((tmp_path / "image").glob("lib/*/site-packages/torch*"))
    assert torch_entries and all(p.is_symlink() for p in torch_entries), torch_entries  # still this machine's

    nb = nbformat.read(str(executed), as_version=4)
    text = outputs_text(nb)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert "Traceback" not in text
    assert executed.stat().st_size < 200_000, f"executed notebook is {executed.stat().st_size} bytes"
    weights = kaggle_input / WEIGHTS_SLUG / "model.safetensors"
    assert f"found at {weights}" in text  # discovery found the attached weights (there is no network)
    assert " --data-root '' --layout auto " in text  # the printed torchrun command can be pasted as is

    run_dir = tmp_path / "working" / RUN_DIR
    for name in ("config.json", "last.pth", "best_model.pth", "history.csv", "metrics.json", "figures/curves.png"):
        assert (run_dir / name).is_file(), f"{name} missing in {run_dir}: {sorted(p.name for p in run_dir.iterdir())}"
    config = json.loads((run_dir / "config.json").read_text())
    assert str(kaggle_input / DATA_SLUG) in json.dumps(config)  # the attached data, not the synthetic set
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["protocol"]["images"] == 2 and metrics["protocol"]["split"] == "val", metrics["protocol"]
    assert sorted(str(p.relative_to(kaggle_input)) for p in kaggle_input.rglob("*")) == files_before
    print(f"rehearsal: {minutes:.1f} min")


@pytest.mark.slow
def test_kernel_rehearsal_without_the_weights_stops_early(
    kernel_bundle: Path, kaggle_input: Path, tmp_path: Path
) -> None:
    mount = tmp_path / "input"
    shutil.copytree(kaggle_input, mount, ignore=shutil.ignore_patterns(WEIGHTS_SLUG))
    run, executed, _ = run_kernel(kernel_bundle, mount, tmp_path)
    assert run.returncode != 0
    nb = nbformat.read(str(executed), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    failed = [i for i, c in enumerate(code) if any(o.output_type == "error" for o in c.get("outputs", []))]
    assert len(failed) == 1 and "config_from_namespace" in code[failed[0]].source, failed
    assert all(c.execution_count is None for c in code[failed[0] + 1 :])  # nothing after it ran
    error = next(o for o in code[failed[0]].outputs if o.output_type == "error")
    message = f"{error.ename}: {error.evalue}"
    assert error.ename == "WeightsUnavailable", message
    for fragment in (
        "timm/tf_efficientnet_lite0.in1k",
        "hf download timm/tf_efficientnet_lite0.in1k model.safetensors",
        "as a Kaggle Dataset",
        "it appears under /kaggle/input/",
    ):
        assert fragment in message, message
