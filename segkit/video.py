"""Predictions on video: a clip (.mp4, .mov, .avi, ...) or a folder of frames in, an H.264 MP4 of
the prediction blended over each frame with a class legend out (same size, same frame times), and
optionally one label map per frame. Streamed: one decoded frame in memory at a time.

PyAV (FFmpeg, with libx264, inside its wheel) decodes and encodes in-process; it is the optional
extra `segkit[video]` (in `.[dev]`, so `make setup` installs it). Every prediction goes through
`segkit.inference.load_predictor`, the same path as `segkit predict` on images. `segkit predict`
(cli.cmd_predict) sends a video input here (`wants_video`), images to the image path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segkit import progress
from segkit.config import PredictConfig
from segkit.data.cityscapes import read_image
from segkit.data.images import STILL_IMAGE_BRANDS
from segkit.errors import SegkitError
from segkit.files import AtomicFile
from segkit.inference import IMAGE_EXTENSIONS, encode_prediction, load_predictor, prediction_name
from segkit.labels import CITYSCAPES
from segkit.models import at_image_size, open_checkpoint
from segkit.viz import draw_legend, overlay

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm")
INSTALL_HINT = "pip install 'segkit[video]' (PyAV, which brings its own FFmpeg)"
OVERLAY_SUFFIX = "_overlay.mp4"
CRF = 20  # x264 quality (lower = better, 18 ~ visually lossless): the flat overlay colours compress well


def _av() -> Any:
    """PyAV, or an error with the install hint (an optional dependency)."""
    try:
        import av
    except ImportError as e:
        raise SegkitError(f"video input needs PyAV, which is not installed here: {INSTALL_HINT}") from e
    return av


# ----------------------------------------------------------------------------- what is a video


def container_kind(path: Path) -> str:
    """ "mp4" (also .mov/.m4v), "avi", "matroska" (also .webm) from a file's first bytes, else ""."""
    with open(path, "rb") as f:
        head = f.read(12)
    if head[4:8] == b"ftyp" and head[8:12] not in STILL_IMAGE_BRANDS:  # ftyp alone does not mean video
        return "mp4"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "matroska"
    return ""


def wants_video(cfg: PredictConfig) -> bool:
    """Is this `segkit predict` a video (a clip, or a folder with --video)? Flags that only a video
    takes are refused for images, with the fix."""
    if is_video_input(cfg.img, cfg.video):
        return True
    if cfg.fps:
        raise SegkitError(
            f"--fps is the frame rate of a video; {cfg.img} is predicted as images. For the frames "
            f"of one video add --video (writes <folder>{OVERLAY_SUFFIX}); otherwise drop --fps"
        )
    return False


def is_video_input(img: str | Path, video: bool = False) -> bool:
    """Does `segkit predict --img img [--video]` ask for a video? A video file by its name, or a
    folder with `video`; an image-named file that holds a video is refused with the fix."""
    path = Path(img)
    if path.is_dir():
        return video
    if not path.is_file():
        return False  # the image path says that it does not exist
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return True
    kind = container_kind(path)
    if kind and path.suffix.lower() in IMAGE_EXTENSIONS:
        raise SegkitError(
            f"{path} is named as an image ({path.suffix}) but holds a video ({kind} container); "
            f"rename it to {path.with_suffix('.mp4' if kind == 'mp4' else '.' + kind[:3]).name} "
            "to predict it as a video"
        )
    if video:
        raise SegkitError(
            f"--video takes a folder of frames or a video file ({', '.join(VIDEO_EXTENSIONS)}); "
            f"{path} is neither. Pass the folder that holds the frames"
        )
    return False


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Frame:
    """One frame as a player shows it (rotation applied), in presentation order."""

    index: int  # 0-based position in the clip
    image: np.ndarray  # (H, W, 3) uint8 RGB
    pts: int  # presentation time in units of the clip's time_base
    name: str  # file name its label map is named after: <clip>_<index:06d>.png, or the frame file's own


