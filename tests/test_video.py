"""Predictions on video (`segkit predict --img clip.mp4`, a folder of frames with --video): real MP4,
MOV and AVI files that the tests encode from kitti-mini's real frames (one drive, in order), decoded
again by PyAV on their own to know the exact frames the video path saw (H.264 is lossy: the PNGs
differ), the label maps compared with per-image `segkit predict` on those frames, and bad inputs."""

from __future__ import annotations

import logging
import shutil
import struct
from fractions import Fraction
from pathlib import Path

import av  # segkit[video], in .[dev]: a missing install fails here, it is not skipped
import cv2
import numpy as np
import pytest

from segkit import video, viz
from segkit.cli import main
from segkit.config import PredictConfig
from segkit.errors import SegkitError
from segkit.labels import CLASS_NAMES, NUM_CLASSES, PALETTE, label_to_train
from segkit.predict import run_prediction  # segkit predict (images, or a video)
from segkit.viz import overlay

KITTI_MINI = Path("/work/shared/data/kitti-mini")
SIZE = (128, 384)  # kitti-mini's 256x768 frames at half size: real pictures, a quarter of the work


@pytest.fixture(scope="module")
def kitti_frames() -> list[np.ndarray]:
    """kitti-mini's 12 val frames (consecutive frames of one drive) as RGB at SIZE."""
    files = sorted((KITTI_MINI / "leftImg8bit" / "val" / "kitti").glob("*_leftImg8bit.png"))
    assert len(files) == 12, f"kitti-mini's val split changed: {len(files)} frames in {KITTI_MINI}"
    return [cv2.resize(cv2.imread(str(f))[..., ::-1], SIZE[::-1], interpolation=cv2.INTER_AREA) for f in files]


@pytest.fixture(scope="module")
def checkpoint(tiny_run: Path) -> str:
    return str(tiny_run / "best_model.pth")


def encode(
    path: Path,
    frames: list[np.ndarray],
    rate: Fraction | int = 10,
    codec: str = "libx264",
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
) -> Path:
    """Write a real clip with PyAV, as a camera or an editor would (optionally with explicit frame times)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p" if codec != "libx264" or frames[0].shape[0] % 2 == 0 else "yuv444p"
        stream.bit_rate = 4_000_000  # MPEG-4 part 2's default (200 kb/s) would smear the frames
        if time_base is not None:
            stream.codec_context.time_base = time_base
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decode(path: Path) -> tuple[list[np.ndarray], list[float], av.video.stream.VideoStream]:
    """Every frame of a clip, its time in seconds, and the stream (its codec, size, rate) - PyAV alone."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(f.to_ndarray(format="rgb24"), float(f.time)) for f in container.decode(stream)]
        return [f for f, _ in frames], [t for _, t in frames], stream


def per_image_predict(checkpoint: str, frames: list[np.ndarray], names: list[str], folder: Path, fmt: str) -> Path:
    """`segkit predict` on each frame written as a lossless PNG: the per-image reference."""
    (folder / "frames").mkdir(parents=True)
    for image, name in zip(frames, names):
        cv2.imwrite(str(folder / "frames" / name), image[..., ::-1])
    run_prediction(
        PredictConfig(
            checkpoint=checkpoint, img=str(folder / "frames"), output=str(folder / "preds"), format=fmt, device="cpu"
        )
    )
    return folder / "preds"


def predict(cfg: PredictConfig) -> list[Path]:
    """What `segkit predict` does with a config (cli.cmd_predict): a video to segkit.video, else images."""
    return video.predict_video(cfg) if video.wants_video(cfg) else run_prediction(cfg)


def read_png(path: Path) -> np.ndarray:
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert array is not None, path
    return array


# ----------------------------------------------------------------------------- a clip in, an overlay video out


