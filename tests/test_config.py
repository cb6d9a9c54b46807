"""Config dataclasses: validation messages, coercion, presets, and CLI flags == fields."""

from __future__ import annotations

from dataclasses import fields

import pytest

from segkit.cli import build_parser
from segkit.config import EvalConfig, PredictConfig, SynthConfig, TrainConfig
from segkit.recipes import PRESETS, apply_preset
from segkit.reflect import field_help, flag_name, from_dict
from segkit.errors import ConfigError


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


@pytest.mark.parametrize("cls", [TrainConfig, EvalConfig, PredictConfig, SynthConfig])
def test_every_field_has_help(cls):
    helps = field_help(cls)
    assert set(helps) == {f.name for f in fields(cls)}
    assert all(len(h) > 5 for h in helps.values())


@pytest.mark.parametrize("command, cls", [("train", TrainConfig), ("evaluate", EvalConfig), ("predict", PredictConfig), ("synth", SynthConfig)])
def test_cli_flags_equal_config_fields(command, cls):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    flags = {o for a in sub._actions for o in a.option_strings if o.startswith("--") and o not in ("--help",)}
    expected = {flag_name(f.name) for f in fields(cls)}
    bool_negations = {flag_name(f.name).replace("--", "--no-") for f in fields(cls) if f.type in ("bool", bool)}
    assert flags - bool_negations == expected


def test_seed_commands_map_one_to_one():
    args = build_parser().parse_args(["train", "--epochs", "20", "--batch-size", "4", "--lr", "1e-4"])
    assert (args.epochs, args.batch_size, args.lr) == (20, 4, 1e-4)


def test_architectures_are_the_installed_smps():
    import segmentation_models_pytorch as smp

    from segkit.model_choice import ARCHITECTURES

    assert set(ARCHITECTURES) == set(smp.MODEL_ARCHITECTURES_MAPPING)
