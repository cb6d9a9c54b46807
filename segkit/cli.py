"""`segkit <command>`: flags are generated from the config dataclasses (one source of truth).

User errors (SegkitError) print one clear message and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from segkit.config import EvalConfig, PredictConfig, SynthConfig, TrainConfig
from segkit.errors import SegkitError
from segkit.recipes import preset_values
from segkit.reflect import add_config_flags, config_from_args

# ----------------------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    from segkit.launch import resolve_train_config, train

    cfg, explicit = config_from_args(TrainConfig, args, fill=preset_values)
    cfg = resolve_train_config(cfg, explicit)
    result = train(cfg)
    from segkit.runtime import is_main

    if not is_main():
        return 0
    if result.metrics is not None:
        from segkit.metrics import describe_protocol

        print(f"best model: {Path(cfg.run_dir) / 'best_model.pth'} | {describe_protocol(result.metrics)}")
    if result.status.interrupted:
        print(f"stopped ({result.status}); resume with: segkit train --run-dir {cfg.run_dir} --resume", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from segkit import evaluation
    from segkit.metrics import format_table

    cfg, _ = config_from_args(EvalConfig, args)
    summary, out = evaluation.run_evaluation(cfg)
    print(format_table(summary))
    if out is not None:
        print(f"wrote {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from segkit import predict

    cfg, _ = config_from_args(PredictConfig, args)
    print(predict.describe(predict.run_prediction(cfg), cfg))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from segkit.data.synthetic import generate_synthetic

    cfg, _ = config_from_args(SynthConfig, args)
    root = generate_synthetic(
        Path(cfg.out), cfg.num_train, cfg.num_val, cfg.image_size, cfg.seed, overwrite=cfg.overwrite
    )
    print(f"synthetic data set (Cityscapes layout) in {root}: {cfg.num_train} train, {cfg.num_val} val images")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    import dataclasses

    from segkit.models import build_model, model_cost
    from segkit.recipes import PRESETS, apply_preset

    for name, preset in PRESETS.items():
        cfg = apply_preset(TrainConfig(preset=name), explicit={"preset"})
        net = build_model(dataclasses.replace(cfg.model_choice, encoder_weights=""))  # cost only: no weights
        cost = model_cost(net, cfg.crop)
        cpu = (
            f"{preset.cpu_img_s:g} img/s measured (benchmarks/train_throughput.py)"
            if preset.cpu_img_s
            else "not measured"
        )
        print(f"{name}: {preset.doc}")
        print(
            f"   {cost['params_m']:.1f} M params, {cost['gflops']:.1f} GFLOPs/image at {cfg.crop[0]}x{cfg.crop[1]}"
            f" | CPU (2 cores): {cpu} | T4: not measured"
        )
        print("   " + json.dumps(preset.fields))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from segkit.model_choice import describe_families

    print(describe_families())
    return 0


COMMANDS: dict[str, tuple[str, type | None, Callable[[argparse.Namespace], int]]] = {
    "train": ("train a model; every TrainConfig field is a flag", TrainConfig, cmd_train),
    "evaluate": (
        "score a checkpoint (--checkpoint) or a folder of predictions (--predictions)",
        EvalConfig,
        cmd_evaluate,
    ),
    "predict": ("segment images at their own size", PredictConfig, cmd_predict),
    "synth": ("write the synthetic data set in the Cityscapes layout", SynthConfig, cmd_synth),
    "presets": ("list the named training recipes", None, cmd_presets),
    "models": ("list the model families --model takes, and the --encoder each takes", None, cmd_models),
}


# Commands whose modules register their own flags. Those modules import torch (~2 s), so only the
# command being run is imported; the others appear in `segkit --help` with this text (a test
# checks it equals what each module registers).
EXTENSIONS: dict[str, tuple[str, str]] = {
    "prepare": ("segkit.data.cache", "build the preprocessing cache (decoded, label-mapped, resized arrays)"),
    "export": (
        "segkit.backends",
        "export a checkpoint to ONNX or OpenVINO, fp32 or int8 (for segkit predict --backend)",
    ),
    "benchmark": ("segkit.benchmark", "latency, frames/s, peak memory and mIoU cost of each inference backend"),
    "dashboard": ("segkit.dashboard", "serve TensorBoard on 127.0.0.1 (--public: + ngrok link with basic auth)"),
    "kaggle": ("segkit.kaggle", "Kaggle: environment preflight and kernel bundle"),
    "demo": ("segkit.demo", "synthetic data -> notebooks 01..05 headless -> a trained run (~5 min on CPU)"),
    "runs": ("segkit.compare", "list training runs side by side: model, epochs, time, status, mIoU with protocol"),
}


def _extension_commands(sub, command: str | None) -> None:
    """Register extension commands: fully if `command` is None or names them, else by name only."""
    import importlib

    for name, (module_name, help_text) in EXTENSIONS.items():
        if command is not None and command != name:
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        importlib.import_module(module_name).register_cli(sub)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `segkit` parser; with `command`, only that command's module is imported (faster start)."""
    # allow_abbrev=False: a typo such as --epoch must fail, never quietly mean --epochs.
    parser = argparse.ArgumentParser(
        prog="segkit", description="Semantic segmentation of urban scenes (Cityscapes).", allow_abbrev=False
    )
    from segkit import __version__

    parser.add_argument("--version", action="version", version=f"segkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, cls, func) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        if cls is not None:
            add_config_flags(p, cls)
        p.set_defaults(func=func)
    _extension_commands(sub, command)
    _no_abbreviations(parser)
    return parser


def _no_abbreviations(parser: argparse.ArgumentParser) -> None:
    """Every (sub)command refuses abbreviated flags, including those other modules registered."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _no_abbreviations(child)


def user_message(error: SegkitError) -> str:
    """The error's own message, without the worker traceback a DataLoader wraps around it."""
    text = str(error)
    marker = f"{type(error).__module__}.{type(error).__qualname__}: "
    if "Original Traceback" in text and marker in text:
        return text.rsplit(marker, 1)[1].strip()
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `segkit` console script and `python -m segkit`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), "")  # only --version/-h come before it
    args = build_parser(command).parse_args(argv)  # --help and usage errors exit here, before torch loads
    from segkit.progress import setup_logging

    setup_logging()
    try:
        return int(args.func(args) or 0)
    except SegkitError as e:
        print(f"segkit {args.command}: error: {user_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"segkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
