"""A real `torchrun --nproc_per_node=2 -m segkit train` (gloo on CPU): rank 0 alone writes, the
metrics equal a single-process evaluation of the same checkpoint, and --resume works."""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import write_cityscapes

from segkit.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--num-workers",
    "0",
    "--base-channels",
    "8",
    "--depth",
    "2",
    "--image-size",
    "32",
    "64",
    "--batch-size",
    "2",
    "--lr",
    "1e-2",
    "--num-vis",
    "1",
    "--log-every",
    "1",
    "--device",
    "cpu",
]

TINY_SPLITS = {"train": 8, "val": 5}
RESUME_TO_3 = ["--resume", "--epochs", "3", "--num-workers", "0", "--device", "cpu"]  # the run's own settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed"),
]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 -m segkit ...`, one thread per process."""
    return _torchrun(["-m", "segkit", *args])


def torchrun_script(script: Path, *args: str) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 SCRIPT ...`."""
    return _torchrun([str(script), *args])


def _torchrun(target: list[str]) -> subprocess.CompletedProcess:
    launcher = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert launcher, "torchrun not found next to the Python interpreter"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "SEGKIT_PROGRESS": "log"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [launcher, "--standalone", "--nproc_per_node=2", *target]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return done


def read_history(run: Path) -> list[dict]:
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def evaluate_single_process(checkpoint: Path, data: Path, out: Path) -> dict:
    assert (
        cli_main(
            [
                "evaluate",
                "--checkpoint",
                str(checkpoint),
                "--data-root",
                str(data),
                "--split",
                "val",
                "--device",
                "cpu",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    return json.loads(out.read_text())


@dataclass
class OneHostRun:
    """A `torchrun --standalone --nproc_per_node=2` run: 1 epoch, then --resume to 3 epochs."""

    data: Path
    run: Path
    first: subprocess.CompletedProcess  # the first launch
    first_metrics: dict  # metrics.json after it
    weights: list[dict]  # last.pth's model weights after each launch
    last_epoch: int  # last.pth's state after the resume


@pytest.fixture(scope="module")
def one_host(tmp_path_factory) -> OneHostRun:
    """Shared by this module's tests: the two-node run below must end with exactly these weights."""
    base = tmp_path_factory.mktemp("one_host")
    # 5 val images: an odd count, so a sampler that pads the split to 2 x 3 would count one twice.
    data = write_cityscapes(base / "data", splits=TINY_SPLITS, size=(32, 64))
    run = base / "run"
    first = torchrun("train", "--data-root", str(data), "--run-dir", str(run), "--epochs", "1", *TINY)
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 1  # rank 0 alone writes
    first_metrics = json.loads((run / "metrics.json").read_text())
    shutil.copy(run / "best_model.pth", base / "best_after_first.pth")
    weights = [model_weights(run / "last.pth")]
    torchrun("train", "--data-root", str(data), "--run-dir", str(run), *RESUME_TO_3)
    weights.append(model_weights(run / "last.pth"))
    last_epoch = torch.load(run / "last.pth", map_location="cpu", weights_only=True)["state"]["epoch"]
    return OneHostRun(data, run, first, first_metrics, weights, last_epoch)


def model_weights(checkpoint: Path) -> dict:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]


def test_torchrun_two_processes_train_evaluate_resume(one_host, tmp_path):
    data, run, metrics = one_host.data, one_host.run, one_host.first_metrics
    assert one_host.first.stderr.count("val mIoU") == 1  # rank 0 alone logs
    assert metrics["protocol"]["images"] == 5 and metrics["protocol"]["resolution"] == "label"
    single = evaluate_single_process(run.parent / "best_after_first.pth", data, tmp_path / "eval.json")
    assert single["protocol"]["images"] == 5
    assert metrics["miou"] == pytest.approx(single["miou"], abs=1e-6)
    for name, row in metrics["per_class"].items():  # the same confusion matrix, class by class
        assert row["gt_pixels"] == single["per_class"][name]["gt_pixels"], name
        assert (row["iou"] is None) == (single["per_class"][name]["iou"] is None), name
        assert row["iou"] is None or row["iou"] == pytest.approx(single["per_class"][name]["iou"], abs=1e-6), name

    rows = read_history(run)  # after the resume
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert int(rows[-1]["steps"]) == 3 * 2  # 8 images / (2 processes x batch 2) = 2 steps per epoch
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 2  # one per launch
    assert not list(run.glob(".*.tmp"))
    assert one_host.last_epoch == 3
    metrics = json.loads((run / "metrics.json").read_text())
    single = evaluate_single_process(run / "best_model.pth", data, tmp_path / "eval2.json")
    assert metrics["miou"] == pytest.approx(single["miou"], abs=1e-6)