@dataclass(frozen=True)
class Clip:
    """A video file or the frames of one video in a folder, decoded one frame at a time by iterating."""

    source: Path  # the video file or the folder
    name: str  # output names start with it: <name>_overlay.mp4
    rate: Fraction  # frames/s; the average one for a variable frame rate
    time_base: Fraction  # seconds per pts unit
    frames: int | None  # frames announced (a folder: exact); None when the container does not say
    files: tuple[Path, ...] = field(default=())  # a folder's frames, in order

    def __iter__(self) -> Iterator[Frame]:
        return self._read_files() if self.files else self._decode()

    def _read_files(self) -> Iterator[Frame]:
        first: tuple[int, ...] | None = None
        for index, path in enumerate(self.files):
            image = read_image(path)
            if first is None:
                first = image.shape
            elif image.shape != first:
                raise SegkitError(
                    f"the frames of one video share one size: {self.files[0].name} is {first[0]}x{first[1]}, "
                    f"{path.name} is {image.shape[0]}x{image.shape[1]}. Resize the frames to one size, or "
                    f"predict the folder without --video (each image at its own size)"
                )
            yield Frame(index, image, index, path.name)

    def _decode(self) -> Iterator[Frame]:
        av = _av()
        index, last_pts = 0, None
        with _open_container(self.source) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame threads: decoding keeps up with the model on 2 cores
            step = max(1, round(1 / (self.rate * self.time_base)))  # one frame, in pts units
            try:
                for frame in container.decode(stream):
                    pts = _next_pts(frame.pts, last_pts, step)
                    image = upright(frame.to_ndarray(format="rgb24"), frame.rotation)
                    yield Frame(index, image, pts, f"{self.name}_{index:06d}.png")
                    index, last_pts = index + 1, pts
            except av.error.FFmpegError as e:
                raise SegkitError(
                    f"{self.source} is damaged: decoding failed after {index} frame(s) ({e}). Fix: "
                    "re-download or re-export the clip; `ffmpeg -i IN -c:v libx264 OUT.mp4` "
                    "salvages what can be decoded"
                ) from e
        if self.frames and index < self.frames:
            progress.log.warning(
                "%s: decoded %d frame(s) of the %d its header announces (truncated or damaged "
                "file?); the overlay holds those %d",
                self.source,
                index,
                self.frames,
                index,
            )


def _next_pts(pts: int | None, last: int | None, step: int) -> int:
    """A frame's time, or (none given, as in some AVIs, or not after the last one) the next free one:
    the encoder needs strictly increasing times."""
    if last is None:
        return 0 if pts is None else pts
    if pts is None:
        return last + step
    return pts if pts > last else last + 1


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """The frame as players show it: FFmpeg's display rotation is counterclockwise in degrees
    (a phone held upright records rotation -90: turn the stored frame 90 degrees clockwise)."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def _open_container(path: Path) -> Any:
    """The file opened by FFmpeg for decoding, with a fix-bearing message for anything that is not a video."""
    av = _av()
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise SegkitError(
            f"{path} is not a video FFmpeg can read ({e}); expected {', '.join(VIDEO_EXTENSIONS)}. "
            "The file is empty, truncated (no index: `moov atom not found`) or not a video: "
            "re-download or re-export it"
        ) from e
    fmt = container.format.name
    if fmt.endswith("_pipe") or fmt == "image2":  # FFmpeg reads a PNG or JPEG as a 1-frame "video"
        container.close()
        kind = fmt.removesuffix("_pipe")
        raise SegkitError(
            f"{path} is named as a video but holds a still image ({kind}); rename it to "
            f"{path.with_suffix('.' + kind.replace('jpeg', 'jpg')).name} to predict it as an image"
        )
    if not container.streams.video:
        container.close()
        raise SegkitError(
            f"{path} has no video stream (only {', '.join(s.type for s in container.streams) or 'nothing'}); "
            "expected a clip with pictures"
        )
    return container


def open_clip(img: str | Path, fps: float = 0.0) -> Clip:
    """A video file, or a folder of frames (sorted by name, numbers in names compared as numbers).

    Args:
        img: the video file or the folder.
        fps: frames/s of a folder of frames (required there); a video file keeps its own.
    """
    path = Path(img)
    if path.is_dir():
        return frames_clip(_frame_files(path), fps, path.name)
    if fps:
        raise SegkitError(
            f"--fps is for a folder of frames; {path.name} is a video and keeps its own frame rate. "
            "Drop --fps (to retime a clip: ffmpeg -i IN -r FPS OUT)"
        )
    with _open_container(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(1 / float(stream.time_base)).limit_denominator()
        return Clip(path, path.stem, Fraction(rate), Fraction(stream.time_base), stream.frames or None)


def frames_clip(files: list[Path], fps: float, name: str) -> Clip:
    """The given image files, in that order, as the frames of one video at `fps` frames/s."""
    if fps <= 0:
        raise SegkitError(
            f"a folder of frames has no frame rate of its own; pass --fps (e.g. --fps 10 for KITTI, "
            f"17 for Cityscapes sequences, 29.97 for NTSC video); got {fps}"
        )
    if not files:
        raise SegkitError(f"no frames to make the {name} video of")
    rate = frame_rate(fps)
    return Clip(files[0].parent, name, rate, 1 / rate, len(files), tuple(files))


def frame_rate(fps: float) -> Fraction:
    """fps as an exact fraction: the NTSC rates (23.976, 29.97, 59.94) are N*1000/1001, as cameras record them."""
    ntsc = round(fps * 1.001)
    if abs(fps - ntsc * 1000 / 1001) < 0.006 and abs(fps - ntsc) > 0.006:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1000)


def _frame_files(folder: Path) -> list[Path]:
    """The images directly in a folder, in natural order (frame_2 before frame_10)."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    if not files:
        below = sorted({p.parent for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS})
        hint = (
            f"; the frames are in subfolders ({', '.join(str(p) for p in below[:3])}): pass one of them"
            if below
            else ""
        )
        raise SegkitError(f"--video {folder}: no frames ({', '.join(IMAGE_EXTENSIONS)}) directly in the folder{hint}")
    return sorted(files, key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])


