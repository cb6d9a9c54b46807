"""How well segkit decodes image pairs' colour masks: agreement of decoded trainIds with the truth.

Pairs are made from real frames with known labels (default: kitti-mini, 48 KITTI frames in the
Cityscapes layout) as pix2pix made Kaggle's Cityscapes Image Pairs: the labelIds coloured by the
official palette, photo and mask each squashed to 256x256 with Pillow's bicubic filter, side by
side, JPEG quality 75 (`segkit.data.pairs.make_pair`). Each pair is read back through the reader
training uses (`read_pair`), and its decoded trainIds compared with the true trainIds squashed to
256x256 by nearest neighbour.

    python benchmarks/pair_decoder.py [--data-root /work/shared/data/kitti-mini] [--tolerance 20] [--quality 75]

kitti-mini's labels have a line of labelId 0 (unlabeled, black) along most class edges (they were
made from smoothed colour masks); real Cityscapes masks have none. `--fill-edges` gives those pixels
their nearest labelled neighbour's label before the pair is made: closer to a real Cityscapes mask.

Per class: recall (true pixels decoded as the class), precision (decoded pixels truly of it), IoU.
Overall: agreement on evaluated pixels (truth in the 19 classes), pixels left undecided (far from
every colour), decoded as a void label's colour, decided wrong. Last line: `pair_agreement: X`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from segkit.data.discover import find_data_roots, list_samples
from segkit.data.pairs import make_pair, read_pair
from segkit.labels import CLASS_NAMES, IGNORE_INDEX, LABEL_TO_TRAIN, NUM_CLASSES


def fill_edges(label_ids: np.ndarray) -> np.ndarray:
    """labelId 0 pixels take the label of their nearest pixel that is not 0."""
    zero = label_ids == 0
    if not zero.any() or zero.all():
        return label_ids
    _, nearest = cv2.distanceTransformWithLabels(zero.astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(~zero)
    source = np.zeros(nearest.max() + 1, np.int64)
    source[nearest[~zero]] = np.arange(len(ys))
    out = label_ids.copy()
    out[zero] = label_ids[ys[source[nearest[zero]]], xs[source[nearest[zero]]]]
    return out


def pairs_of(data_root: str, half: int, quality: int, fill: bool) -> list[tuple[bytes, np.ndarray]]:
    """(pair file, true trainIds at the half's size) of every labelled frame."""
    roots = find_data_roots(data_root)
    out = []
    for split in ("train", "val"):
        for sample in list_samples(roots, split):
            photo = np.asarray(Image.open(sample.image).convert("RGB"))
            label_ids = np.asarray(Image.open(sample.label))
            label_ids = fill_edges(label_ids) if fill else label_ids
            truth = LABEL_TO_TRAIN[
                np.asarray(Image.fromarray(label_ids).resize((half, half), Image.Resampling.NEAREST))
            ]
            out.append((make_pair(photo, label_ids, (half, half), quality), truth))
    return out


def measure(pairs: list[tuple[bytes, np.ndarray]], tolerance: float, work: Path) -> dict:
    """Confusion of decoded vs true trainIds (index 19 = 255) and the undecided / void counts."""
    cm = np.zeros((NUM_CLASSES + 1, NUM_CLASSES + 1), np.int64)
    far = void = 0
    work.mkdir(parents=True, exist_ok=True)
    for i, (data, truth) in enumerate(pairs):
        path = work / f"{i + 1}.jpg"
        path.write_bytes(data)
        decoded = read_pair(path, tolerance)[1]
        far, void = far + decoded.far, void + decoded.void
        t = np.where(truth == IGNORE_INDEX, NUM_CLASSES, truth).ravel()
        d = np.where(decoded.train_ids == IGNORE_INDEX, NUM_CLASSES, decoded.train_ids).ravel()
        np.add.at(cm, (t, d), 1)
    return {"cm": cm, "far": far, "void": void}


def report(result: dict, title: str) -> float:
    cm, n = result["cm"], result["cm"].sum()
    tp = np.diag(cm)[:NUM_CLASSES]
    truth, decoded = cm[:NUM_CLASSES].sum(1), cm[:, :NUM_CLASSES].sum(0)
    print(f"\n{title}\n{'class':<15}{'true px':>9}{'recall':>8}{'precision':>10}{'IoU':>7}")
    for c, name in enumerate(CLASS_NAMES):
        union = truth[c] + decoded[c] - tp[c]
        cells = [
            tp[c] / truth[c] if truth[c] else np.nan,
            tp[c] / decoded[c] if decoded[c] else np.nan,
            tp[c] / union if union else np.nan,
        ]
        print(f"{name:<15}{truth[c]:>9}" + "".join(f"{100 * v:>{w}.1f}" for v, w in zip(cells, (8, 10, 7))))
    agreement = tp.sum() / truth.sum()
    wrong = cm[:, :NUM_CLASSES].sum() - tp.sum()
    print(
        f"agreement on evaluated pixels {100 * agreement:.2f}% ({truth.sum()} true class pixels); "
        f"all pixels {100 * np.trace(cm) / n:.2f}%; undecided (far) {100 * result['far'] / n:.2f}%, "
        f"void colour {100 * result['void'] / n:.2f}%, decided wrong {100 * wrong / n:.2f}% of {n} pixels"
    )
    return agreement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default="/work/shared/data/kitti-mini", help="frames with labelIds (any layout)")
    parser.add_argument("--tolerance", type=float, default=20.0, help="color_tolerance of the decoder")
    parser.add_argument("--quality", type=int, default=75, help="JPEG quality of the pairs")
    parser.add_argument("--half", type=int, default=256, help="side of each square half")
    parser.add_argument("--fill-edges", action="store_true", help="also measure with labelId-0 edge lines filled")
    parser.add_argument("--work-dir", default="runs/benchmarks/pairs", help="pair files are written here")
    args = parser.parse_args()
    variants = [("as is", False)] + ([("label 0 edges filled", True)] if args.fill_edges else [])
    agreements = []
    for name, fill in variants:
        pairs = pairs_of(args.data_root, args.half, args.quality, fill)
        result = measure(pairs, args.tolerance, Path(args.work_dir) / name.replace(" ", "_"))
        agreements.append(
            report(
                result,
                f"{len(pairs)} frames of {args.data_root} ({name}) as {args.half}x"
                f"{2 * args.half} JPEG q{args.quality} pairs, color_tolerance {args.tolerance:g}",
            )
        )
    print(f"pair_agreement: {agreements[0]:.4f}")  # the frames as they are


if __name__ == "__main__":
    main()
