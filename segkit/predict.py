"""`segkit predict`: an image, a folder of images or a video in; one prediction file per image (or
frame) out, at the input's own size, never replacing a file without `--overwrite`.

Images go through `segkit.inference`'s one prediction path; a video file, or a folder of frames
with `--video`, goes to `segkit.video`, which streams it frame by frame through the same predictor.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2

from segkit import progress, runtime, video
from segkit.config import PredictConfig
from segkit.data.inputs import PredictInputs
from segkit.data.pairs import trained_on_pairs
from segkit.errors import SegkitError
from segkit.inference import encode_prediction, list_images, load_predictor, prediction_name
from segkit.models import at_image_size, open_checkpoint


def run_prediction(cfg: PredictConfig) -> list[Path]:
    """`segkit predict`: the files written (a video's overlay first, then its label maps)."""
    if video.wants_video(cfg):
        return video.predict_video(cfg)
    return predict_images(cfg)


def describe(written: list[Path], cfg: PredictConfig) -> str:
    """`segkit predict`'s last line: what was written where."""
    if video.wants_video(cfg):
        return video.describe(written, cfg)
    return f"wrote {len(written)} {cfg.format} prediction(s) to {cfg.output}"


def predict_images(cfg: PredictConfig) -> list[Path]:
    """One PNG per input image, at its size, in the requested format."""
    images = list_images(cfg.img)
    out_dir = Path(cfg.output)
    targets = [out_dir / prediction_name(p, cfg.format) for p in images]
    clobber = [t for t in targets if t.exists()]
    if clobber and not cfg.overwrite:
        raise SegkitError(
            f"{len(clobber)} prediction file(s) already exist in {out_dir} (e.g. {clobber[0].name}); "
            "choose another --output or pass --overwrite to replace them"
        )
    ckpt = at_image_size(open_checkpoint(cfg.checkpoint), cfg.image_size)
    predict = load_predictor(
        cfg.checkpoint, cfg.backend, cfg.inference, cfg.device, ckpt=ckpt, max_miou_drop=cfg.max_miou_drop
    )
    inputs = PredictInputs(cfg.pairs, trained_on_pairs(ckpt))  # photos as seen, image pairs' photo halves
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for path, target in progress.bar(list(zip(images, targets)), desc="predict", unit="img"):
        image = inputs.read(path)  # None: it could not be read (logged and counted; the rest goes on)
        if image is None:
            continue
        array = encode_prediction(predict(image), image, cfg.format, predict.space)
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
        if not cv2.imwrite(str(target), array):
            raise SegkitError(f"could not write {target}; is {out_dir} writable?")
    runtime.log.info(
        "%d image(s) in %.1f s (%s inference, %s backend)",
        len(images),
        time.perf_counter() - start,
        cfg.inference,
        cfg.backend,
    )
    inputs.finish(len(images), out_dir)  # raises, counting the files that failed
    return targets