WORKER = """
import gc, json, sys
import torch
from segkit.config import TrainConfig
from segkit.engine import fit

cfg = TrainConfig(**json.loads(sys.argv[1]))
fit(cfg)
left = [type(o).__name__ for o in gc.get_objects() if isinstance(o, torch.nn.parallel.DistributedDataParallel)]
# One write of the whole line: both ranks share the pipe, and print()'s pieces (unbuffered) interleaved.
sys.stdout.write(f"DDP objects alive after fit: {len(left)}\\n")
sys.stdout.flush()
assert not left, "fit returned with a DistributedDataParallel wrapper (and its process group) still alive"
assert not torch.distributed.is_initialized()
"""


def test_torchrun_ranks_end_cleanly_with_no_ddp_object_left_alive(cityscapes_factory, tmp_path):
    """Every rank leaves together and nothing holds the process group into interpreter shutdown.

    Before the fix, DistributedDataParallel (in reference cycles) kept the gloo group alive past
    destroy_process_group; freed during interpreter shutdown, it aborted rank 1 ("terminate called
    without an active exception", exit -6) in a few runs out of ten under load, and torchrun
    failed the finished run. Each worker here checks that no DDP object outlives `fit`: the cause
    itself, which fails on every run, where the abort showed only in some (two runs, a plain U-Net
    and an smp model). No extra process spins a core for load any more: the check of the cause
    needs none, and in the suite the other pytest worker is load enough (the spinner took a core
    from it for 40 s).
    """
    data = cityscapes_factory(splits={"train": 4, "val": 2}, size=(32, 64))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    for i in range(2):
        cfg = {
            "data_root": str(data),
            "run_dir": str(tmp_path / f"run{i}"),
            "epochs": 1,
            "num_workers": 0,
            "base_channels": 8,
            "depth": 2,
            "image_size": [32, 64],
            "batch_size": 2,
            "num_vis": 1,
            "device": "cpu",
        }
        if i == 1:  # an smp model under DDP, SyncBatchNorm asked for (CUDA-only: off on CPU, logged)
            cfg.update(model="fpn", encoder="tu-resnet10t", encoder_weights="none", sync_bn=True)
        done = torchrun_script(script, json.dumps(cfg))
        assert done.stdout.count("DDP objects alive after fit: 0") == 2, done.stdout[-2000:]
        assert "terminate called" not in done.stderr
        if i == 1:
            assert "SyncBatchNorm works on CUDA GPUs only" in done.stderr


# ----------------------------------------------------------------------------- several nodes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kept_under_tmp() -> list[str]:
    """What a node must still see under /tmp once it has a /tmp of its own: the Python environment and the
    repository (a clean clone under /tmp, as CI makes one). The node's own folder needs nothing: it is the
    node's working directory, entered before /tmp is replaced."""
    tmp = Path("/tmp").resolve()
    kept = sorted(p for p in {Path(p).resolve() for p in (sys.prefix, REPO)} if p.is_relative_to(tmp))
    return [str(p) for p in kept if not any(p != q and p.is_relative_to(q) for q in kept)]  # outermost only


def _private_tmp_script() -> str:
    """sh: give this process a fresh /tmp (tmpfs), with `_kept_under_tmp` bound back in, then exec "$@"."""
    kept, tmp = _kept_under_tmp(), Path("/tmp").resolve()
    if not kept:
        return 'mount -t tmpfs tmpfs /tmp && exec "$@"'
    # the old /tmp parked on /mnt (this mount namespace only) while the kept folders are bound back
    binds = " && ".join(
        f"mkdir -p {shlex.quote(p)} && mount --bind {shlex.quote(str(Path('/mnt', Path(p).relative_to(tmp))))} "
        f"{shlex.quote(p)}"
        for p in kept
    )
    return f'mount --bind /tmp /mnt && mount -t tmpfs tmpfs /tmp && {binds} && umount -l /mnt && exec "$@"'