# ----------------------------------------------------------------------------- writing


class OverlayWriter:
    """An H.264 MP4 written frame by frame to a temporary file, renamed to `path` when complete.

    4:2:0 chroma (what every browser and phone plays) needs even sizes; an odd width or height is
    encoded as 4:4:4 at its exact size (VLC, mpv, FFmpeg play it; most browsers do not), with a warning.
    """

    def __init__(self, path: Path, size: tuple[int, int], rate: Fraction, time_base: Fraction) -> None:
        av = _av()
        self.path, self.size, self.time_base = path, size, time_base
        self.file = AtomicFile(path)
        try:
            self.container = av.open(str(self.file.tmp), "w", format="mp4", options={"movflags": "+faststart"})
        except BaseException:
            self.file.discard()
            raise
        stream = self.container.add_stream("libx264", rate=rate, options={"crf": str(CRF), "preset": "fast"})
        h, w = size
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p"
        if stream.pix_fmt == "yuv444p":
            progress.log.warning(
                "%s: frames are %dx%d, odd sizes cannot be 4:2:0 H.264 (what browsers play); "
                "written as 4:4:4 at the same size (VLC, mpv, FFmpeg play it). For a browser, crop "
                "the input to %dx%d",
                path.name,
                h,
                w,
                h - h % 2,
                w - w % 2,
            )
        stream.codec_context.time_base = time_base
        stream.codec_context.colorspace, stream.codec_context.color_range = 1, 1  # BT.709, limited: web video
        self.stream = stream

    def write(self, image: np.ndarray, pts: int) -> None:
        """Encode one (H, W, 3) uint8 RGB frame shown at `pts` (units of time_base)."""
        av = _av()
        if image.shape[:2] != self.size:
            raise SegkitError(
                f"frame of {image.shape[0]}x{image.shape[1]} in a {self.size[0]}x{self.size[1]} video: "
                "a clip that changes size midway is not supported; re-encode it at one size"
            )
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame = frame.reformat(format=self.stream.pix_fmt, dst_colorspace=1, dst_color_range=1)
        frame.pts, frame.time_base = pts, self.time_base
        self.container.mux(self.stream.encode(frame))

    def close(self) -> Path:
        """Flush the encoder and move the finished file into place."""
        self.container.mux(self.stream.encode(None))
        self.container.close()
        return self.file.commit()

    def abort(self) -> None:
        """Drop the unfinished file (an error midway leaves no half video behind)."""
        try:
            self.container.close()
        finally:
            self.file.discard()


# ----------------------------------------------------------------------------- predicting


