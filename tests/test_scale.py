"""benchmarks/scale.py: the cost-growth benchmark runs at test size and fits its exponents."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scale.py"


@pytest.fixture(scope="module")
def scale():
    spec = importlib.util.spec_from_file_location("scale_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fit_recovers_a_known_power_law(scale):
    results = [{"n": n, **dict.fromkeys(scale.MEASURES, 2.0 * n**1.5)} for n in (10, 40, 160)]
    fit = scale.fit(results, estimate_n=1000)["epoch_png_s"]
    assert fit["k"] == pytest.approx(1.5) and fit["c"] == pytest.approx(2.0)
    assert fit["estimate"] == pytest.approx(2.0 * 1000**1.5)


def test_quick_run_measures_everything_and_cleans_up(scale, tmp_path):
    scale.main(["--quick", "--work-dir", str(tmp_path)])
    report = json.loads((tmp_path / "scale.json").read_text())
    assert [r["n"] for r in report["results"]] == [4, 8, 16]
    for result in report["results"]:
        missing = [k for k in scale.MEASURES if not (isinstance(result.get(k), float) and result[k] > 0)]
        assert not missing, f"N={result['n']}: no {missing}"
        assert result["epoch_cached_samples"] == result["epoch_png_samples"] == result["n"]  # batch 2 divides N
    for key, fit in report["fit"].items():
        assert math.isfinite(fit["k"]) and math.isfinite(fit["estimate"]), key
    assert report["frames"]["synthetic"]["image_bytes"] > 0
    table = (tmp_path / "scale.md").read_text()
    assert "N = 25,000 (estimated)" in table and "one epoch, PNG (cache off) (s)" in table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scale.json", "scale.md"]  # frames and caches deleted
