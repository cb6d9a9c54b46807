"""Frames/s and peak memory of `segkit predict --img clip.mp4` at 256x512, for a short clip and one
4x longer (memory must not grow with the clip's length: frames are streamed).

The clip is encoded here from kitti-mini's real frames (one drive, 256x768, centre-cropped to
256x512, played forwards then backwards to the length asked, 10 frames/s, H.264). The model is the
cpu-quick architecture (segkit's U-Net, base 16, depth 4) with seeded weights (speed does not depend
on them) in a checkpoint that says it trained at 64x128 (cpu-quick's size: each frame is predicted
at 64x128 and the scores upsampled to 256x512) and, second, at 256x512 (the model sees the full
frame). Each run is its own `segkit predict` process: its peak RSS (includes ~0.3 GB of imported
libraries) is the clip's own. Frames/s is the command's own count: decode, predict, overlay,
legend, encode, end to end; the process's CPU time (user + system, start-up included) is printed
too, since wall time on a shared machine says more about the neighbours than about segkit.

    python benchmarks/video_throughput.py [--frames 100] [--data /work/shared/data/kitti-mini]

Last line: `video_memory_growth: X` (peak RSS of the 4x longer clip / peak RSS of the short one).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch

from segkit.checkpoint import FORMAT, VERSION, atomic_save
from segkit.data.transforms import MEAN, STD
from segkit.models import create_model, model_spec

SIZE = (256, 512)


def write_checkpoint(path: Path, image_size: tuple[int, int]) -> Path:
    """A segkit checkpoint of the cpu-quick architecture (seeded weights) trained at `image_size`."""
    torch.manual_seed(0)
    model = create_model("unet", 19, base_channels=16, depth=4)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.state_dict(),
        "model_spec": model_spec(model),
        "num_classes": 19,
        "image_size": list(image_size),
        "normalization": {"mean": list(MEAN), "std": list(STD)},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_save(payload, path)


def write_clip(path: Path, data: Path, frames: int) -> Path:
    """kitti-mini's frames in order, forwards then backwards, centre-cropped to SIZE, as an H.264 MP4."""
    import av

    files = sorted(data.glob("leftImg8bit/*/*/*_leftImg8bit.png"))
    assert files, f"no kitti-mini frames under {data}"
    order = [*range(len(files)), *range(len(files) - 2, 0, -1)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(10))
        stream.height, stream.width = SIZE
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = cv2.imread(str(files[order[i % len(order)]]))[..., ::-1]
            image = cv2.resize(
                image, (SIZE[0] * image.shape[1] // image.shape[0], SIZE[0]), interpolation=cv2.INTER_AREA
            )
            left = (image.shape[1] - SIZE[1]) // 2
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:, left : left + SIZE[1]]), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


CHILD = (
    "import resource, sys\nfrom segkit.cli import main\nmain(sys.argv[1:])\n"
    "u = resource.getrusage(resource.RUSAGE_SELF)\n"
    "print('peak_rss_mb', u.ru_maxrss / 1024, 'cpu_s', u.ru_utime + u.ru_stime)"
)


def predict(checkpoint: Path, clip: Path, out: Path) -> dict:
    """One `segkit predict` process on the clip: its frames/s and peak RSS."""
    argv = [
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--img",
        str(clip),
        "--output",
        str(out),
        "--device",
        "cpu",
        "--overwrite",
    ]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *argv],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "SEGKIT_PROGRESS": "log"},
    )
    rate = re.search(r"(\d+) frame\(s\) in ([\d.]+) s \(([\d.]+) frames/s", done.stderr)
    assert rate, done.stderr[-2000:]
    rss, cpu = map(float, re.search(r"peak_rss_mb ([\d.]+) cpu_s ([\d.]+)", done.stdout).groups())
    return {
        "frames": int(rate.group(1)),
        "seconds": float(rate.group(2)),
        "fps": float(rate.group(3)),
        "rss": rss,
        "cpu": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100, help="frames of the short clip (the long one: 4x)")
    parser.add_argument("--data", default="/work/shared/data/kitti-mini", help="kitti-mini (Cityscapes layout)")
    parser.add_argument("--work-dir", default="runs/benchmarks/video")
    args = parser.parse_args()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    short = write_clip(work / "short.mp4", Path(args.data), args.frames)
    long = write_clip(work / "long.mp4", Path(args.data), 4 * args.frames)
    results = {}
    for trained_at in ((64, 128), SIZE):
        ckpt = write_checkpoint(work / f"unet16_{trained_at[0]}x{trained_at[1]}.pth", trained_at)
        clips = (short, long) if trained_at == (64, 128) else (short,)  # memory once; the slow model: speed only
        for clip in clips:
            r = predict(ckpt, clip, work / "out")
            results[(trained_at, clip.stem)] = r
            print(
                f"U-Net base 16 trained at {trained_at[0]}x{trained_at[1]}, {clip.stem} clip {SIZE[0]}x{SIZE[1]}: "
                f"{r['frames']} frames in {r['seconds']:.1f} s = {r['fps']:.2f} frames/s, peak RSS {r['rss']:.0f} MB, "
                f"process CPU time {r['cpu']:.0f} s (start-up and model load included)"
            )
    growth = results[((64, 128), "long")]["rss"] / results[((64, 128), "short")]["rss"]
    print(f"video_memory_growth: {growth:.3f}")


if __name__ == "__main__":
    main()