@dataclass(frozen=True)
class ClipPrediction:
    """What `predict_clip` wrote."""

    overlay: Path  # <name>_overlay.mp4
    label_maps: int  # per-frame PNGs written (0 without a frame format)
    frames: int
    seconds: float  # wall time, decoding to the last write

    @property
    def frames_per_second(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def predict_clip(
    clip: Clip, predict: Callable[[np.ndarray], np.ndarray], out_dir: Path, frame_format: str = "", max_width: int = 0
) -> ClipPrediction:
    """Predict every frame of a clip: the overlay video (and label maps), one frame in memory at a time.

    Args:
        clip: from `open_clip` / `frames_clip`.
        predict: image (H, W, 3) uint8 RGB -> trainIds (H, W) (`inference.load_predictor`).
        out_dir: existing folder for <name>_overlay.mp4 and the label maps (existing files are replaced:
            callers check first, see `predict_video`).
        frame_format: trainIds, labelIds, color or overlay: also one PNG per frame, named
            `<clip>_<frame:06d>_<format>.png` (a folder of frames: after each frame's file); "" = none.
        max_width: > 0 shrinks the overlay video (not the label maps) to at most this width, even
            sizes (a small preview for a notebook); 0 keeps the frames' size.
    """
    import time

    space = getattr(predict, "space", CITYSCAPES)  # a `load_predictor` predictor knows its model's classes
    writer: OverlayWriter | None = None
    frames = maps = 0
    start = time.perf_counter()
    bar = progress.bar(total=clip.frames, desc=f"predict {clip.source.name}", unit="frame")
    try:
        for frame in clip:
            pred = predict(frame.image)
            shown = overlay(frame.image, pred, space=space)
            shown = draw_legend(
                _shrink(shown, max_width) if max_width else shown, pred, space
            )  # sized for what is shown
            if writer is None:
                writer = OverlayWriter(
                    out_dir / f"{clip.name}{OVERLAY_SUFFIX}", shown.shape[:2], clip.rate, clip.time_base
                )
            writer.write(shown, frame.pts)
            if frame_format:
                _write_png(
                    out_dir / prediction_name(Path(frame.name), frame_format),
                    encode_prediction(pred, frame.image, frame_format, space),
                )
                maps += 1
            frames += 1
            bar.update(1)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()
    if writer is None:
        raise SegkitError(
            f"{clip.source} has a video stream but no frames: nothing to predict. Check that the file "
            "plays; re-export it if it is empty"
        )
    path = writer.close()
    return ClipPrediction(path, maps, frames, time.perf_counter() - start)


def _shrink(image: np.ndarray, max_width: int) -> np.ndarray:
    h, w = image.shape[:2]
    if w <= max_width:
        return image
    nw = max_width - max_width % 2
    nh = max(2, round(h * nw / w / 2) * 2)
    return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)


def _write_png(path: Path, array: np.ndarray) -> None:
    array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    if not cv2.imwrite(str(path), array):
        raise SegkitError(f"could not write {path}; is {path.parent} writable?")


def predict_video(cfg: PredictConfig) -> list[Path]:
    """`segkit predict --img CLIP` (or `--img FOLDER --video --fps N`): the overlay video and, when
    --format is trainIds, labelIds or overlay, one label map per frame. Returns [overlay, label maps...].

    Existing outputs are never replaced without --overwrite.
    """
    clip = open_clip(cfg.img, cfg.fps)
    frame_format = "" if cfg.format == "color" else cfg.format  # the overlay video already shows the colours
    out_dir = Path(cfg.output)
    target = out_dir / f"{clip.name}{OVERLAY_SUFFIX}"
    existing = [target] if target.exists() else []
    if frame_format:
        names = [prediction_name(p, frame_format) for p in clip.files] if clip.files else None
        existing += [
            p
            for p in out_dir.glob(f"*_{frame_format}.png")
            if (p.name in names if names is not None else _is_frame_map(p.name, clip.name, frame_format))
        ]
    if existing and not cfg.overwrite:
        raise SegkitError(
            f"{len(existing)} output file(s) of this video already exist in {out_dir} (e.g. "
            f"{existing[0].name}); choose another --output or pass --overwrite to replace them"
        )
    ckpt = at_image_size(open_checkpoint(cfg.checkpoint), cfg.image_size)  # a file or (main) a released model id
    predict = load_predictor(
        cfg.checkpoint, cfg.backend, cfg.inference, cfg.device, ckpt=ckpt, max_miou_drop=cfg.max_miou_drop
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    done = predict_clip(clip, predict, out_dir, frame_format)
    progress.log.info(
        "%s: %d frame(s) in %.1f s (%.1f frames/s, %s inference, %s backend) -> %s%s",
        clip.source.name,
        done.frames,
        done.seconds,
        done.frames_per_second,
        cfg.inference,
        cfg.backend,
        done.overlay,
        f" + {done.label_maps} {frame_format} label map(s)"
        if frame_format
        else "; per-frame label maps: add --format trainIds, labelIds or overlay",
    )
    maps = (
        [out_dir / prediction_name(Path(f), frame_format) for f in _frame_names(clip, done.frames)]
        if frame_format
        else []
    )
    return [done.overlay, *maps]


def describe(written: list[Path], cfg: PredictConfig) -> str:
    """`segkit predict`'s last line for a video: the overlay and how many label maps."""
    maps = f" and {len(written) - 1} {cfg.format} label map(s) to {cfg.output}" if len(written) > 1 else ""
    return f"wrote {written[0]}{maps}"


def _is_frame_map(name: str, clip: str, fmt: str) -> bool:
    return re.fullmatch(rf"{re.escape(clip)}_\d{{6}}_{re.escape(fmt)}\.png", name) is not None


def _frame_names(clip: Clip, frames: int) -> list[str]:
    return [p.name for p in clip.files] if clip.files else [f"{clip.name}_{i:06d}.png" for i in range(frames)]
