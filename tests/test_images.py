"""Photos as people take them, as real files: phone JPEGs with an EXIF orientation tag, grayscale,
palette, RGBA, 16-bit and CMYK files, and corrupt or truncated ones. One reader
(`segkit.data.images.read_photo`) serves training, evaluation and prediction; what it converts it
converts exactly, what it refuses it names, with the fix."""

from __future__ import annotations

import contextlib
import io
import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from segkit.data.images import ORIENTATION_TAG, photo_size, read_photo
from segkit.errors import DataError

CORNERS = {"top_left": (255, 0, 0), "top_right": (0, 255, 0), "bottom_left": (0, 0, 255), "bottom_right": (255, 255, 0)}


def marked(h: int = 48, w: int = 80) -> np.ndarray:
    """A grey image with a 16x16 block of a known colour in each corner."""
    a = np.full((h, w, 3), 128, np.uint8)
    a[:16, :16], a[:16, -16:] = CORNERS["top_left"], CORNERS["top_right"]
    a[-16:, :16], a[-16:, -16:] = CORNERS["bottom_left"], CORNERS["bottom_right"]
    return a


def save_with_orientation(array: np.ndarray, path: Path, orientation: int) -> Path:
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    Image.fromarray(array).save(path, exif=exif, quality=95)
    return path


def corner(image: np.ndarray, where: str) -> tuple[int, ...]:
    y = slice(4, 12) if where.startswith("top") else slice(-12, -4)
    x = slice(4, 12) if where.endswith("left") else slice(-12, -4)
    return tuple(round(float(v)) for v in image[y, x].reshape(-1, 3).mean(0))


def near(a: tuple[int, ...], b: tuple[int, ...], tol: int = 12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


# ----------------------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize(
    "orientation, turn",
    [
        (1, 0),  # as stored
        (3, 2),  # stored upside down: shown turned 180 degrees
        (6, -1),  # phone held upright: shown turned 90 degrees clockwise
        (8, 1),  # shown turned 90 degrees counter-clockwise
    ],
)
def test_a_phone_jpeg_is_read_as_it_is_seen(orientation, turn, tmp_path):
    stored = marked()
    path = save_with_orientation(stored, tmp_path / "phone.jpg", orientation)
    image = read_photo(path)
    seen = np.rot90(stored, k=turn)  # what a viewer shows
    assert image.shape == seen.shape and photo_size(path) == seen.shape[:2]
    for where in CORNERS:
        assert near(corner(image, where), corner(seen, where)), (where, corner(image, where))


def test_predict_writes_the_label_map_in_the_orientation_seen(tiny_run, tmp_path):
    """The prediction of an upright phone photo equals the prediction of its pixels turned upright."""
    from segkit.inference import load_predictor

    rng = np.random.default_rng(0)
    stored = cv2.resize(rng.integers(0, 255, (12, 20, 3), dtype=np.uint8), (80, 48), interpolation=cv2.INTER_NEAREST)
    folder = tmp_path / "photos"
    folder.mkdir()
    path = save_with_orientation(stored, folder / "IMG_0001.jpg", 6)
    code, text = cli(
        "predict",
        "--checkpoint",
        tiny_run / "best_model.pth",
        "--img",
        folder,
        "--output",
        tmp_path / "preds",
        "--format",
        "trainIds",
        "--device",
        "cpu",
    )
    assert code == 0, text
    written = np.asarray(Image.open(tmp_path / "preds" / "IMG_0001_trainIds.png"))
    assert written.shape == (80, 48)  # portrait, as the phone shows it
    stored_pixels = np.asarray(Image.open(path))  # Pillow alone ignores the tag: the stored landscape pixels
    upright = np.ascontiguousarray(np.rot90(stored_pixels, k=-1))
    assert (written == load_predictor(tiny_run / "best_model.pth", device="cpu")(upright)).all()


# ----------------------------------------------------------------------------- pixel modes


def test_grey_palette_bilevel_and_opaque_alpha_become_rgb(tmp_path):
    rgb = marked()
    grey = (rgb.mean(axis=2)).astype(np.uint8)
    files = {
        "grey.png": Image.fromarray(grey),
        "palette.png": Image.fromarray(rgb).quantize(8),
        "bilevel.png": Image.fromarray(grey > 100),
        "opaque.png": Image.fromarray(np.dstack([rgb, np.full(grey.shape, 255, np.uint8)])),
        "grey_alpha.png": Image.fromarray(np.dstack([grey, np.full(grey.shape, 255, np.uint8)]), "LA"),
    }
    for name, im in files.items():
        im.save(tmp_path / name)
        image = read_photo(tmp_path / name)
        assert image.shape == (48, 80, 3) and image.dtype == np.uint8, name
    assert (read_photo(tmp_path / "grey.png") == grey[..., None]).all()
    assert (read_photo(tmp_path / "palette.png") == np.asarray(files["palette.png"].convert("RGB"))).all()
    assert (read_photo(tmp_path / "opaque.png") == rgb).all()
    assert set(np.unique(read_photo(tmp_path / "bilevel.png"))) == {0, 255}