@pytest.mark.parametrize(
    "suffix, codec, rate", [(".mp4", "libx264", Fraction(30000, 1001)), (".mov", "libx264", 25), (".avi", "mpeg4", 10)]
)
def test_clip_gives_an_overlay_video_and_label_maps_equal_to_per_image_predict(
    tmp_path, kitti_frames, checkpoint, capsys, suffix, codec, rate
):
    frames = kitti_frames[:6]
    clip = encode(tmp_path / f"drive{suffix}", frames, rate, codec)
    code = main(
        [
            "predict",
            "--checkpoint",
            checkpoint,
            "--img",
            str(clip),
            "--output",
            str(tmp_path / "out"),
            "--format",
            "trainIds",
            "--device",
            "cpu",
        ]
    )
    assert (
        code == 0
        and f"wrote {tmp_path / 'out' / 'drive_overlay.mp4'} and 6 trainIds label map(s)" in capsys.readouterr().out
    )

    decoded, times, _ = decode(clip)  # the exact frames the video path saw
    assert len(decoded) == 6
    for i, image in enumerate(decoded):  # and they are the drive's frames, in order (lossy: close, not equal)
        error = np.abs(image.astype(int) - frames[i]).mean()
        assert error < 6 and all(
            error < np.abs(image.astype(int) - frames[j]).mean() for j in (i - 1, i + 1) if 0 <= j < 6
        )

    shown, shown_times, stream = decode(tmp_path / "out" / "drive_overlay.mp4")
    assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")  # plays in browsers
    assert len(shown) == 6 and shown[0].shape == (*SIZE, 3)  # every frame, at the clip's size
    assert stream.average_rate == rate and shown_times == pytest.approx(times, abs=1e-3)  # 29.97 stays 29.97

    names = [f"drive_{i:06d}.png" for i in range(6)]
    reference = per_image_predict(checkpoint, decoded, names, tmp_path / "ref", "trainIds")
    written = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert written == sorted(p.name for p in reference.iterdir()) == [f"drive_{i:06d}_trainIds.png" for i in range(6)]
    for name in written:
        assert np.array_equal(read_png(tmp_path / "out" / name), read_png(reference / name)), name

    # What the video shows is that prediction blended over the frame, with the legend (H.264: close, not equal):
    # ~3 levels from it (CRF 20), 20 or more from the blend without its legend and 40 from the bare frame.
    preds = [read_png(tmp_path / "out" / n) for n in written]
    blend = overlay(decoded[3], preds[3])
    error = np.abs(shown[3].astype(int) - viz.draw_legend(blend, preds[3])).mean()
    others = [float(np.abs(shown[3].astype(int) - other).mean()) for other in (decoded[3], blend)]
    assert error < 8 and all(3 * error < other for other in others), (error, others)


# 12 flat colours, any two 100 or more grey levels apart in some channel: frames told apart by construction
FLAT = [(r, g, b) for r in (30, 130, 230) for g in (30, 130, 230) for b in (30, 130, 230)][::2][:12]


def test_frames_of_a_folder_with_video_and_fps_in_natural_order(tmp_path, checkpoint):
    folder = tmp_path / "seq"
    folder.mkdir()
    frames = [np.full((*SIZE, 3), colour, np.uint8) for colour in FLAT]
    for i, image in enumerate(frames, start=1):  # f1 ... f12: sorted as text, f10 would come second
        cv2.imwrite(str(folder / f"f{i}_leftImg8bit.png"), image[..., ::-1])
    with pytest.raises(SegkitError, match=r"no frame rate of its own; pass --fps \(e.g. --fps 10 for KITTI"):
        predict(PredictConfig(checkpoint=checkpoint, img=str(folder), video=True, output=str(tmp_path / "x")))
    written = predict(
        PredictConfig(
            checkpoint=checkpoint,
            img=str(folder),
            video=True,
            fps=10,
            output=str(tmp_path / "out"),
            format="labelIds",
            device="cpu",
        )
    )
    assert written[0] == tmp_path / "out" / "seq_overlay.mp4"
    assert [p.name for p in written[1:]] == [
        f"f{i}_labelIds.png" for i in range(1, 13)
    ]  # named as predict names images

    shown, times, stream = decode(written[0])
    assert len(shown) == 12 and stream.average_rate == 10 and times == pytest.approx([i / 10 for i in range(12)])
    reference = run_prediction(
        PredictConfig(
            checkpoint=checkpoint, img=str(folder), output=str(tmp_path / "ref"), format="labelIds", device="cpu"
        )
    )  # the same PNGs, one by one
    assert sorted(p.name for p in reference) == sorted(p.name for p in written[1:])
    for mine in written[1:]:
        assert np.array_equal(read_png(mine), read_png(tmp_path / "ref" / mine.name)), mine.name
    # Frame k of the video is file f<k+1>'s own prediction over it (frame 1 is f2, not f10 as text would sort).
    # Above the legend two files' overlays differ by 100 / 2 (blend 0.5) / 3 (channels) ~ 17 levels on average
    # when their predictions agree (33 measured: one class everywhere); H.264 keeps a flat frame within ~2.
    picture = slice(0, viz.legend_layout(*SIZE).top)
    preds = [label_to_train(read_png(p)) for p in written[1:]]
    expected = [overlay(image, pred)[picture].astype(int) for image, pred in zip(frames, preds)]
    for k, image in enumerate(shown):
        errors = [float(np.abs(image[picture].astype(int) - e).mean()) for e in expected]
        nearest, runner_up = np.argsort(errors)[:2]
        assert nearest == k and errors[k] * 4 < errors[runner_up], (
            f"video frame {k} looks like f{nearest + 1} (mean difference {errors[nearest]:.1f}), expected f{k + 1} "
            f"(its difference {errors[k]:.1f}; next nearest f{runner_up + 1}: {errors[runner_up]:.1f})"
        )


