"""Any aspect ratio, no squashing: training, the cache and inference keep each image's shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from segkit.data.cache import CachedDataset, prepare_cache
from segkit.data.cityscapes import CityscapesDataset
from segkit.data.discover import find_data_roots, list_samples
from segkit.data.transforms import cover_size, eval_transform, train_transform
from segkit.inference import infer
from segkit.metrics import ConfusionMatrix, describe_protocol, input_scaling, make_protocol


@pytest.mark.parametrize(
    ("shape", "size", "expected"),
    [
        ((1024, 2048), (256, 512), (256, 512)),  # Cityscapes: exactly today's resize
        ((360, 480), (64, 128), (96, 128)),  # 3:4 covers a 1:2 window by its width
        ((256, 768), (64, 128), (64, 192)),  # kitti-mini, 3:1, by its height
        ((375, 1242), (64, 128), (64, 212)),
        ((1080, 1920), (64, 128), (72, 128)),
    ],
)
def test_cover_size_keeps_the_aspect_ratio_and_covers_the_window(shape, size, expected):
    assert cover_size(shape, size) == expected
    h, w = expected
    assert h >= size[0] and w >= size[1] and (h == size[0] or w == size[1])
    assert abs(h / w - shape[0] / shape[1]) < 0.01


def test_cover_size_times_a_scale():
    assert cover_size((360, 480), (64, 128), 2.0) == (192, 256)
    assert cover_size((1024, 2048), (256, 512), 0.75) == (192, 384)


def _square_pair(shape=(360, 480), side=60):
    """An image and mask with one square of class 5 (pole) in the middle, the rest road (0)."""
    mask = np.zeros(shape, np.uint8)
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
    mask[top : top + side, left : left + side] = 5
    image = np.where(mask[..., None] == 5, 200, 40).astype(np.uint8).repeat(3, axis=2)
    return image, mask


def _extent(mask: np.ndarray, cls: int) -> tuple[int, int]:
    rows, cols = np.nonzero(mask == cls)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


@pytest.mark.parametrize("seed", range(5))
def test_training_crops_keep_squares_square(seed):
    image, mask = _square_pair()
    t = train_transform((64, 128), (1.0, 1.0), hflip=False, color_jitter=False)
    t.set_random_seed(seed)
    out = t(image=image, mask=mask)
    assert tuple(out["mask"].shape) == (64, 128)
    h, w = _extent(out["mask"].numpy(), 5)
    assert (h, w) == (16, 16)  # 60 px x 128/480; squashing to 64x128 would give 11 x 16


def test_eval_transform_at_the_training_size_keeps_the_aspect_ratio():
    image, mask = _square_pair()
    out = eval_transform((64, 128))(image=image, mask=mask)
    assert tuple(out["mask"].shape) == (96, 128) and _extent(out["mask"].numpy(), 5) == (16, 16)


class _Recorder(nn.Module):
    """Scores class 1 where the first channel is bright, class 0 elsewhere; records input sizes."""

    size_divisor = 32

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, int]] = []
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape[-2:]))
        bright = x[:, :1]
        return torch.cat([-bright, bright], 1) + self.anchor


@pytest.mark.parametrize(("shape", "network_input"), [((360, 480), (96, 128)), ((375, 1242), (64, 224))])
def test_inference_resizes_keeping_the_aspect_ratio_and_pads_to_the_divisor(shape, network_input):
    model = _Recorder()
    image = -torch.ones(1, 3, *shape)
    image[..., shape[0] // 3 :, : shape[1] // 4] = 1.0  # a bright block at the bottom left
    scores = infer(model, image, (64, 128), "whole", size_divisor=32)
    assert model.seen == [network_input]  # (64, 212) is padded to (64, 224), not stretched
    pred = scores.argmax(1)[0]
    truth = (image[0, 0] > 0).long()
    assert scores.shape[-2:] == shape and (pred == truth).float().mean() > 0.99  # no shift from the padding


def test_slide_on_a_portrait_image_sees_only_training_size_windows():
    model = _Recorder()
    infer(model, torch.randn(1, 3, 480, 360), (64, 128), "slide", size_divisor=32)
    assert set(model.seen) == {(64, 128)} and len(model.seen) > 4


def test_protocol_states_how_the_input_was_scaled():
    cm = ConfusionMatrix(19, 255)
    cm.update(torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    summary = cm.summary(protocol=make_protocol(input=input_scaling((64, 128))))
    assert describe_protocol(summary).endswith("input resized keeping its aspect ratio to cover 64x128")


def _write(root, split, stem, shape, seed):
    rng = np.random.default_rng(seed)
    label = (
        rng.choice(np.array([7, 8, 11, 26], np.uint8), size=(shape[0] // 8, shape[1] // 8)).repeat(8, 0).repeat(8, 1)
    )
    image = (label[..., None] * np.array([7, 13, 29]) % 256).astype(np.uint8)
    for kind, array, suffix in (("leftImg8bit", image, "leftImg8bit"), ("gtFine", label, "gtFine_labelIds")):
        folder = root / kind / split / "city"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(folder / f"{stem}_{suffix}.png")


def test_cache_of_mixed_shapes_serves_each_image_at_its_own_size(tmp_path):
    for i, shape in enumerate([(360, 480), (376, 1240), (480, 360)]):  # 3:4, KITTI-like, portrait
        _write(tmp_path, "train", f"city_{i:06d}_000019", shape, i)
    roots = find_data_roots(tmp_path)
    samples = list_samples(roots, "train")
    cache = prepare_cache(roots, (64, 128), splits=("train",), workers=1)
    assert np.load(cache / "train_images.npy", mmap_mode="r").shape == (3, 171, 211, 3)  # largest h, largest w
    for make in (lambda: train_transform((64, 128), (0.5, 2.0)), lambda: eval_transform((64, 128))):
        png, cached = CityscapesDataset(samples, make()), CachedDataset(cache, "train", make(), samples)
        for i in range(len(samples)):
            a, b = png[(i, 7 + i)], cached[(i, 7 + i)]
            assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    sizes = [tuple(cached[i]["mask"].shape) for i in range(3)]
    assert sizes == [(96, 128), (64, 211), (171, 128)]


def test_crops_smaller_than_the_image_size_keep_its_scale():
    image, mask = _square_pair()
    t = train_transform((128, 256), (1.0, 1.0), hflip=False, color_jitter=False, crop_size=(64, 128))
    inside = 0
    for seed in range(40):
        t.set_random_seed(seed)
        out = t(image=image, mask=mask)["mask"].numpy()
        assert out.shape == (64, 128)
        if (out == 5).any() and not (out[[0, -1]] == 5).any() and not (out[:, [0, -1]] == 5).any():
            assert _extent(out, 5) == (32, 32)  # 60 px x 256/480, whole square inside the crop
            inside += 1
    assert inside >= 3


def test_crop_size_is_checked_and_defaults_to_the_image_size():
    from segkit.config import TrainConfig
    from segkit.errors import ConfigError

    assert TrainConfig(image_size=(128, 256)).crop == (128, 256)
    assert TrainConfig(image_size=(128, 256), crop_size=(64, 128)).crop == (64, 128)
    with pytest.raises(ConfigError, match="not a multiple of 16; try 64x128"):
        TrainConfig(image_size=(128, 256), crop_size=(60, 128))


def test_focus_crop_centres_crops_on_thin_classes():
    from segkit.labels import CLASS_NAMES

    mask = np.zeros((256, 512), np.uint8)  # road, with one pole (trainId 5) near the right edge
    mask[100:200, 480:486] = CLASS_NAMES.index("pole")
    image = np.zeros((256, 512, 3), np.uint8)

    def share_with_pole(focus_p):
        t = train_transform(
            (256, 512), (1.0, 1.0), hflip=False, color_jitter=False, crop_size=(64, 128), focus_p=focus_p
        )
        hits = 0
        for seed in range(400):  # a binomial share: 400 draws give a standard deviation of 0.025 at most
            t.set_random_seed(seed)
            hits += bool((t(image=image, mask=mask)["mask"] == 5).any())
        return hits / 400

    # A random window holds part of the pole for 32 of 385 left edges and 156 of 193 top edges: p = 0.067;
    # focused half of the time: 0.53 (0.09 and 0.51 drawn here). The bounds are 4.5+ deviations away, any RNG.
    assert share_with_pole(0.0) < 0.2  # random windows rarely catch it
    assert share_with_pole(1.0) == 1.0  # every crop holds part of the pole
    half = share_with_pole(0.5)
    assert 0.4 < half < 0.66


def test_infer_size_is_the_size_the_checkpoint_and_the_final_evaluation_run_at(tmp_path):
    """cpu-realtime trains small and runs large: validation stays at image_size, the rest uses infer_size."""
    import json

    from conftest import write_cityscapes

    from segkit.checkpoint import load_checkpoint
    from segkit.config import TrainConfig
    from segkit.engine import fit
    from segkit.errors import ConfigError

    assert TrainConfig(image_size=(64, 128)).inference_size == (64, 128)
    with pytest.raises(ConfigError, match="not a multiple of 4"):
        TrainConfig(base_channels=8, depth=2, image_size=(32, 64), infer_size=(50, 96))
    data = write_cityscapes(tmp_path / "data", {"train": 2, "val": 1}, size=(96, 192))
    cfg = TrainConfig(
        data_root=str(data),
        run_dir=str(tmp_path / "run"),
        base_channels=8,
        depth=2,
        image_size=(32, 64),
        infer_size=(48, 96),
        batch_size=2,
        epochs=1,
        num_workers=0,
        num_vis=0,
        eval_resolution="train",
        device="cpu",
    )
    result = fit(cfg)
    for name in ("best_model.pth", "last.pth"):
        assert load_checkpoint(tmp_path / "run" / name)["image_size"] == [48, 96]
    validation = load_checkpoint(tmp_path / "run" / "best_model.pth")["metrics"]["protocol"]
    assert "32x64" in validation["input"]  # chosen on validation at the training size
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "cover 48x96" in metrics["protocol"]["input"] and metrics["protocol"]["resolution"] == "label"
    assert result.metrics["miou"] == metrics["miou"]
    # A sweep of sizes with `segkit evaluate` keeps each size's result beside the checkpoint's own.
    from segkit.config import EvalConfig
    from segkit.evaluation import run_evaluation

    _, own = run_evaluation(EvalConfig(run_dir=str(tmp_path / "run"), device="cpu"))
    _, other = run_evaluation(EvalConfig(run_dir=str(tmp_path / "run"), device="cpu", image_size=(32, 64)))
    assert (own.name, other.name) == ("eval_val_whole_label.json", "eval_val_whole_label_32x64.json")
    assert "cover 48x96" in json.loads(own.read_text())["protocol"]["input"]
    assert "cover 32x64" in json.loads(other.read_text())["protocol"]["input"]
