"""Config dataclasses: validation messages, coercion, presets, and CLI flags == fields."""

from __future__ import annotations

from dataclasses import fields

import pytest

from segkit.cli import build_parser
from segkit.config import (
    BenchmarkConfig,
    BundleConfig,
    CompareConfig,
    DashboardConfig,
    DataConfig,
    DemoConfig,
    EvalConfig,
    ExploreConfig,
    ExportConfig,
    PredictConfig,
    PreflightConfig,
    PrepareConfig,
    SynthConfig,
    TrainConfig,
    VisualizeConfig,
)
from segkit.errors import ConfigError
from segkit.recipes import PRESETS, apply_preset, preset_values
from segkit.reflect import config_from_args, field_help, flag_name, from_dict


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"lr": -1e-3}, ["lr", "> 0", "-0.001"]),
        ({"image_size": (250, 512)}, ["250x512", "multiple of 16", "try 256x512"]),
        ({"depth": 5, "image_size": (100, 200)}, ["multiple of 32", "try 96x192"]),
        ({"model": "resnet34-unet"}, ["--model unet --encoder resnet34"]),
        ({"model": "deeplabv3plsu", "encoder": "resnet50"}, ["did you mean 'deeplabv3plus'"]),
        ({"model": "fpn"}, ["needs an encoder", "--encoder resnet34"]),
        ({"optimizer": "adamm"}, ["adamw", "did you mean"]),
        ({"epochs": "ten"}, ["epochs", "integer", "ten"]),
        ({"resume": True, "overwrite": True}, ["resume", "overwrite"]),
        ({"scale_range": (2.0, 0.5)}, ["scale_range"]),
    ],
)
def test_invalid_values_say_what_and_how(changes, words):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**changes)
    for word in words:
        assert word in str(err.value)


def test_unknown_name_lists_valid_ones_and_suggests():
    with pytest.raises(ConfigError) as err:
        from_dict(TrainConfig, {"epoch": 3})
    msg = str(err.value)
    assert "'epoch'" in msg and "did you mean 'epochs'" in msg and "batch_size" in msg


@pytest.mark.parametrize(
    "value, expected",
    [("128x256", (128, 256)), ("128,256", (128, 256)), ([128, 256], (128, 256)), ((64, 128), (64, 128))],
)
def test_image_size_coercion(value, expected):
    assert TrainConfig(image_size=value).image_size == expected


def test_string_numbers_and_bools_are_coerced():
    cfg = from_dict(TrainConfig, {"epochs": "3", "lr": "1e-3", "resume": "true"})
    assert (cfg.epochs, cfg.lr, cfg.resume) == (3, 1e-3, True)


def test_preset_fills_defaults_but_explicit_values_win():
    cfg = apply_preset(TrainConfig(preset="cpu-quick", lr=0.01), explicit={"preset", "lr"})
    assert cfg.lr == 0.01
    assert cfg.image_size == PRESETS["cpu-quick"].fields["image_size"]
    with pytest.raises(ConfigError, match="valid presets"):
        apply_preset(TrainConfig(preset="cpu-quik"))


def test_every_preset_is_a_valid_config():
    for name in PRESETS:
        cfg = apply_preset(TrainConfig(preset=name), explicit={"preset"})
        assert cfg.preset == name


COMMAND_CONFIGS = [
    (("train",), TrainConfig),
    (("evaluate",), EvalConfig),
    (("predict",), PredictConfig),
    (("synth",), SynthConfig),
    (("prepare",), PrepareConfig),
    (("export",), ExportConfig),
    (("benchmark",), BenchmarkConfig),
    (("demo",), DemoConfig),
    (("runs",), CompareConfig),
    (("dashboard",), DashboardConfig),
    (("kaggle", "preflight"), PreflightConfig),
    (("kaggle", "bundle"), BundleConfig),
]


def _subparser(path: tuple[str, ...]):
    parser = build_parser()
    for name in path:
        parser = next(a for a in parser._actions if a.dest in ("command", "kaggle_command")).choices[name]
    return parser