def test_sixteen_bit_files_are_scaled_not_clipped(tmp_path):
    levels = np.array([0, 257, 32896, 65535], np.uint16)  # -> 0, 1, 128, 255 exactly
    grey = np.repeat(levels[None], 4, axis=0)
    cv2.imwrite(str(tmp_path / "grey16.png"), grey)
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")  # Pillow's 16-bit mode
    assert np.asarray(Image.open(tmp_path / "grey16.png").convert("L"))[0].tolist() == [0, 255, 255, 255]  # the trap
    assert read_photo(tmp_path / "grey16.png")[0, :, 0].tolist() == [0, 1, 128, 255]
    rgb16 = np.stack([grey, grey // 2, 65535 - grey], axis=-1)
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[..., ::-1])  # OpenCV writes BGR
    image = read_photo(tmp_path / "rgb16.png")
    assert image.dtype == np.uint8 and np.abs(image.astype(int) - (rgb16 >> 8)).max() <= 1


def test_cmyk_jpeg_keeps_its_colours(tmp_path):
    Image.fromarray(marked()).convert("CMYK").save(tmp_path / "print.jpg", quality=95)
    assert Image.open(tmp_path / "print.jpg").mode == "CMYK"
    image = read_photo(tmp_path / "print.jpg")
    assert image.shape == (48, 80, 3)
    for where, color in CORNERS.items():
        assert near(corner(image, where), color, tol=24), where


@pytest.mark.parametrize(
    "name, make, words",
    [
        (
            "cutout.png",
            lambda a: Image.fromarray(
                np.dstack([a, np.where(np.arange(80) < 40, 0, 255).astype(np.uint8)[None].repeat(48, 0)])
            ),
            "1920 transparent pixels (50.0%)",
        ),
        ("depth.tiff", lambda a: Image.fromarray(a[..., 0].astype(np.float32) / 255), "32-bit floats"),
        ("counts.tiff", lambda a: Image.fromarray(a[..., 0].astype(np.int32) * 100_000), "32-bit integers"),
    ],
)
def test_what_is_no_photo_is_refused_saying_what_and_the_fix(name, make, words, tmp_path):
    make(marked()).save(tmp_path / name)
    with pytest.raises(DataError, match=re.escape(words)) as err:
        read_photo(tmp_path / name)
    assert str(tmp_path / name) in str(err.value) and "Fix:" in str(err.value)


@pytest.mark.parametrize(
    "name, damage, words",
    [
        ("cut.jpg", lambda b: b[: len(b) // 2], "image file is truncated"),
        ("cut.png", lambda b: b[: len(b) // 2], "truncated"),
        ("noise.png", lambda b: b"\x89PNG but not really" + bytes(50), "not an image file"),
        ("empty.jpg", lambda b: b"", "not an image file"),
    ],
)
def test_corrupt_and_truncated_files_name_themselves(name, damage, words, tmp_path):
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, "JPEG" if name.endswith(".jpg") else "PNG")
    (tmp_path / name).write_bytes(damage(buf.getvalue()))
    with pytest.raises(DataError, match=words) as err:
        read_photo(tmp_path / name)
    assert str(tmp_path / name) in str(err.value) and "Fix:" in str(err.value)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_both_decoders_give_pillows_pixels(suffix, tmp_path):
    """Plain RGB PNGs and complete JPEGs are decoded by OpenCV, the rest by Pillow: the same pixels."""
    noise = np.random.default_rng(1).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / f"plain{suffix}", quality=90)
    reference = np.asarray(Image.open(tmp_path / f"plain{suffix}").convert("RGB"))
    assert (read_photo(tmp_path / f"plain{suffix}") == reference).all()
    (tmp_path / f"tail{suffix}").write_bytes((tmp_path / f"plain{suffix}").read_bytes() + b"maker notes after the end")
    assert (read_photo(tmp_path / f"tail{suffix}") == reference).all()  # a JPEG with data after its end: Pillow's path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_of_a_png_as_a_viewer_shows_it(orientation, tmp_path):
    from PIL import ImageOps

    stored = marked()
    path = tmp_path / "o.png"
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    Image.fromarray(stored).save(path, exif=exif)  # lossless: pixel for pixel
    assert (read_photo(path) == np.asarray(ImageOps.exif_transpose(Image.open(path)))).all()


def test_opencv_would_have_taken_the_truncated_jpeg(tmp_path):
    """Why segkit reads photos with Pillow: OpenCV returns a truncated JPEG, grey where data is missing."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert cv2.imread(str(tmp_path / "cut.jpg")) is not None
    with pytest.raises(DataError):
        read_photo(tmp_path / "cut.jpg")


# ----------------------------------------------------------------------------- a folder with bad files


def cli(*argv: str | Path) -> tuple[int, str]:
    """`segkit ARGV` in this process: (exit code, stdout + stderr + segkit's log)."""
    from segkit.cli import main

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logging.getLogger("segkit").addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main([str(a) for a in argv])
    finally:
        logging.getLogger("segkit").removeHandler(handler)
    return code, out.getvalue()


def test_iphone_heic_photos_are_named_as_such_not_as_corrupt(tiny_run, tmp_path):
    """A folder of HEIC photos is not skipped in silence, and the message says convert, not re-download."""
    folder = tmp_path / "iphone"
    folder.mkdir()
    Image.fromarray(marked()).save(folder / "IMG_0001.png")
    # An ISO-BMFF still image's first box, as an iPhone writes it (the rest of the file does not matter here).
    (folder / "IMG_0002.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    (folder / "IMG_0003.heif").write_bytes(b"not even a header")  # unreadable: the name says HEIF
    code, text = cli(
        "predict",
        "--checkpoint",
        tiny_run / "best_model.pth",
        "--img",
        folder,
        "--output",
        tmp_path / "preds",
        "--device",
        "cpu",
    )
    assert code == 2 and "2 of 3 images could not be predicted" in text
    for name in ("IMG_0002.HEIC", "IMG_0003.heif"):
        line = next(x for x in text.splitlines() if str(folder / name) in x)
        assert "HEIC/HEIF" in line and "convert it to JPEG or PNG" in line and "corrupt" not in line
    assert [p.name for p in (tmp_path / "preds").iterdir()] == ["IMG_0001_color.png"]


def test_bad_files_in_a_folder_are_named_counted_and_the_rest_predicted(tiny_run, tmp_path):
    import conftest

    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(marked()).save(folder / "a_good.png")
    save_with_orientation(marked(), folder / "b_phone.jpg", 6)
    cv2.imwrite(str(folder / "c_grey16.png"), np.full((48, 80), 40000, np.uint16))
    good = (folder / "a_good.png").read_bytes()
    (folder / "d_cut.png").write_bytes(good[: len(good) // 2])
    (folder / "e_noise.jpg").write_bytes(b"this is not a jpeg")
    pairs = conftest.write_image_pairs(tmp_path / "pairs", {"val": 1})
    (folder / "f_pair.jpg").write_bytes((pairs / "val" / "1.jpg").read_bytes())
    out = tmp_path / "preds"
    code, text = cli(
        "predict", "--checkpoint", tiny_run / "best_model.pth", "--img", folder, "--output", out, "--device", "cpu"
    )
    assert code == 2 and "Traceback" not in text
    assert "3 of 6 images could not be predicted" in text and "The other 3 predictions are in" in text
    for name in ("d_cut.png", "e_noise.jpg", "f_pair.jpg"):
        assert str(folder / name) in text
    assert "looks like an image pair" in text and "--pairs on" in text  # a photo model given a pair: the flag
    assert sorted(p.name for p in out.iterdir()) == ["a_good_color.png", "b_phone_color.png", "c_grey16_color.png"]
    assert Image.open(out / "b_phone_color.png").size == (48, 80)  # W x H: portrait, as seen
    code, text = cli(
        "predict",
        "--checkpoint",
        tiny_run / "best_model.pth",
        "--img",
        folder / "f_pair.jpg",
        "--output",
        out,
        "--pairs",
        "on",
        "--device",
        "cpu",
    )
    assert code == 0 and Image.open(out / "f_pair_color.png").size == (64, 64)  # the photo half


# ----------------------------------------------------------------------------- training data


def test_a_truncated_training_image_stops_training_naming_it(tmp_path):
    from test_layouts import GLOBS, TINY, globbed

    root = globbed(tmp_path / "g")
    victim = root / "images" / "train" / "b" / "deep" / "x001.jpg"
    victim.write_bytes(victim.read_bytes()[:200])
    code, text = cli(
        "train", "--data-root", root, "--run-dir", tmp_path / "run", *GLOBS, "--label-format", "labelIds", *TINY
    )
    assert code == 2 and "Traceback" not in text
    assert str(victim) in text and "Fix:" in text


def test_an_exif_turned_training_photo_with_a_label_on_its_stored_pixels_is_explained(tmp_path):
    from segkit.data.cityscapes import check_samples
    from segkit.data.discover import find_data_roots, list_samples
    from segkit.data.layouts import layouts_for

    root = tmp_path / "g"
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        save_with_orientation(marked(), root / "images" / split / "p1.jpg", 6 if split == "val" else 1)
        Image.fromarray(np.full((48, 80), 7, np.uint8)).save(root / "labels" / split / "p1_mask.png")
    layouts = layouts_for(
        image_glob="images/{split}/*.jpg", label_glob="labels/{split}/*_mask.png", label_format="labelIds"
    )
    roots = find_data_roots(root, layouts=layouts)
    assert check_samples(list_samples(roots, "train"))["sizes"] == {(48, 80): 1}
    with pytest.raises(
        DataError, match=r"(?s)is 80x48 \(HxW, as seen\).*48x80.*EXIF orientation tag.*Fix: draw labels"
    ):
        check_samples(list_samples(roots, "val"))
