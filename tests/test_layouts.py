"""Data layouts as users bring them: gtCoarse (Nighttime Driving), KITTI semantics, ACDC, Dark Zurich
and glob patterns, each written as real PNG/JPEG files in tmp_path. Discovery (auto and by flag),
training, scoring prediction folders with known answers, and each layout's bad inputs."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import conftest
import numpy as np
import pytest
from PIL import Image

from segkit.config import LAYOUTS, EvalConfig, TrainConfig
from segkit.data.discover import DataRoots, find_data_roots, list_samples, list_splits
from segkit.data.layouts import BUILT_IN, layouts_for
from segkit.errors import ConfigError, DataError
from segkit.inference import prediction_name
from segkit.kaggle_env import KAGGLE_INPUT_ENV
from segkit.labels import LABEL_TO_TRAIN
from segkit.reflect import to_argv

TINY = [
    "--base-channels",
    "4",
    "--depth",
    "2",
    "--image-size",
    "32",
    "64",
    "--batch-size",
    "2",
    "--epochs",
    "1",
    "--num-workers",
    "0",
    "--lr",
    "3e-3",
    "--num-vis",
    "1",
    "--device",
    "cpu",
    "--max-train-images",
    "4",
]
KITTI_MINI = Path("/work/shared/data/kitti-mini")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real data may leak in: no $CITYSCAPES_DATASET, an empty Kaggle mount, cwd in tmp."""
    monkeypatch.delenv("CITYSCAPES_DATASET", raising=False)
    monkeypatch.setenv(KAGGLE_INPUT_ENV, str(tmp_path / "kaggle_input"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path


# ----------------------------------------------------------------------------- writing layouts


def random_label(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    return conftest._random_blocks(rng, *size)


def halves(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Left half road (labelId 7), right half sidewalk (8): a known answer for scoring."""
    label = np.full(size, 7, np.uint8)
    label[:, size[1] // 2 :] = 8
    return label


def write_frames(
    root: Path, frames: list[tuple[str, str | None]], size: tuple[int, int], seed: int = 0, make_label=random_label
) -> Path:
    """Each (image, label) path below `root` as a real file; a label named *TrainIds* holds trainIds."""
    rng = np.random.default_rng(seed)
    for image_rel, label_rel in frames:
        label = make_label(rng, size)
        image = root / image_rel
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(conftest._image_for(label, rng)).save(image)
        if label_rel is not None:
            path = root / label_rel
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(LABEL_TO_TRAIN[label] if "TrainIds" in label_rel else label).save(path)
    return root


def nighttime(root: Path, size=(36, 64), **kw) -> Path:
    """Nighttime Driving as shipped: leftImg8bit/test/night + gtCoarse_daytime_trainvaltest/test/night."""
    frames = [
        (
            f"leftImg8bit/test/night/{i:02d}_frame_0{555 + i}_leftImg8bit.png",
            f"gtCoarse_daytime_trainvaltest/test/night/{i:02d}_frame_0{555 + i}_gtCoarse_labelIds.png",
        )
        for i in range(1, 4)
    ]
    return write_frames(root, frames, size, **kw)


def coarse(root: Path, size=(32, 64), fine: bool = False, **kw) -> Path:
    """Cityscapes images with gtCoarse/ labels (and gtFine/ too when `fine`); train_extra is coarse only."""
    frames = []
    for split, n in (("train", 4), ("val", 2), ("train_extra", 2)):
        for i in range(n):
            stem = f"{('aachen', 'bremen')[i % 2]}_{i:06d}_000019"
            image = f"leftImg8bit/{split}/{stem.split('_')[0]}/{stem}_leftImg8bit.png"
            frames.append((image, f"gtCoarse/{split}/{stem.split('_')[0]}/{stem}_gtCoarse_labelIds.png"))
            if fine and split != "train_extra":
                frames.append((image, f"gtFine/{split}/{stem.split('_')[0]}/{stem}_gtFine_labelIds.png"))
    return write_frames(root, frames, size, **kw)


def kitti(root: Path, size=(36, 48), **kw) -> Path:
    """KITTI data_semantics: training/{image_2,semantic}/000000_10.png and testing/image_2 (no labels)."""
    frames = [(f"training/image_2/{i:06d}_10.png", f"training/semantic/{i:06d}_10.png") for i in range(5)]
    frames += [(f"testing/image_2/{i:06d}_10.png", None) for i in range(2)]
    return write_frames(root, frames, size, **kw)


def acdc(root: Path, size=(32, 64), **kw) -> Path:
    """ACDC: rgb_anon/<condition>/<split>/<sequence>/<frame>_rgb_anon.png + gt/..._gt_labelIds.png (and a
    reference split without labels)."""
    frames = []
    for c, condition in enumerate(("fog", "night")):
        for split, n in (("train", 2), ("val", 1)):
            for i in range(n):
                seq, stem = f"GOPR04{c}{i}", f"GOPR04{c}{i}_frame_{i:06d}"
                labels = "labelTrainIds" if condition == "night" else "labelIds"
                frames.append(
                    (
                        f"rgb_anon/{condition}/{split}/{seq}/{stem}_rgb_anon.png",
                        f"gt/{condition}/{split}/{seq}/{stem}_gt_{labels}.png",
                    )
                )
        frames.append((f"rgb_anon/{condition}/train_ref/GOPR04{c}9/GOPR04{c}9_frame_000001_ref_rgb_anon.png", None))
    return write_frames(root, frames, size, **kw)


def dark_zurich(root: Path, size=(36, 48), **kw) -> Path:
    """Dark Zurich: rgb_anon/val/night/GOPRO0356/GOPRO0356_000488_rgb_anon.png + gt/val/night/...; train unlabelled."""
    frames = [
        (
            f"rgb_anon/val/night/GOPRO0356/GOPRO0356_000{488 + i}_rgb_anon.png",
            f"gt/val/night/GOPRO0356/GOPRO0356_000{488 + i}_gt_labelIds.png",
        )
        for i in range(3)
    ]
    frames += [("rgb_anon/train/night/GOPR0356/GOPR0356_000000_rgb_anon.png", None)]
    return write_frames(root, frames, size, **kw)


GLOBS = ["--image-glob", "images/{split}/**/*.jpg", "--label-glob", "labels/{split}/*_mask.png"]


def globbed(root: Path, size=(48, 36), **kw) -> Path:
    """Anything else: images/<split>/<a>/<b>/x00i.jpg (JPEG, any depth) + labels/<split>/x00i_mask.png."""
    frames = [
        (f"images/{split}/{'ab'[i % 2]}/{'deep/' * (i % 2)}x{i:03d}.jpg", f"labels/{split}/x{i:03d}_mask.png")
        for split, n in (("train", 4), ("val", 2))
        for i in range(n)
    ]
    return write_frames(root, frames, size, **kw)


# name -> (writer, layout found, flags, a split with labels, expected stems of that split, expected groups)
LAYOUT_CASES = {
    "nighttime": (
        nighttime,
        "cityscapes",
        ["--layout", "gtcoarse"],
        "test",
        ["01_frame_0556", "02_frame_0557", "03_frame_0558"],
        {"night"},
    ),
    "kitti": (kitti, "kitti", ["--layout", "kitti"], "training", [f"{i:06d}_10" for i in range(5)], {""}),
    "acdc": (
        acdc,
        "acdc",
        ["--layout", "acdc"],
        "val",
        ["GOPR0400_frame_000000", "GOPR0410_frame_000000"],
        {"fog/GOPR0400", "night/GOPR0410"},
    ),
    "dark-zurich": (
        dark_zurich,
        "dark-zurich",
        ["--layout", "dark-zurich"],
        "val",
        ["GOPRO0356_000488", "GOPRO0356_000489", "GOPRO0356_000490"],
        {"night/GOPRO0356"},
    ),
    "glob": (globbed, "glob", [*GLOBS, "--label-format", "labelIds"], "val", ["x000", "x001"], {"a", "b/deep"}),
}


def flags_to_fields(flags: list[str]) -> dict[str, str]:
    return {flags[i][2:].replace("-", "_"): flags[i + 1] for i in range(0, len(flags), 2)}


def layouts_of_flags(flags: list[str]):
    return layouts_for(**flags_to_fields(flags))


def cli(*argv: str | Path) -> tuple[int, str]:
    """`segkit ARGV` in this process: (exit code, stdout + stderr)."""
    from segkit.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main([str(a) for a in argv])
    return code, out.getvalue()


# ----------------------------------------------------------------------------- discovery


@pytest.mark.parametrize("case", [c for c in LAYOUT_CASES if c != "glob"])
def test_each_shipped_layout_is_found_without_flags(case, tmp_path):
    write, name, _, split, stems, groups = LAYOUT_CASES[case]
    root = write(tmp_path / case)
    roots = find_data_roots(tmp_path)  # a parent of the data set: found by the bounded search
    assert roots.layout.name == name and roots.image_root == root and roots.label_root == root
    assert split in list_splits(roots)
    samples = list_samples(roots, split)
    assert [s.stem for s in samples] == stems and {s.city for s in samples} == groups
    assert all(s.image.is_file() and s.label.is_file() and s.split == split for s in samples)
    assert roots.layout.title in roots.describe()


@pytest.mark.parametrize("case", list(LAYOUT_CASES))
def test_each_layout_is_found_by_its_flag(case, tmp_path):
    write, name, flags, split, stems, _ = LAYOUT_CASES[case]
    root = write(tmp_path / case)
    roots = find_data_roots(root, layouts=layouts_of_flags(flags))
    assert roots.layout.name == ("gtcoarse" if case == "nighttime" else name)
    assert [s.stem for s in list_samples(roots, split)] == stems
    assert [s.stem for s in list_samples(roots, split, need_images=False)] == stems


def test_splits_are_the_ones_with_labels(tmp_path):
    assert list_splits(find_data_roots(kitti(tmp_path / "k"))) == ["training"]  # testing/ has no labels
    assert list_splits(find_data_roots(acdc(tmp_path / "a"))) == ["train", "val"]  # train_ref has no gt
    assert list_splits(find_data_roots(dark_zurich(tmp_path / "d"))) == ["val"]
    acdc_samples = list_samples(find_data_roots(tmp_path / "a"), "train")
    assert {s.label_format for s in acdc_samples} == {"labelIds", "labelTrainIds"}  # fog labelIds, night trainIds


def test_gtcoarse_serves_splits_gtfine_lacks_and_is_chosen_by_flag(tmp_path):
    root = coarse(tmp_path / "cs", fine=True)
    auto = find_data_roots(root)
    assert auto.layout.name == "cityscapes" and list_splits(auto) == ["train", "train_extra", "val"]
    assert all("_gtFine_" in s.label.name for s in list_samples(auto, "train"))
    assert all("_gtCoarse_" in s.label.name for s in list_samples(auto, "train_extra"))
    forced = find_data_roots(root, layouts=layouts_for("gtcoarse"))
    assert all("_gtCoarse_" in s.label.name for s in list_samples(forced, "train"))


def test_several_layouts_under_one_root_are_refused_with_the_flag_that_picks(tmp_path):
    kitti(tmp_path / "data" / "kitti")
    conftest.write_cityscapes(tmp_path / "data" / "cityscapes")
    with pytest.raises(DataError, match=r"(?s)several data layouts.*--layout cityscapes.*--layout kitti.*Fix"):
        find_data_roots(tmp_path / "data")
    assert find_data_roots(tmp_path / "data", layouts=layouts_for("kitti")).image_root == tmp_path / "data" / "kitti"


def test_glob_stem_split_and_group(tmp_path):
    root = globbed(tmp_path / "g")
    roots = find_data_roots(
        root, layouts=layouts_for(image_glob=GLOBS[1], label_glob=GLOBS[3], label_format="labelIds")
    )
    assert list_splits(roots) == ["train", "val"]
    samples = list_samples(roots, "train")
    assert [(s.stem, s.city) for s in samples] == [("x000", "a"), ("x002", "a"), ("x001", "b/deep"), ("x003", "b/deep")]
    assert samples[0].image.suffix == ".jpg" and samples[0].label.name == "x000_mask.png"


def test_glob_with_format_in_the_name_needs_no_flag(tmp_path):
    frames = [(f"img/{s}/f{i}.png", f"ann/{s}/f{i}_labelTrainIds.png") for s in ("train", "val") for i in range(2)]
    root = write_frames(tmp_path / "g", frames, (32, 32))
    roots = find_data_roots(
        root, layouts=layouts_for(image_glob="img/{split}/*.png", label_glob="ann/{split}/*_{format}.png")
    )
    assert [(s.stem, s.label_format) for s in list_samples(roots, "val")] == [
        ("f0", "labelTrainIds"),
        ("f1", "labelTrainIds"),
    ]


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"image_glob": "images/{split}/*.jpg"}, "go together: add --label-glob"),
        ({"image_glob": "i/{split}/*.jpg", "label_glob": "l/{split}/*.png"}, "below data_root: give --data-root"),
        ({"data_root": "d", "image_glob": "i/*.jpg", "label_glob": "l/{split}/*.png"}, "needs {split} exactly once"),
        (
            {"data_root": "d", "image_glob": "i/{split}/img_*.jpg", "label_glob": "l/{split}/*.png"},
            "is not * and a fixed ending",
        ),
        (
            {"data_root": "d", "image_glob": "/abs/{split}/*.jpg", "label_glob": "l/{split}/*.png"},
            "relative to data_root",
        ),
        (
            {"data_root": "d", "image_glob": "i/{split}/*.jpg", "label_glob": "l/{split}/*.png", "layout": "kitti"},
            "exclude",
        ),
        ({"layout": "glob"}, "needs image_glob and label_glob"),
        ({"layout": "kiti"}, "did you mean 'kitti'"),
        ({"label_format": "trainIds"}, "label_format must be one of"),
        ({"train_split": ""}, "train_split must name one folder"),
    ],
)
def test_layout_fields_are_checked_with_a_fix(fields, words):
    with pytest.raises(ConfigError, match=words.replace("*", r"\*").replace("{", r"\{")):
        TrainConfig(**fields)


def test_layout_choices_name_the_built_in_layouts_and_travel_to_torchrun():
    assert set(LAYOUTS) == {"auto", "glob", *BUILT_IN}
    cfg = TrainConfig(layout="kitti", train_split="training", val_split="training", label_format="labelIds")
    argv = to_argv(cfg)
    for flag, value in (
        ("--layout", "kitti"),
        ("--train-split", "training"),
        ("--val-split", "training"),
        ("--label-format", "labelIds"),
        ("--image-glob", ""),
    ):
        assert argv[argv.index(flag) + 1] == value
    assert {"layout", "image_glob", "label_glob", "label_format"} <= set(vars(EvalConfig()))


def test_record_round_trip(tmp_path):
    roots = find_data_roots(acdc(tmp_path / "a"))
    again = DataRoots.from_record(json.loads(json.dumps(roots.record())))
    assert again == roots
    assert DataRoots.from_record({"image_root": "x", "label_root": "x"}).layout.name == "cityscapes"


@pytest.mark.parametrize(
    "image, expected",
    [
        ("aachen_000000_000019_leftImg8bit.png", "aachen_000000_000019_labelIds.png"),
        ("GOPRO0356_000488_rgb_anon.png", "GOPRO0356_000488_labelIds.png"),
        ("000000_10.png", "000000_10_labelIds.png"),
        ("01_frame_0555_leftImg8bit.png", "01_frame_0555_labelIds.png"),
        ("x001.jpg", "x001_labelIds.png"),
    ],
)
def test_prediction_names_are_the_frames_stem(image, expected):
    assert prediction_name(Path("in") / image, "labelIds") == expected


# ----------------------------------------------------------------------------- scoring


def predictions(roots: DataRoots, split: str, out: Path, make) -> Path:
    """A labelIds prediction per frame, `make(ground truth as trainIds)`, named from its image as
    `segkit predict` names it."""
    from segkit.data.cityscapes import read_label

    out.mkdir(parents=True)
    for sample in list_samples(roots, split):
        pred = make(read_label(sample.label, sample.label_format))
        Image.fromarray(pred.astype(np.uint8)).save(out / prediction_name(sample.image, "labelIds"))
    return out


@pytest.mark.parametrize("case", list(LAYOUT_CASES))
def test_evaluate_predictions_equal_to_gt_scores_100(case, tmp_path):
    from segkit.labels import train_to_label

    write, _, flags, split, stems, _ = LAYOUT_CASES[case]
    root = write(tmp_path / case)
    pred = predictions(find_data_roots(root, layouts=layouts_of_flags(flags)), split, tmp_path / "pred", train_to_label)
    out = tmp_path / "scores.json"
    code, text = cli("evaluate", "--predictions", pred, "--data-root", root, "--split", split, *flags, "--output", out)
    assert code == 0, text
    summary = json.loads(out.read_text())
    assert summary["miou"] == 1.0 and summary["protocol"]["images"] == len(stems)


@pytest.mark.parametrize("case", list(LAYOUT_CASES))
def test_evaluate_predictions_known_confusion(case, tmp_path):
    """Ground truth half road, half sidewalk; all-road predictions: IoU road 1/2, sidewalk 0, mIoU 1/4."""
    write, _, flags, split, _, _ = LAYOUT_CASES[case]
    root = write(tmp_path / case, make_label=halves)
    roots = find_data_roots(root, layouts=layouts_of_flags(flags))
    pred = predictions(roots, split, tmp_path / "pred", lambda label: np.full_like(label, 7))
    summary = _score(EvalConfig(predictions=str(pred), data_root=str(root), split=split, **flags_to_fields(flags)))
    assert summary["per_class"]["road"]["iou"] == pytest.approx(0.5)
    assert summary["per_class"]["sidewalk"]["iou"] == 0.0
    assert summary["miou"] == pytest.approx(0.25)


def _score(cfg: EvalConfig) -> dict:
    from segkit.evaluation import run_evaluation

    return run_evaluation(cfg)[0]


# ----------------------------------------------------------------------------- training


def test_train_on_gtcoarse_found_without_flags(tmp_path):
    root = coarse(tmp_path / "cs")
    run = tmp_path / "run"
    code, text = cli("train", "--data-root", root, "--run-dir", run, *TINY)
    assert code == 0, text
    data = json.loads((run / "config.json").read_text())["data"]
    assert data["layout"]["name"] == "cityscapes" and data["image_root"] == str(root)
    assert (run / "metrics.json").is_file()


def test_train_kitti_then_evaluate_predict_and_notebooks_find_the_same_data(tmp_path):
    root = kitti(tmp_path / "kitti")
    run = tmp_path / "run"
    code, text = cli(
        "train", "--data-root", root, "--run-dir", run, "--train-split", "training", "--val-split", "training", *TINY
    )
    assert code == 0, text
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["protocol"]["split"] == "training" and metrics["protocol"]["images"] == 5
    assert json.loads((run / "config.json").read_text())["data"]["layout"]["name"] == "kitti"
    # evaluate and the notebooks' loader find the run's data with no data flags
    out = tmp_path / "ckpt.json"
    code, text = cli("evaluate", "--run-dir", run, "--split", "training", "--output", out, "--device", "cpu")
    assert code == 0, text
    assert json.loads(out.read_text())["miou"] == pytest.approx(metrics["miou"], abs=1e-9)
    from segkit.analysis import load_run, triptychs

    loaded = load_run(run, device="cpu")
    assert loaded.roots.layout.name == "kitti"
    items = triptychs(loaded, list_samples(loaded.roots, "training")[:1])
    assert items[0]["name"] == "000000_10" and items[0]["pred"].shape == (36, 48)
    # segkit predict names files by the frame's stem; evaluate --predictions matches them
    preds = tmp_path / "preds"
    code, text = cli(
        "predict",
        "--checkpoint",
        run / "best_model.pth",
        "--img",
        root / "training" / "image_2",
        "--output",
        preds,
        "--format",
        "labelIds",
        "--device",
        "cpu",
    )
    assert code == 0, text
    assert sorted(p.name for p in preds.iterdir()) == [f"{i:06d}_10_labelIds.png" for i in range(5)]
    scored = _score(EvalConfig(predictions=str(preds), data_root=str(root), layout="kitti", split="training"))
    assert scored["miou"] == pytest.approx(metrics["miou"], abs=1e-9)


def test_train_on_glob_patterns(tmp_path):
    root = globbed(tmp_path / "g")
    run = tmp_path / "run"
    code, text = cli("train", "--data-root", root, "--run-dir", run, *GLOBS, "--label-format", "labelIds", *TINY)
    assert code == 0, text
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["config"]["image_glob"] == GLOBS[1] and recorded["data"]["layout"]["name"] == "glob"
    assert json.loads((run / "metrics.json").read_text())["protocol"]["images"] == 2


def test_cache_and_stats_on_kitti(tmp_path):
    from segkit.data.cache import find_cache, prepare_cache
    from segkit.data.cityscapes import check_samples
    from segkit.data.report import split_city_counts

    roots = find_data_roots(kitti(tmp_path / "kitti"))
    cache = prepare_cache(roots, (32, 64), ("training",), workers=1)
    assert find_cache(list_samples(roots, "training"), (32, 64)) == cache
    report = check_samples(list_samples(roots, "training"))
    assert report["pairs"] == 5 and report["sizes"] == {(36, 48): 5}
    assert split_city_counts({"training": list_samples(roots, "training")}).loc["total", "training"] == 5
    code, text = cli(
        "prepare",
        "--data-root",
        roots.image_root,
        "--layout",
        "kitti",
        "--splits",
        "training",
        "--image-size",
        "32",
        "64",
    )
    assert code == 0 and "training 5 images" in text, text
    assert "testing" not in list_splits(roots) and "segkit_cache" not in list_splits(roots)


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "case, label",
    [
        ("nighttime", "gtCoarse_daytime_trainvaltest/test/night/02_frame_0557_gtCoarse_labelIds.png"),
        ("kitti", "training/semantic/000003_10.png"),
        ("acdc", "gt/fog/val/GOPR0400/GOPR0400_frame_000000_gt_labelIds.png"),
        ("dark-zurich", "gt/val/night/GOPRO0356/GOPRO0356_000489_gt_labelIds.png"),
        ("glob", "labels/val/x001_mask.png"),
    ],
)
def test_missing_label_names_the_image_and_the_expected_file(case, label, tmp_path):
    write, _, flags, split, _, _ = LAYOUT_CASES[case]
    root = write(tmp_path / case)
    (root / label).unlink()
    roots = find_data_roots(root, layouts=layouts_of_flags(flags))
    with pytest.raises(DataError) as err:
        list_samples(roots, split)
    message = str(err.value)
    assert "1 of" in message and "images have no label file" in message and "Fix:" in message
    stem = Path(label).name.split("_gt")[0].removesuffix(".png").removesuffix("_mask")
    assert stem in message  # the image without a label is named
    expected_ending = {"kitti": "<stem>.png", "glob": "<stem>_mask.png", "acdc": "<stem>_gt_labelIds.png"}
    assert expected_ending.get(case, "_label") in message


def test_kitti_colour_masks_instead_of_ids_are_named(tmp_path):
    root = kitti(tmp_path / "kitti")
    rgb = root / "training" / "semantic_rgb"
    (root / "training" / "semantic").rename(rgb)
    (root / "training" / "semantic").mkdir()
    for png in rgb.glob("*.png"):  # colour masks copied where the ids belong
        Image.fromarray(np.zeros((36, 48, 3), np.uint8)).save(root / "training" / "semantic" / png.name)
    code, text = cli(
        "train",
        "--data-root",
        root,
        "--run-dir",
        tmp_path / "run",
        "--train-split",
        "training",
        "--val-split",
        "training",
        *TINY,
    )
    assert code == 2 and "Traceback" not in text
    assert "has 3 channels" in text and "semantic/, not semantic_rgb/" in text


def test_kitti_missing_split_says_which_exist_and_the_flags(tmp_path):
    root = kitti(tmp_path / "kitti")
    code, text = cli("train", "--data-root", root, "--run-dir", tmp_path / "run", *TINY)
    assert code == 2
    assert "split 'train' not found" in text and "['training']" in text and "--train-split" in text


def test_acdc_colour_labels_only_are_called_visualisations(tmp_path):
    root = acdc(tmp_path / "a")
    for label in (root / "gt" / "fog" / "val").rglob("*_gt_labelIds.png"):
        label.rename(label.with_name(label.name.replace("labelIds", "labelColor")))
    with pytest.raises(
        DataError,
        match=r"(?s)1 of 2 images have no label file.*GOPR0400_frame_000000.*"
        r"colour masks are visualisations",
    ):
        list_samples(find_data_roots(root), "val")


def test_glob_label_pattern_matching_nothing(tmp_path):
    root = globbed(tmp_path / "g")
    layouts = layouts_for(image_glob=GLOBS[1], label_glob="labels/{split}/*_label.png", label_format="labelIds")
    with pytest.raises(DataError) as err:
        list_samples(find_data_roots(root, layouts=layouts), "val")
    message = str(err.value)
    assert "images have no label file" in message and "<stem>_label.png" in message
    assert "x000_mask.png" in message and "does not match" in message  # what sits there instead


def test_glob_label_folder_matching_nothing_is_not_found(tmp_path):
    root = globbed(tmp_path / "g")
    layouts = layouts_for(image_glob=GLOBS[1], label_glob="masks/{split}/*_mask.png", label_format="labelIds")
    with pytest.raises(
        DataError,
        match=r"(?s)no data for the glob patterns.*image_glob.*splits \['train', 'val'\].*"
        r"label_glob 'masks/\{split\}/\*_mask.png': splits none",
    ):
        find_data_roots(root, layouts=layouts)


def test_glob_labels_that_are_images_are_refused(tmp_path):
    root = globbed(tmp_path / "g")
    code, text = cli(
        "train",
        "--data-root",
        root,
        "--run-dir",
        tmp_path / "run",
        "--image-glob",
        GLOBS[1],
        "--label-glob",
        "images/{split}/**/*.jpg",
        "--label-format",
        "labelIds",
        *TINY,
    )
    assert code == 2 and "has 3 channels" in text and "--label-glob: the id masks, not the images" in text


def test_glob_label_format_unknown_from_the_name_asks_for_the_flag(tmp_path):
    root = globbed(tmp_path / "g")
    with pytest.raises(DataError, match=r"cannot tell from its name.*x000_mask.png.*--label-format labelIds"):
        list_samples(find_data_roots(root, layouts=layouts_for(image_glob=GLOBS[1], label_glob=GLOBS[3])), "val")


def test_glob_same_stem_twice_in_a_split(tmp_path):
    root = globbed(tmp_path / "g")
    copy = root / "images" / "val" / "c" / "x000.jpg"
    copy.parent.mkdir()
    copy.write_bytes((root / "images" / "val" / "a" / "x000.jpg").read_bytes())
    layouts = layouts_for(image_glob=GLOBS[1], label_glob=GLOBS[3], label_format="labelIds")
    with pytest.raises(DataError, match=r"frame 'x000' is in split 'val' twice.*must be unique"):
        list_samples(find_data_roots(root, layouts=layouts), "val")


def test_trainids_in_a_kitti_label_ask_for_the_format_flag(tmp_path):
    root = kitti(tmp_path / "kitti")
    label = root / "training" / "semantic" / "000000_10.png"
    Image.fromarray(np.full((36, 48), 255, np.uint8)).save(label)
    from segkit.data.cityscapes import read_label

    with pytest.raises(DataError, match="looks like a trainId file.*pass --label-format labelTrainIds"):
        read_label(label, "labelIds")


def test_named_layout_not_there_is_not_replaced_by_synthetic(tmp_path):
    root = acdc(tmp_path / "a")
    with pytest.raises(DataError, match=r"(?s)no KITTI semantics data under the data_root.*image_2/ and semantic/"):
        find_data_roots(root, layouts=layouts_for("kitti"))
    with pytest.raises(DataError, match="no KITTI semantics data under the search"):
        find_data_roots(None, layouts=layouts_for("kitti"))


# ----------------------------------------------------------------------------- real data


def test_kitti_mini_in_the_cityscapes_layout_still_works():  # read only: nothing is written there
    roots = find_data_roots(KITTI_MINI)
    assert roots.layout.name == "cityscapes" and list_splits(roots) == ["train", "val"]
    train, val = list_samples(roots, "train"), list_samples(roots, "val")
    assert (len(train), len(val)) == (36, 12) and {s.city for s in train} == {"kitti"}
    from segkit.data.cityscapes import check_samples

    assert check_samples(val, limit=2)["sizes"] == {(256, 768): 2}
    from segkit.labels import train_to_label

    pred = predictions(roots, "val", Path("pred"), train_to_label)  # cwd is tmp
    summary = _score(EvalConfig(predictions=str(pred), data_root=str(KITTI_MINI), split="val"))
    assert summary["miou"] == 1.0 and summary["protocol"]["images"] == 12


def test_a_label_format_alone_still_searches_every_layout(tmp_path, monkeypatch):
    from segkit.data.discover import find_data_roots
    from segkit.data.layouts import layouts_for

    monkeypatch.chdir(tmp_path)  # nothing on disk, no $CITYSCAPES_DATASET: auto finds nothing, no error
    monkeypatch.delenv("CITYSCAPES_DATASET", raising=False)
    assert find_data_roots(None, layouts=layouts_for(label_format="labelIds")) is None
