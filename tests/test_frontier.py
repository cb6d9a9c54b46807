"""benchmarks/frontier.py on a finished tiny run reused with --runs: real `segkit evaluate` and `segkit
benchmark` (eager, one tiny size), then frontier.json, the table and the plot; the run's TensorBoard gets
the speed table as text. The training half is benchmarks/quality_per_compute.py's (`--quick` runs it all,
about two minutes: too slow for the suite)."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import frontier  # a script beside quality_per_compute.py, which it imports


@pytest.fixture(scope="module")
def measured(tiny_run: Path, tmp_path_factory) -> tuple[dict, Path, Path]:
    """The frontier of one reused run (a copy of the session's tiny run: benchmark writes beside it)."""
    base = tmp_path_factory.mktemp("frontier")
    run = shutil.copytree(tiny_run, base / "run", ignore=shutil.ignore_patterns("train.lock"))
    out = base / "out"
    argv = ["--runs", f"tiny={run}", "--only", "tiny", "--sizes", "32x64", "--backends", "eager"]
    record = frontier.main([*argv, "--warmup", "0", "--iterations", "2", "--out", str(out)])
    return record, run, out


def test_reused_run_is_scored_timed_and_reported(measured, tiny_run: Path) -> None:
    record, _, out = measured
    (tiny,) = record["candidates"]
    val = tiny["quality"]["32x64"]["val"]
    # Its training size and protocol (label resolution, whole image, val): the run's own final score.
    assert val["miou"] == pytest.approx(100 * json.loads((tiny_run / "metrics.json").read_text())["miou"])
    assert val["worst"][1] == min(val["per_class"].values())
    fps = tiny["speed"]["32x64"]["backends"]["eager"]["end_to_end_fps"]
    assert math.isfinite(fps) and fps > 0
    assert tiny["params_m"] > 0 and tiny["gflops"]["32x64"] > 0 and tiny["epochs"] == 2
    assert record["points"]["32x64"] == [
        {"name": "tiny", "backend": "eager", "fps": fps, "miou": val["miou"], "pareto": True}
    ]
    assert json.loads((out / "frontier.json").read_text()) == record
    assert "tiny reused as trained" in record["protocol"] and "network at the frame size" in record["protocol"]
    table = (out / "frontier.md").read_text()
    assert "| tiny | unet (segkit's own) | 32x64, 2 epochs" in table and f"**eager {fps:.1f}**" in table
    assert all(p["model"] in table for p in frontier.PUBLISHED)
    assert (out / "frontier.png").stat().st_size > 20_000


def test_benchmarking_a_run_adds_its_table_to_the_runs_tensorboard(measured) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run, _ = measured
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    (text,) = events.Tensors("benchmark/cpu_32x64/text_summary")
    shown = text.tensor_proto.string_val[0].decode()
    assert "e2e fps" in shown and "\n    eager " in shown  # the table, indented as a Markdown code block


def test_pareto_front_and_int8_known_answers() -> None:
    def result(name: str, miou: float, backends: dict) -> dict:
        return {"name": name, "quality": {"s": {"val": {"miou": miou}}}, "speed": {"s": {"backends": backends}}}

    def rec(fps: float, delta: float | None = None) -> dict:
        return {"end_to_end_fps": fps, "miou_delta": delta}

    results = [
        result("slow-good", 60.0, {"eager": rec(10.0), "openvino": rec(20.0)}),
        result("fast-bad", 50.0, {"eager": rec(30.0), "openvino-int8": rec(90.0, -0.02)}),
        result("dominated", 40.0, {"eager": rec(15.0), "onnxruntime": rec(None)}),  # not measured: left out
    ]
    lossless = {p["name"]: p for p in frontier.points(results, int8=False)["s"]}
    assert {n: (p["backend"], p["fps"], p["pareto"]) for n, p in lossless.items()} == {
        "slow-good": ("openvino", 20.0, True),
        "fast-bad": ("eager", 30.0, True),
        "dominated": ("eager", 15.0, False),
    }
    fast = {p["name"]: p for p in frontier.points(results, int8=True)["s"]}["fast-bad"]
    assert (fast["backend"], fast["fps"], fast["miou"]) == ("openvino-int8", 90.0, pytest.approx(48.0))


def test_bad_arguments_say_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no best_model.pth there"):
        frontier.main(["--runs", f"x={tmp_path}", "--only", "x"])
    with pytest.raises(SystemExit, match="expected NAME=RUN_DIR"):
        frontier.main(["--runs", str(tmp_path)])
    with pytest.raises(SystemExit, match="training a candidate needs --data-root"):
        frontier.main(["--only", "unet-lite0"])
    with pytest.raises(SystemExit, match="no such candidate; known: unet-lite0"):
        frontier.main(["--only", "nope"])