def private_tmp() -> str | None:
    """Why a node cannot get a /tmp of its own here (None: it can, with `unshare --mount`)."""
    if not shutil.which("unshare") or os.geteuid() != 0:
        return "needs root and unshare(1)"
    if _kept_under_tmp() and not Path("/mnt").is_dir():
        return "the Python environment or the repository is under /tmp and there is no /mnt to park /tmp on"
    probe = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _private_tmp_script(), "probe", "true"]
    done = subprocess.run(probe, capture_output=True, text=True, check=False)
    return None if done.returncode == 0 else f"unshare --mount failed: {done.stderr.strip()}"


def start_node(node: Path, node_rank: int, port: int, *args: str) -> subprocess.Popen:
    """One "node": `torchrun --nnodes 2 --node-rank R --rdzv-backend c10d` in its own folder (and /tmp).

    c10d ignores --node-rank and gives rank 0 to the node whose address sorts first: 127.0.0.1
    for node 0 and 127.0.0.2 for node 1 (both loopback) make node 0 the run directory's host.
    """
    launcher = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "SEGKIT_PROGRESS": "log"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [launcher, "--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(node_rank)]
    cmd += [
        "--rdzv_backend",
        "c10d",
        "--rdzv_endpoint",
        f"127.0.0.1:{port}",
        "--local_addr",
        f"127.0.0.{node_rank + 1}",
    ]
    cmd += ["--rdzv_conf", "join_timeout=60", "-m", "segkit", *args]
    if private_tmp() is None:  # cd first: the node's folder (under pytest's /tmp) stays its working directory
        cmd = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            _private_tmp_script(),
            "node",
            *cmd,
        ]
    return subprocess.Popen(  # a session of its own: a hung node is stopped with its workers
        cmd, cwd=node, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def run_nodes(nodes: list[Path], *args: str) -> list[str]:
    port = free_port()
    procs = [start_node(node, rank, port, *args) for rank, node in enumerate(nodes)]
    try:
        outputs = [p.communicate(timeout=240) for p in procs]
    except subprocess.TimeoutExpired:  # a rank waiting for another forever: stop both nodes, show what they said
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
        outputs = [p.communicate() for p in procs]
        pytest.fail("the nodes hung:\n" + "\n".join(err[-3000:] for _, err in outputs))
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, f"{p.args}\n{out[-2000:]}\n{err[-6000:]}"
    return [err for _, err in outputs]


def test_two_nodes_on_loopback_train_like_one_host(one_host, tmp_path):
    """Two "nodes" of one process each: own folder, own copy of the data, own /tmp (where unshare works).

    The known answer is the one-host run of `one_host` (2 processes, the same global batch of 2 x 2):
    where the ranks live changes nothing, so the weights are equal bit for bit, after the first
    launch and after a --resume on both nodes. (A single process with batch 4 is not that answer:
    BatchNorm statistics and the loss's mean over valid pixels are per process under DDP, so its
    weights differ beyond rounding; test_torchrun_two_processes_train_evaluate_resume compares the
    two-process run's metrics with a single process's evaluation instead.)
    """
    if reason := private_tmp():
        warnings.warn(f"the nodes share /tmp in this test: {reason}", stacklevel=1)
    nodes = [tmp_path / "node0", tmp_path / "node1"]
    for node in nodes:
        write_cityscapes(node / "data", splits=TINY_SPLITS, size=(32, 64))  # each node its own copy
    logs = run_nodes(nodes, "train", "--data-root", "data", "--run-dir", "run", "--epochs", "1", *TINY)
    run = nodes[0] / "run"
    assert logs[0].count("val mIoU") == 1 and "val mIoU" not in logs[1]  # global rank 0 alone logs
    assert not (nodes[1] / "run").exists()  # nor writes: the run directory lives on node 0 only
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 1
    assert (run / "metrics.json").is_file() and (run / "best_model.pth").is_file()
    assert_same_weights(model_weights(run / "last.pth"), one_host.weights[0])

    # The job restarted: node 1 has no last.pth, so it trains rank 0's settings and state.
    run_nodes(nodes, "train", "--data-root", "data", "--run-dir", "run", *RESUME_TO_3)
    assert not (nodes[1] / "run").exists()
    rows = read_history(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2] and int(rows[-1]["steps"]) == 3 * 2  # each image once
    assert_same_weights(model_weights(run / "last.pth"), one_host.weights[1])


def assert_same_weights(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name
