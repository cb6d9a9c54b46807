"""How well segkit decodes image pairs' colour masks: decoded trainIds against the true labels, before and after.

Pairs are made from real frames with known labels as pix2pix made Kaggle's Cityscapes Image Pairs:
the labelIds coloured by the official palette, photo and mask each squashed to 256x256 with
Pillow's bicubic filter, side by side, JPEG quality 75 (`segkit.data.pairs.make_pair`). Each pair is
read back through the reader training uses (`read_pair`) and decoded twice in the same run:
"before" is v1's rule (nearest palette colour within the tolerance, the pixel alone), "after" is
segkit's decoder (`colormask.decode_colors`: by context).

Truth: the frame's labelIds as trainIds (labelIds -> trainIds, 255 ignored), resized to 256x256 by
nearest neighbour. Scored as segkit and cityscapesscripts score: pixels whose truth is 255 are
skipped; a pixel left undecided (255) counts against its true class's recall; IoU = TP / (TP + FP +
FN) per class, NaN only where a class is absent from truth and decoding; a class absent from the
truth but decoded somewhere has IoU 0 and counts in the mIoU. Also the mIoU over the classes present
in the truth, and the ceiling: the argmax of the exact bicubic blend weights (no JPEG), what a
decoder that unmixed each pixel perfectly would score against this truth.

    python benchmarks/pair_decoder.py FRAMES [FRAMES ...] [--image-glob G --label-glob G] [--tolerance 20]

FRAMES: folders of frames with labelIds (real data, never in the repository), found as
`segkit train` finds them, or by the two globs, e.g. pix2pixHD's 8 Cityscapes frames:
    python benchmarks/pair_decoder.py /work/shared/data/kitti-mini
    python benchmarks/pair_decoder.py pix2pixHD/datasets/cityscapes \
        --image-glob '{split}_img/*_leftImg8bit.png' --label-glob '{split}_label/*_gtFine_labelIds.png'
Last line: `pair_miou: X` (after, all 19 classes, the last folder given).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segkit.data.colormask import nearest_colors
from segkit.data.discover import find_data_roots, list_samples, list_splits
from segkit.data.layouts import layouts_for
from segkit.data.pairs import PAIR_COLORS, PAIR_TRAIN_IDS, decode_mask, make_pair, read_pair
from segkit.labels import CLASS_NAMES, IGNORE_INDEX, LABEL_COLORS, LABEL_TO_TRAIN
from segkit.metrics import ConfusionMatrix

DECODERS = ("before", "after", "ceiling")


def frames_of(root: str, image_glob: str, label_glob: str) -> list[tuple[Path, Path]]:
    """(photo, labelIds) files of every split of a folder, found as segkit finds data."""
    layouts = layouts_for(image_glob=image_glob, label_glob=label_glob) if image_glob else layouts_for()
    roots = find_data_roots(root, layouts=layouts)
    return [(s.image, s.label) for split in list_splits(roots) for s in list_samples(roots, split)]


def nearest_only(mask: np.ndarray, tolerance: float) -> np.ndarray:
    """v1's rule: each pixel alone, its nearest palette colour's trainId within the tolerance, else 255."""
    index, distance = nearest_colors(mask, PAIR_COLORS)
    return np.where(distance <= tolerance, PAIR_TRAIN_IDS[index], IGNORE_INDEX).astype(np.uint8)


def ceiling(label_ids: np.ndarray, half: int) -> np.ndarray:
    """trainIds of the largest exact bicubic blend weight per pixel: a perfect unmixer's answer (no JPEG)."""
    colors = LABEL_COLORS[label_ids]  # (H, W, 3)
    best, which = np.full((half, half), -np.inf, np.float32), np.zeros((half, half), np.int64)
    for k, color in enumerate(PAIR_COLORS):
        drawn = np.all(colors == color, axis=-1)
        if drawn.any():
            weight = np.asarray(Image.fromarray(drawn.astype(np.float32), "F").resize((half, half), Image.BICUBIC))
            which[weight > best], best = k, np.maximum(best, weight)
    return PAIR_TRAIN_IDS[which]


