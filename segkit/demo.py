"""`segkit demo`: synthetic data -> notebooks 01..05 headless (papermill) -> a trained run, in minutes.

The demo is what `make demo` runs on a fresh machine (2 CPU cores, no GPU): it generates the
synthetic street scenes, trains a small U-Net for a fixed time budget, evaluates and draws it,
and prints where everything is and the mIoU with its protocol.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import segkit
from segkit.config import DemoConfig, SynthConfig
from segkit.errors import SegkitError
from segkit.reflect import add_config_flags, config_from_args

REPO_ROOT = Path(segkit.__file__).resolve().parent.parent
NOTEBOOKS = ("01_explore_data", "02_train", "03_evaluate", "04_visualize", "05_compare_runs")
SYNTHETIC = SynthConfig()  # the set training falls back to when it finds no data (data/synthetic, 60 + 20)
TRAIN_MINUTES = DemoConfig.minutes  # training budget: the whole demo stays near 5 minutes on 2 CPU cores
README_FIGURES = "docs/figures"  # where the committed README figures live (refreshed with --readme-figures)
FIGURE_TAG = "readme-figure"  # the notebook cell whose image goes to the README
FIGURE_WIDTH = 900  # px; keeps the committed PNGs small


def register_cli(sub: Any) -> None:
    """`segkit demo`: every DemoConfig field is a flag."""
    p = sub.add_parser(
        "demo",
        help="synthetic data -> notebooks 01..05 headless -> a trained run (~5 min on CPU)",
        description=__doc__.split("\n\n")[0],
    )
    add_config_flags(p, DemoConfig)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    cfg, _ = config_from_args(DemoConfig, args)
    out = Path(cfg.out)
    report = run_demo(out, cfg.minutes, Path(cfg.readme_figures) if cfg.readme_figures else out / "readme-figures")
    print(summary_text(report))
    return 0


def run_demo(out: Path, minutes: float = TRAIN_MINUTES, readme_figures: Path | None = None) -> dict:
    """Generate the data, execute the five notebooks into `out/notebooks`, train into `out/run`.

    Args:
        out: output folder (executed notebooks, the run directory).
        minutes: training time budget (the learning rate decays to 0 over it).
        readme_figures: folder for one small PNG per notebook, or None.

    Returns:
        {"seconds", "run_dir", "notebooks", "metrics", "figures", "data"}.
    """
    from segkit.data.synthetic import generate_synthetic

    start = time.monotonic()
    notebook_dir = REPO_ROOT / "notebooks"
    if not (notebook_dir / f"{NOTEBOOKS[0]}.ipynb").is_file():
        raise SegkitError(
            f"the notebooks are not in {notebook_dir}: the demo runs from a clone of the segkit "
            "repository (pip install -e .), not from an installed wheel"
        )
    data = _rel(Path(SYNTHETIC.out))
    _say(f"synthetic data set -> {data}")
    generate_synthetic(
        REPO_ROOT / data, SYNTHETIC.num_train, SYNTHETIC.num_val, SYNTHETIC.image_size, SYNTHETIC.seed, overwrite=True
    )
    run_dir = _rel(out / "run")
    executed = {}
    for name, parameters in notebook_parameters(data, run_dir, minutes).items():
        executed[name] = execute(notebook_dir / f"{name}.ipynb", out / "notebooks" / f"{name}.ipynb", parameters)
    figures = copy_readme_figures(executed, readme_figures) if readme_figures else []
    metrics = json.loads((REPO_ROOT / run_dir / "metrics.json").read_text())
    return {
        "seconds": time.monotonic() - start,
        "run_dir": REPO_ROOT / run_dir,
        "notebooks": executed,
        "metrics": metrics,
        "figures": figures,
        "data": REPO_ROOT / data,
    }


def notebook_parameters(data: str, run_dir: str, minutes: float) -> dict[str, dict]:
    """The papermill parameters of each notebook (paths relative to the repository root)."""
    return {
        "01_explore_data": {"data_root": data, "num_samples": 4},
        # The budget stops training before the preset's 200 epochs; the poly schedule decays over it.
        "02_train": {
            "data_root": data,
            "run_dir": run_dir,
            "preset": "cpu-quick",
            "time_budget": minutes,
            "overwrite": True,
        },
        "03_evaluate": {"run_dir": run_dir, "data_root": data},
        "04_visualize": {"run_dir": run_dir, "data_root": data, "num_samples": 3},
        "05_compare_runs": {"runs_dir": str(Path(run_dir).parent)},  # the demo's run beside any others there
    }


def execute(notebook: Path, output: Path, parameters: dict) -> Path:
    """Run one notebook headless with papermill (cwd = repository root); its outputs go to `output`."""
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    _say(f"{notebook.stem}: running ({', '.join(f'{k}={v}' for k, v in parameters.items())})")
    t0 = time.monotonic()
    env_smoke = os.environ.pop("SEGKIT_SMOKE", None)  # the demo is the real thing, never the smoke test
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(REPO_ROOT),
            progress_bar=False,
            log_output=False,
            stdout_file=sys.stdout,
            stderr_file=sys.stderr,
        )  # the kernels' prints and log lines
    except papermill.PapermillExecutionError as e:
        raise SegkitError(
            f"{notebook.name} failed in cell {e.exec_count}: {e.ename}: {e.evalue}. "
            f"The executed notebook with the traceback: {output}"
        ) from None
    finally:
        if env_smoke is not None:
            os.environ["SEGKIT_SMOKE"] = env_smoke
    _say(f"{notebook.stem}: done in {time.monotonic() - t0:.0f} s -> {output}")
    return output


def copy_readme_figures(executed: dict[str, Path], folder: Path) -> list[Path]:
    """One PNG per notebook (the cell tagged `readme-figure`), shrunk to a few hundred KB at most."""
    import nbformat

    written = []
    for name, path in executed.items():
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if FIGURE_TAG in c.get("metadata", {}).get("tags", [])]
        images = [
            o["data"]["image/png"] for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
        ]
        if images:
            written.append(_write_small_png(base64.b64decode(images[0]), folder / f"{name}.png"))
    return written


def _write_small_png(png: bytes, path: Path) -> Path:
    """Resize to FIGURE_WIDTH and quantise to 256 colours (figures are flat colours mostly)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > FIGURE_WIDTH:
        image = image.resize((FIGURE_WIDTH, round(image.height * FIGURE_WIDTH / image.width)), Image.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def summary_text(report: dict) -> str:
    """The closing message: where things are, and the mIoU with its protocol."""
    from segkit.metrics import describe_protocol

    run_dir = report["run_dir"]
    lines = [
        "",
        (
            f"segkit demo finished in {report['seconds'] / 60:.1f} minutes "
            f"(SYNTHETIC data in {_show(report['data'])}, not Cityscapes)"
        ),
        f"  executed notebooks: {_show(Path(next(iter(report['notebooks'].values()))).parent)}/",
        f"  figures:            {_show(run_dir / 'figures')}/",
        f"  checkpoint:         {_show(run_dir / 'best_model.pth')}",
        f"  TensorBoard logs:   {_show(run_dir / 'tb')}   (segkit dashboard --logdir {_show(run_dir / 'tb')})",
    ]
    if report["figures"]:
        lines.append(f"  README figures:     {', '.join(_show(p) for p in report['figures'])}")
    lines.append(f"  best model: {describe_protocol(report['metrics'])}")
    return "\n".join(lines)


def _rel(path: Path) -> str:
    """A path as notebooks get it: relative to the repository root when inside it."""
    path = path if path.is_absolute() else Path.cwd() / path
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path.resolve())


def _show(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)