# ----------------------------------------------------------------------------- what clips carry


def set_display_rotation(path: Path, clockwise: int) -> None:
    """Write a display matrix into the MP4's track header (tkhd), as phones tag portrait clips."""
    data = bytearray(path.read_bytes())
    at = data.index(b"tkhd")
    matrix_at = at + 4 + 4 + (32 if data[at + 4] == 1 else 20) + 16  # type, version/flags, times and ids, reserved..
    turn = {90: (0, 1, -1, 0), -90: (0, -1, 1, 0), 180: (-1, 0, 0, -1)}[clockwise]
    a, b, c, d = (v * 65536 for v in turn)
    data[matrix_at : matrix_at + 36] = struct.pack(">9i", a, b, 0, c, d, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))


def test_a_rotation_tag_is_applied_so_the_model_sees_the_frame_upright(tmp_path, kitti_frames, checkpoint):
    stored = [np.rot90(f, 1) for f in kitti_frames[:4]]  # stored sideways (384x128), shown turned clockwise
    clip = encode(tmp_path / "phone.mp4", stored)
    set_display_rotation(clip, clockwise=90)
    with av.open(str(clip)) as container:
        assert next(container.decode(video=0)).rotation == -90  # FFmpeg reads the tag
    written = predict(
        PredictConfig(
            checkpoint=checkpoint, img=str(clip), output=str(tmp_path / "out"), format="trainIds", device="cpu"
        )
    )
    shown, _, stream = decode(written[0])
    assert (stream.height, stream.width) == SIZE and read_png(written[1]).shape == SIZE  # upright, as players show it
    with av.open(str(written[0])) as container:
        assert next(container.decode(video=0)).rotation == 0  # and not turned a second time
    legend_top = viz.legend_layout(*SIZE).top
    error = np.abs(shown[0][:legend_top].astype(int) - overlay(kitti_frames[0], read_png(written[1]))[:legend_top])
    assert error.mean() < 6


def test_variable_frame_rate_keeps_every_frames_time(tmp_path, kitti_frames, checkpoint):
    pts = [0, 100, 150, 400, 433, 700]  # ms: a phone's clip when the light drops
    clip = encode(tmp_path / "vfr.mp4", kitti_frames[:6], rate=10, pts=pts, time_base=Fraction(1, 1000))
    written = predict(PredictConfig(checkpoint=checkpoint, img=str(clip), output=str(tmp_path / "out"), device="cpu"))
    assert len(written) == 1  # --format color: the video alone
    _, times, _ = decode(written[0])
    assert times == pytest.approx([p / 1000 for p in pts], abs=1e-3)