@pytest.mark.parametrize("path, cls", COMMAND_CONFIGS, ids=[" ".join(p) for p, _ in COMMAND_CONFIGS])
def test_every_commands_flags_are_its_config_fields(path, cls):
    sub = _subparser(path)
    flags = {o for a in sub._actions for o in a.option_strings if o.startswith("--") and o not in ("--help",)}
    positional = {a.dest for a in sub._actions if not a.option_strings and a.dest != "help"}
    expected = {flag_name(f.name) for f in fields(cls) if not f.metadata.get("positional")}
    bool_negations = {flag_name(f.name).replace("--", "--no-") for f in fields(cls) if f.type in ("bool", bool)}
    assert flags - bool_negations == expected
    assert positional == {f.name for f in fields(cls) if f.metadata.get("positional")}
    helps = field_help(cls)
    assert set(helps) == {f.name for f in fields(cls)} and all(len(h) > 5 for h in helps.values())


def test_flags_parse_into_the_config_with_its_defaults_and_types():
    args = build_parser().parse_args(["kaggle", "bundle", "--datasets", "me/cityscapes", "me/lite0", "--no-gpu"])
    cfg, explicit = config_from_args(BundleConfig, args)
    assert cfg.datasets == ("me/cityscapes", "me/lite0") and cfg.gpu is False and explicit == {"datasets", "gpu"}
    assert cfg.title == BundleConfig.title and cfg.internet is False
    cfg, _ = config_from_args(
        PrepareConfig, build_parser().parse_args(["prepare", "--image-size", "128", "256", "--splits", "training"])
    )
    assert cfg.image_size == (128, 256) and cfg.splits == ("training",)
    cfg, _ = config_from_args(CompareConfig, build_parser().parse_args(["runs", "runs/sweeps"]))
    assert cfg.runs_dir == "runs/sweeps"
    assert config_from_args(CompareConfig, build_parser().parse_args(["runs"]))[0].runs_dir == CompareConfig.runs_dir


def test_the_data_fields_are_one_definition_shared_by_every_data_command():
    data = [f.name for f in fields(DataConfig)]
    assert data == [
        "data_root",
        "layout",
        "image_glob",
        "label_glob",
        "label_format",
        "color_tolerance",
        "classes",
        "class_map",
    ]
    for cls in (TrainConfig, EvalConfig, ExploreConfig, VisualizeConfig, PrepareConfig):
        assert issubclass(cls, DataConfig) and [f.name for f in fields(cls)][: len(data)] == data
        assert {n: field_help(cls)[n] for n in data} == {n: field_help(DataConfig)[n] for n in data}


def test_seed_commands_map_one_to_one():
    args = build_parser().parse_args(["train", "--epochs", "20", "--batch-size", "4", "--lr", "1e-4"])
    assert (args.epochs, args.batch_size, args.lr) == (20, 4, 1e-4)


def test_the_smp_families_are_the_installed_smps():
    import segmentation_models_pytorch as smp

    from segkit.model_choice import FAMILIES

    assert {f.name for f in FAMILIES.values() if f.smp} == set(smp.MODEL_ARCHITECTURES_MAPPING)


def test_a_preset_completes_the_config_before_its_checks_run():
    """`--encoder-lr-scale 0` needs an encoder: the preset's counts, not the defaults' own U-Net."""
    parser = _subparser(("train",))
    args = parser.parse_args(["--preset", "cpu-pretrained", "--encoder-lr-scale", "0", "--epochs", "3"])
    cfg, explicit = config_from_args(TrainConfig, args, fill=preset_values)
    assert (cfg.encoder, cfg.encoder_lr_scale, cfg.epochs) == (PRESETS["cpu-pretrained"].fields["encoder"], 0.0, 3)
    assert explicit == {"preset", "encoder_lr_scale", "epochs"}
    assert apply_preset(cfg, explicit) == cfg  # already complete
    with pytest.raises(ConfigError, match="act on a pretrained encoder"):  # no preset: still refused
        config_from_args(TrainConfig, parser.parse_args(["--encoder-lr-scale", "0"]), fill=preset_values)


def test_a_long_help_goes_on_in_comment_lines_below_its_field():
    """`ruff format` keeps a field on one line only when it fits: the rest of its help continues below."""
    helps = field_help(TrainConfig)
    assert helps["time_budget"] == (
        "minutes of training before a clean stop (evaluate, save), 0 = none (Kaggle: fit the 12 h session)"
    )
    assert helps["scale_range"] == "random scale range of the training augmentation"  # a one-line help stays as it was