def measure(frames: list[tuple[Path, Path]], half: int, quality: int, tolerance: float, work: Path) -> dict:
    """{decoder: (ConfusionMatrix, CPU ms per mask, time.process_time)} over the frames made into pairs."""
    work.mkdir(parents=True, exist_ok=True)
    cms = {name: ConfusionMatrix() for name in DECODERS}
    seconds = dict.fromkeys(DECODERS, 0.0)
    for i, (image, label) in enumerate(frames):
        label_ids = np.asarray(Image.open(label))
        path = work / f"{i + 1}.jpg"
        path.write_bytes(make_pair(np.asarray(Image.open(image).convert("RGB")), label_ids, (half, half), quality))
        mask = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[:, half:])
        truth = LABEL_TO_TRAIN[np.asarray(Image.fromarray(label_ids).resize((half, half), Image.NEAREST))]
        decoders = {
            "before": lambda m=mask: nearest_only(m, tolerance),
            "after": lambda m=mask: decode_mask(m, tolerance).train_ids,
            "ceiling": lambda lab=label_ids: ceiling(lab, half),
        }
        for name, decode in decoders.items():
            start = time.process_time()
            decoded = decode()
            seconds[name] += time.process_time() - start  # CPU time of this process: fair on a shared machine
            if name == "after":  # what training reads: the same pixels through the pair reader
                assert (read_pair(path, tolerance)[1].train_ids == decoded).all()
            cms[name].update(torch.from_numpy(decoded.astype(np.int64)), torch.from_numpy(truth.astype(np.int64)))
    return {name: (cms[name], 1000 * seconds[name] / len(frames)) for name in DECODERS}


def report(results: dict, title: str) -> float:
    """Print per class recall / precision / IoU of each decoder; return the after mIoU."""
    print(f"\n{title}\n{'class':<15}{'true px':>9}" + "".join(f"{n + ' R/P/IoU':>22}" for n in DECODERS))
    cm0 = results["after"][0]
    scores = {}
    for name, (cm, _) in results.items():
        tp, fp, fn = (t.numpy() for t in cm._tp_fp_fn())
        with np.errstate(invalid="ignore", divide="ignore"):
            scores[name] = (tp / (tp + fn), tp / (tp + fp), cm.iou().numpy())
    truth = cm0.gt_pixels().numpy()
    for c, name in enumerate(CLASS_NAMES):
        if all(np.isnan(scores[n][2][c]) for n in DECODERS):
            continue
        cells = "".join(f"{'':>4}" + "".join(f"{100 * v[c]:>6.1f}" for v in scores[n]) for n in DECODERS)
        print(f"{name:<15}{int(truth[c]):>9}{cells}")
    present = np.flatnonzero(truth > 0)
    for name, (cm, ms) in results.items():
        iou = scores[name][2]
        print(
            f"{name:<8} mIoU {cm.miou():.4f} (19 classes: absent ones decoded somewhere count 0), "
            f"over the {len(present)} classes in the truth {np.nanmean(iou[present]):.4f}, "
            f"lowest {np.nanmin(iou):.3f}; {ms:.1f} ms CPU per mask"
        )
    return results["after"][0].miou()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("frames", nargs="+", help="folders of frames with labelIds (any layout segkit finds)")
    parser.add_argument("--image-glob", default="", help="photos below each folder, e.g. {split}_img/*.png")
    parser.add_argument("--label-glob", default="", help="labelIds below each folder, e.g. {split}_label/*.png")
    parser.add_argument("--tolerance", type=float, default=20.0, help="color_tolerance of the decoder")
    parser.add_argument("--quality", type=int, default=75, help="JPEG quality of the pairs")
    parser.add_argument("--half", type=int, default=256, help="side of each square half")
    parser.add_argument("--work-dir", default="runs/benchmarks/pairs", help="pair files are written here")
    args = parser.parse_args()
    miou = float("nan")
    for i, root in enumerate(args.frames):
        frames = frames_of(root, args.image_glob, args.label_glob)
        results = measure(frames, args.half, args.quality, args.tolerance, Path(args.work_dir) / str(i))
        title = f"{len(frames)} frames of {root} as {args.half}x{2 * args.half} JPEG q{args.quality} pairs, "
        miou = report(results, title + f"color_tolerance {args.tolerance:g}")
    print(f"pair_miou: {miou:.4f}")


if __name__ == "__main__":
    main()