def test_odd_sizes_keep_their_size_as_444_with_a_warning(tmp_path, kitti_frames, checkpoint, caplog):
    frames = [f[:127, :383] for f in kitti_frames[:3]]
    clip = encode(tmp_path / "odd.mp4", frames)
    with caplog.at_level(logging.WARNING, logger="segkit"):
        (out,) = predict(PredictConfig(checkpoint=checkpoint, img=str(clip), output=str(tmp_path / "o"), device="cpu"))
    shown, _, stream = decode(out)
    assert shown[0].shape == (127, 383, 3) and stream.codec_context.pix_fmt == "yuv444p"
    assert "odd sizes cannot be 4:2:0 H.264" in caplog.text and "crop the input to 126x382" in caplog.text


def test_ntsc_rates_are_exact_fractions():
    assert video.frame_rate(29.97) == Fraction(30000, 1001) and video.frame_rate(23.976) == Fraction(24000, 1001)
    assert video.frame_rate(59.94) == Fraction(60000, 1001)
    assert video.frame_rate(30) == 30 and video.frame_rate(17) == 17 and video.frame_rate(12.5) == Fraction(25, 2)


# ----------------------------------------------------------------------------- the legend


BACKGROUND = (150, 200, 90)  # not grey: no anti-aliased pixel of white text on it has a palette colour


def drawn_legend(h: int, w: int) -> tuple[int, list[np.ndarray]]:
    """The legend with every class present drawn over a flat frame, and what was drawn, found in its pixels
    alone (no font metrics): the band's first row and each class's name (its ink cropped to its box, found
    between its swatch, the palette-coloured square, and the next on the same line of the legend)."""
    image = np.full((h, w, 3), BACKGROUND, np.uint8)
    out = viz.draw_legend(image, np.arange(NUM_CLASSES, dtype=np.uint8)[None])
    top = int(np.flatnonzero((out != image).any((1, 2)))[0])
    assert np.array_equal(out[:top], image[:top]) and not np.array_equal(out[top:], image[top:])
    drawn = (out != (image[0, 0] * 0.35).astype(np.uint8)).any(-1)  # anything but the darkened band
    drawn[:top] = False
    swatches = []
    for colour, label in zip(PALETTE, CLASS_NAMES):
        fill = (out == colour).all(-1)
        ys, xs = np.nonzero(fill)
        assert ys.size, f"{label}: no swatch in the frame"
        box = (ys.min(), xs.min(), ys.max(), xs.max())
        assert fill[box[0] : box[2] + 1, box[1] : box[3] + 1].all() and fill.sum() >= 9, "a filled square swatch"
        swatches.append(tuple(int(v) for v in box))
    lines = np.split(np.arange(h), np.flatnonzero(np.diff(drawn.any(1).astype(int))) + 1)  # runs of rows
    lines = [r for r in lines if drawn[r[0]].any()]  # the legend's lines: runs of rows with ink, blank rows between
    names = []
    for c, (y0, x0, y1, x1) in enumerate(swatches):
        (rows,) = [r for r in lines if r[0] <= y0 and y1 <= r[-1]]
        after = [s[1] for s in swatches if s[0] == y0 and s[1] > x0]
        left, right = x1 + 3, (min(after) - 3 if after else w - 1)  # outlines at x1 + 1 and next x0 - 1
        ink = drawn[rows[0] : rows[-1] + 1, left : right + 1]
        ys, xs = np.nonzero(ink)
        assert xs.size, f"{CLASS_NAMES[c]}: no name drawn next to its swatch"
        assert 0 < xs.min() and xs.max() < ink.shape[1] - 1, (
            f"{CLASS_NAMES[c]}: cut at the frame's edge or run into the next entry"
        )
        names.append(out[rows[0] + ys.min() : rows[0] + ys.max() + 1, left + xs.min() : left + xs.max() + 1])
    assert len({y0 for y0, *_ in swatches}) == len(lines)  # one line of ink per row of swatches: rows do not touch
    assert lines[-1][-1] < h - 1, f"the legend's ink reaches the frame's last row ({h - 1}): cut at the bottom"
    assert all(x0 > 1 for _, x0, _, _ in swatches), "a swatch on the frame's left edge"
    return top, names


