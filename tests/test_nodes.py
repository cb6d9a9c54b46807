"""Several nodes, bad inputs: each "node" is a forked process in its own folder, joined by a real gloo
process group on 127.0.0.1 (what torchrun sets up), so these run in about a second each. The
training itself across two nodes is tests/test_distributed.py's."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import write_cityscapes

from segkit import runtime
from segkit.cli import build_parser
from segkit.config import TrainConfig
from segkit.data.cache import BUILD_LOCK, prepare_cache, read_manifest
from segkit.data.discover import resolve_data_roots
from segkit.errors import SegkitError
from segkit.files import hold_lock
from segkit.labels import CITYSCAPES
from segkit.rundir import LOCK_FILE, Run

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node(rank: int, world: int, port: int, folder: Path, task: Callable[[], object], env: dict[str, str]) -> None:
    """A forked "node": torchrun's environment, its own working directory, stderr into a file."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK="0",
        LOCAL_WORLD_SIZE="1",
        GROUP_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        **env,
    )
    os.chdir(folder)
    err = os.open(folder / "stderr.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(err, 2)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    code = 0
    try:
        runtime.setup_logging()
        if world > 1 or env:
            runtime.init_distributed(torch.device("cpu"))
        task()
    except SegkitError as e:  # what the CLI prints, without a traceback
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except BaseException:  # noqa: BLE001 -- a forked child must end in os._exit, whatever it raised
        traceback.print_exc()
        code = 1
    sys.stderr.flush()
    os._exit(code)


def run_nodes(folders: list[Path], tasks: list[Callable[[], object]], world: int | None = None, **env: str):
    """Each task in a forked process of one process group; [(exit code, its stderr)] per node."""
    ctx = multiprocessing.get_context("fork")
    port, world = free_port(), world or len(tasks)
    procs = [
        ctx.Process(target=_node, args=(rank, world, port, folder, task, env))
        for rank, (folder, task) in enumerate(zip(folders, tasks, strict=True))
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    return [(p.exitcode, (folder / "stderr.txt").read_text()) for p, folder in zip(procs, folders, strict=True)]


def nodes(tmp_path: Path, n: int = 2) -> list[Path]:
    folders = [tmp_path / f"node{i}" for i in range(n)]
    for folder in folders:
        folder.mkdir()
    return folders


def test_a_node_without_some_files_is_refused_before_training(tmp_path):
    folders = nodes(tmp_path)
    for folder in folders:
        write_cityscapes(folder / "data", splits={"train": 4, "val": 2}, size=(16, 32))
    stem = "bremen_000001_000019"  # node 1 lacks one training frame: its image and its label
    (folders[1] / "data" / "leftImg8bit" / "train" / "bremen" / f"{stem}_leftImg8bit.png").unlink()
    (folders[1] / "data" / "gtFine" / "train" / "bremen" / f"{stem}_gtFine_labelIds.png").unlink()

    def train() -> None:
        from segkit.engine import fit

        fit(TrainConfig(data_root="data", run_dir="run", epochs=1, device="cpu", num_workers=0))

    results = run_nodes(folders, [train, train])
    for code, err in results:  # every node stops with the same message, no traceback
        assert code == 2, err
        assert "Traceback" not in err
        assert "node 1 (host " in err and "lacks 2 files rank 0 has" in err, err  # the image and its label
        assert f"train/bremen/{stem}_leftImg8bit.png" in err and f"train/bremen/{stem}_gtFine_labelIds.png" in err
        assert "Copy the same data set to every node" in err
    assert not (folders[0] / "run").exists()  # refused before the run directory was made


def test_a_node_without_the_data_set_stops_every_node(tmp_path):
    folders = nodes(tmp_path)
    write_cityscapes(folders[0] / "data", splits={"train": 2, "val": 1}, size=(16, 32))  # node 1: no copy

    def train() -> None:
        from segkit.engine import fit

        fit(TrainConfig(data_root="data", run_dir="run", epochs=1, device="cpu", num_workers=0))

    for code, err in run_nodes(folders, [train, train]):  # node 0 does not wait for node 1 forever
        assert code == 2 and "Traceback" not in err, err
        assert "error: node 1 (host " in err and "data" in err and "node 0 (host" not in err, err


def test_a_rendezvous_that_never_completes_times_out_with_what_to_check(tmp_path):
    folders = nodes(tmp_path, 1)
    start = time.monotonic()
    [(code, err)] = run_nodes(folders, [lambda: None], world=2, SEGKIT_DIST_TIMEOUT="2")  # rank 1 never comes
    assert time.monotonic() - start < 20
    assert code == 2 and "Traceback" not in err, err
    assert "rank 0 of 2, local rank 0 on node 0 (host " in err
    assert "waited 2 s for the other 1 processes to join the process group at 127.0.0.1:" in err
    assert "same torchrun command" in err and "socket.create_connection(('127.0.0.1'," in err


def test_the_run_directory_of_a_running_job_is_refused_on_every_node(tmp_path):
    """Node 0 holds the run; a job training into it already holds train.lock (here: this process)."""
    folders = nodes(tmp_path)
    (folders[0] / "run").mkdir()
    lock = hold_lock(folders[0] / "run" / LOCK_FILE)
    assert lock is not None
    try:
        cfg = TrainConfig(run_dir="run", device="cpu")
        results = run_nodes(folders, [lambda: Run.create(cfg, {}, CITYSCAPES)] * 2)
    finally:
        lock.close()
    for code, err in results:  # node 1 cannot see the folder: it gets rank 0's refusal
        assert code == 2 and "Traceback" not in err, err
        assert "is being trained into right now (pid" in err and "pick another --run-dir" in err
    assert not (folders[1] / "run").exists()


def test_a_resumed_run_missing_on_rank_0s_host_says_where_the_run_directory_must_be(tmp_path):
    folders = nodes(tmp_path)
    (folders[1] / "run").mkdir()  # the run is on node 1, but rank 0 (node 0) holds the run directory
    cfg = TrainConfig(run_dir="run", device="cpu", resume=True)
    results = run_nodes(folders, [lambda: Run.create(cfg, {}, CITYSCAPES)] * 2)
    for code, err in results:
        assert code == 2 and "Traceback" not in err, err
        assert "there is no run/last.pth to continue from" in err
        assert "the run directory lives on global rank 0's host, here node 0 (host" in err
        assert "--rdzv-backend static" in err


def test_nodes_sharing_one_cache_folder_take_turns(tmp_path):
    """Two builders of one cache folder (nodes on a shared file system): one builds, the other finds it ready."""
    data = write_cityscapes(tmp_path / "data", splits={"train": 3}, size=(16, 32))
    shared = tmp_path / "shared_cache"
    shared.mkdir()
    folders = nodes(tmp_path)

    def build() -> None:
        import cv2

        cv2.setNumThreads(0)  # no OpenCV thread pool inherited through fork
        prepare_cache(resolve_data_roots(str(data)), (16, 32), ("train",), out=shared, workers=1)

    with open(shared / BUILD_LOCK, "a") as held:  # both start while the folder is being built
        fcntl.lockf(held, fcntl.LOCK_EX)
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=_node, args=(0, 1, 0, folder, build, {})) for folder in folders]
        for p in procs:
            p.start()
        time.sleep(1.0)
    for p in procs:
        p.join(60)
    logs = [(folder / "stderr.txt").read_text() for folder in folders]
    assert [p.exitcode for p in procs] == [0, 0], logs
    assert all("another process is building it; waiting" in log for log in logs), logs
    built = [log for log in logs if "train 3 images" in log]
    ready = [log for log in logs if "train is up to date (3 images)" in log]
    assert len(built) == 1 and len(ready) == 1, logs
    assert read_manifest(shared)["splits"]["train"]["count"] == 3
    assert not list(shared.glob(".*.tmp"))
    shutil.rmtree(shared)


def test_the_slurm_script_is_valid_bash_and_is_the_readmes():
    script = REPO / "scripts" / "slurm_train.sbatch"
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    text = script.read_text()
    assert text in (REPO / "README.md").read_text()  # the README shows the file as it is
    [launch] = [line for line in text.splitlines() if "torchrun --nnodes" in line]
    for flag in ('--nnodes "$SLURM_NNODES"', '--node-rank "$SLURM_NODEID"', '--master-addr "$MASTER_ADDR"'):
        assert flag in launch, flag
    assert 'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)' in text
    for header in ("--nodes=", "--ntasks-per-node=1", "--gpus-per-node="):
        assert f"#SBATCH {header}" in text, header
    argv = shlex.split(launch.split("-m segkit ", 1)[1].split("' torchrun")[0].replace('"$@"', ""))
    build_parser().parse_args(argv)  # segkit train's flags as written (argparse exits on an unknown one)