# The band's share of the frame is what 9-px names need: one line more than OpenCV 4's Hershey font (the
# widest known, 4 lines at 384 px) still passes; a legend that covers the picture does not.
@pytest.mark.parametrize("h, w, band", [(256, 512, 1 / 3), (1080, 1920, 0.2), (720, 1280, 0.2), (128, 384, 0.75)])
def test_legend_fits_the_frame_and_stays_readable(h, w, band):
    top, names = drawn_legend(h, w)
    assert h - top <= band * h
    floor = max(9, h // 40)  # 9 px: the smallest letters that stay readable; larger frames, larger letters
    wall = names[CLASS_NAMES.index("wall")]  # tall letters (l), none below the baseline (unlike g, y, p)
    assert wall.shape[0] >= floor, f"letters {wall.shape[0]} px high in a {h}-row frame; at least {floor}"
    band_level = int((np.array(BACKGROUND) * 0.35).astype(np.uint8).max())
    assert all(int(name.min(-1).max()) - band_level >= 128 for name in names)  # white on the dark band
    # Whole names: each as drawn when the frame is 4 times wider (other lines, same letters), nothing cut.
    _, roomy = drawn_legend(h, 4 * w)
    for name, alone, label in zip(names, roomy, CLASS_NAMES):
        assert np.array_equal(name, alone), label


def test_a_frame_too_small_for_readable_names_gets_smaller_ones_inside_it_or_none():
    top, names = drawn_legend(72, 256)  # 9-px names need more than the frame: 7 to 8-px ones fit, whole
    assert top > 0 and names[CLASS_NAMES.index("wall")].shape[0] >= 5
    image = np.full((32, 32, 3), 99, np.uint8)
    assert viz.legend_layout(32, 32).places == () and np.array_equal(viz.draw_legend(image, image[..., 0]), image)


def test_legend_shows_present_classes_in_their_colour_and_dims_the_rest():
    image = np.full((256, 512, 3), 200, np.uint8)
    pred = np.zeros((256, 512), np.uint8)  # road everywhere ...
    pred[:50, :50] = 13  # ... and a car
    out = viz.draw_legend(image, pred)
    lg = viz.legend_layout(256, 512)
    for c in range(NUM_CLASSES):
        x, y = lg.places[c]
        swatch = out[y + lg.px // 2, x + lg.px // 2]
        if c in (0, 13):
            assert np.array_equal(swatch, PALETTE[c])
        else:
            assert not np.array_equal(swatch, PALETTE[c])
    assert np.array_equal(out[: lg.top], image[: lg.top])  # the picture above the band is untouched


# ----------------------------------------------------------------------------- memory


@pytest.mark.slow
def test_memory_stays_flat_along_the_clip(tmp_path, kitti_frames):
    """RSS while predicting frame 60 vs frame 240 of one clip: holding the frames would add ~35 MB."""
    long = [kitti_frames[i % 12] for i in range(240)]
    clip = video.open_clip(encode(tmp_path / "long.mp4", long))
    rss = []

    def predict(image: np.ndarray) -> np.ndarray:  # no model: the streaming itself is measured
        rss.append(int(Path("/proc/self/statm").read_text().split()[1]) * 4096)
        return np.full(image.shape[:2], 13, np.uint8)

    done = video.predict_clip(clip, predict, tmp_path, frame_format="trainIds")
    assert done.frames == 240 == done.label_maps
    grown = (max(rss[180:]) - max(rss[:60])) / 2**20
    held = 180 * SIZE[0] * SIZE[1] * 3 / 2**20  # the 180 later frames' pixels, had they been kept
    assert grown < held / 4, f"RSS grew {grown:.1f} MB from frame 60 to 240 (holding those frames: {held:.0f} MB)"


# ----------------------------------------------------------------------------- bad inputs


def _predict(tmp_path: Path, checkpoint: str, img: Path, **kw) -> list[Path]:
    return predict(PredictConfig(checkpoint=checkpoint, img=str(img), output=str(tmp_path / "out"), device="cpu", **kw))


def test_damaged_and_mislabelled_files_say_what_they_are_and_the_fix(tmp_path, kitti_frames, checkpoint):
    good = encode(tmp_path / "good.mp4", kitti_frames[:3])
    cases = {
        "empty.mp4": b"",
        "noise.mp4": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
        "truncated.mp4": good.read_bytes()[: good.stat().st_size // 2],  # the index (moov) is at the end
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(
            SegkitError, match=r"is not a video FFmpeg can read .*expected \.mp4.*re-download or re-export"
        ):
            _predict(tmp_path, checkpoint, tmp_path / name)
    cv2.imwrite(str(tmp_path / "photo.png"), kitti_frames[0])
    shutil.copy(tmp_path / "photo.png", tmp_path / "photo.mp4")
    with pytest.raises(SegkitError, match=r"named as a video but holds a still image \(png\); rename it to photo.png"):
        _predict(tmp_path, checkpoint, tmp_path / "photo.mp4")
    shutil.copy(good, tmp_path / "frame.png")
    with pytest.raises(
        SegkitError, match=r"named as an image \(.png\) but holds a video \(mp4 container\); rename it to frame.mp4"
    ):
        _predict(tmp_path, checkpoint, tmp_path / "frame.png")
    assert not (tmp_path / "out").exists()  # nothing written for any of them


def test_a_clip_without_frames_leaves_no_file(tmp_path, checkpoint):
    for name, codec in (("none.avi", "mpeg4"), ("none.mp4", "libx264")):  # a stream without frames; an empty track
        with av.open(str(tmp_path / name), "w") as container:
            stream = container.add_stream(codec, rate=10)
            stream.width, stream.height = 64, 64
            container.start_encoding()  # the header, then no frame
    with pytest.raises(SegkitError, match="none.avi has a video stream but no frames: nothing to predict"):
        _predict(tmp_path, checkpoint, tmp_path / "none.avi")
    assert list((tmp_path / "out").iterdir()) == []  # no empty or partial overlay left behind
    with pytest.raises(
        SegkitError, match=r"none.mp4 has no video stream \(only nothing\); expected a clip with pictures"
    ):
        _predict(tmp_path, checkpoint, tmp_path / "none.mp4")


def test_flags_that_do_not_fit_the_input_are_refused_with_the_fix(tmp_path, kitti_frames, checkpoint):
    clip = encode(tmp_path / "c.mp4", kitti_frames[:2])
    with pytest.raises(SegkitError, match=r"--fps is for a folder of frames; c.mp4 is a video and keeps its own"):
        _predict(tmp_path, checkpoint, clip, fps=5)
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), kitti_frames[0])
    cv2.imwrite(str(images / "b.png"), kitti_frames[1][:64])
    with pytest.raises(SegkitError, match=r"--fps is the frame rate of a video; .* add --video"):
        _predict(tmp_path, checkpoint, images, fps=5)
    with pytest.raises(
        SegkitError, match=r"share one size: a.png is 128x384, b.png is 64x384. Resize .* without --video"
    ):
        _predict(tmp_path, checkpoint, images, video=True, fps=5)
    nested = tmp_path / "nested"
    (nested / "drive_01").mkdir(parents=True)
    cv2.imwrite(str(nested / "drive_01" / "a.png"), kitti_frames[0])
    with pytest.raises(
        SegkitError, match=r"no frames .* directly in the folder; the frames are in subfolders .*drive_01.*pass one"
    ):
        _predict(tmp_path, checkpoint, nested, video=True, fps=5)
    with pytest.raises(SegkitError, match="--video takes a folder of frames or a video file"):
        _predict(tmp_path, checkpoint, images / "a.png", video=True, fps=5)


def test_existing_outputs_are_never_replaced_silently(tmp_path, kitti_frames, checkpoint):
    clip = encode(tmp_path / "c.mp4", kitti_frames[:2])
    first = _predict(tmp_path, checkpoint, clip, format="trainIds")
    before = first[0].stat().st_mtime_ns
    for fmt in ("color", "trainIds"):  # the video, or its label maps
        with pytest.raises(SegkitError, match=r"already exist in .* pass --overwrite to replace them"):
            _predict(tmp_path, checkpoint, clip, format=fmt)
    (tmp_path / "out" / "c_overlay.mp4").unlink()
    with pytest.raises(SegkitError, match=r"2 output file\(s\) .* c_00000[01]_trainIds.png"):
        _predict(tmp_path, checkpoint, clip, format="trainIds")
    again = _predict(tmp_path, checkpoint, clip, format="trainIds", overwrite=True)
    assert again == first and again[0].stat().st_mtime_ns != before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in first)  # no temp files left
