"""Colour masks decoded by a palette and by context: which palette colour each pixel of a resized or
JPEG'd colour mask was drawn in.

Resizing and JPEG blend the colours of neighbouring regions: the edge of a car (0, 0, 142) against
black is a dark blue that is nearest to truck's (0, 0, 70). A pixel's colour alone cannot tell a
blend from a thin thing of a third colour, its neighbours can. So, for any (N, 3) palette:

1. seeds: pixels within SEED_DISTANCE of their nearest colour whose 3x3 neighbours all agree (the
   inside of regions; a blended rim is at most two pixels wide at the squash Kaggle's pairs saw);
2. every other pixel is explained by the colours decided around it (the CANDIDATES most frequent
   in a WINDOW x WINDOW window, then FILL_WINDOW in later passes): one of them, or a blend of two.
   In a blend, luma and chroma take their own weights (JPEG keeps chroma at a quarter of the
   resolution), and the pixel takes the colour of the larger weight, the one its nearest-neighbour
   resize would most likely have sampled. A pixel within EXACT_DISTANCE of a palette colour that is
   MARGIN closer to it than to any explanation by its neighbours keeps that colour (a pole one
   pixel wide, not a blend of the building on both sides of it), and so does one within SAME of
   it (nothing blended it: lossless masks);
3. what no explanation brings within `tolerance` stays undecided (-1); passes repeat with the
   newly decided pixels as neighbours. A pixel with nothing decided within LONELY // 2 pixels
   has no context: its colour alone decides it, within `tolerance`;
4. thin things: an undecided pixel within `tolerance` of its nearest colour takes it when that
   colour shows nearby (EVIDENCE_COUNT pixels within EVIDENCE_DISTANCE of it in an EVIDENCE_WINDOW
   window). A pole one or two pixels wide has no seeds and no decided pole to be explained by, but
   its core is close to grey; a car's rim left undecided rarely has bus or train colour around it.

Distances are in JPEG's YCbCr with chroma counted half, sqrt(dY^2 + (dCb^2 + dCr^2) / 4), in levels.
Measured against true labels on real frames: benchmarks/pair_decoder.py, benchmarks/README.md.
"""

from __future__ import annotations

import cv2
import numpy as np

CHROMA_WEIGHT = 0.25  # weight of a squared chroma difference against a squared luma difference
SEED_DISTANCE = 10.0  # levels: a seed is this close to its colour (flat JPEG'd regions decode within ~8)
EXACT_DISTANCE = 6.0  # levels: a pixel this close to a colour not explained by its neighbours keeps it
SAME = 0.0  # levels: a pixel this close (exactly the colour) is it, whatever its neighbours (lossless masks)
MARGIN = 8.0  # levels: ... when the best explanation by its neighbours is this much farther
WINDOW = 9  # pixels: first pass, seeds looked at around a pixel (a rim is 1-3 pixels from a seed)
FILL_WINDOW = 5  # pixels: later passes, any decided pixel looked at
CANDIDATES = 3  # colours most frequent in the window that may explain a pixel, alone or two blended
LONELY = 27  # pixels: a pixel with nothing decided in a window this wide is decided by its colour alone
PASSES = 3  # explanation passes; each adds the pixels decided in the one before as neighbours
LUMA_SPLIT = 10.0  # levels: a blend whose colours differ this much in luma is weighed by luma, else by chroma
EVIDENCE_DISTANCE = 14.0  # levels: a pixel this close to a colour shows it (evidence for a thin thing)
EVIDENCE_WINDOW = 7  # pixels: evidence looked for in a window this wide around an undecided pixel
EVIDENCE_COUNT = 3  # pixels of evidence an undecided pixel needs to take its nearest colour
_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])  # JFIF
_TO_SPACE = (_YCC.T * np.array([1.0, np.sqrt(CHROMA_WEIGHT), np.sqrt(CHROMA_WEIGHT)])).astype(np.float32)


def to_space(rgb: np.ndarray) -> np.ndarray:
    """RGB in the decoder's space (YCbCr, chroma scaled by 1/2): plain distances from here.

    Shape:
        (..., 3) uint8 or float -> (..., 3) float32.
    """
    rgb = np.asarray(rgb, np.float32)
    # channel by channel: a (P, 3) @ (3, 3) product would start BLAS threads for nothing
    return np.stack([rgb[..., 0] * m[0] + rgb[..., 1] * m[1] + rgb[..., 2] * m[2] for m in _TO_SPACE.T], axis=-1)


def nearest_colors(rgb: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest palette colour of each pixel and its distance, computed once per distinct colour.

    Shape:
        (H, W, 3) uint8 RGB, (N, 3) uint8 palette -> (H, W) int64 index, (H, W) float32 distance.
    """
    index, distance, _, inverse = _nearest(rgb, palette)
    shape = rgb.shape[:2]
    return index[inverse].reshape(shape), distance[inverse].reshape(shape)


def _nearest(rgb: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per distinct colour of `rgb`: nearest palette index, its distance, the colour in the decoder's
    space; and each pixel's distinct colour. (U,), (U,), (U, 3), (H*W,)."""
    flat = rgb.reshape(-1, 3).astype(np.int32)
    packed = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    colors, inverse = np.unique(packed, return_inverse=True)  # a JPEG'd 256x256 mask: ~16k colours
    ycc = to_space(np.stack([colors >> 16, (colors >> 8) & 255, colors & 255], axis=1))  # (U, 3)
    pal = to_space(palette)  # (N, 3)
    d2 = (ycc[:, :1] - pal[None, :, 0]) ** 2  # (U, N), channel by channel: no (U, N, 3)
    d2 += (ycc[:, 1:2] - pal[None, :, 1]) ** 2
    d2 += (ycc[:, 2:3] - pal[None, :, 2]) ** 2
    index = d2.argmin(axis=1)
    return index, np.sqrt(d2[np.arange(len(colors)), index]), ycc, inverse.ravel()


def decode_colors(rgb: np.ndarray, palette: np.ndarray, tolerance: float) -> np.ndarray:
    """The palette colour each pixel of a colour mask was drawn in, decided by its colour and its neighbours.

    Args:
        rgb: (H, W, 3) uint8 colour mask (resized, JPEG'd, or exact).
        palette: (N, 3) uint8 distinct colours, N <= 32767. Ignored classes' colours belong in it: a
            blend with black is told from a dark colour only if black is a colour.
        tolerance: the largest distance (levels) between a pixel and its explanation.

    Returns:
        (H, W) int16 palette index, -1 where undecided.
    """
    h, w = rgb.shape[:2]
    index, distance, ycc, inverse = _nearest(rgb, palette)
    index, distance = index[inverse], distance[inverse]  # (H*W,)
    pal = to_space(palette)  # (N, 3)
    near = np.where(distance <= SEED_DISTANCE, index, -1).reshape(h, w).astype(np.int16)
    kernel = np.ones((3, 3), np.uint8)
    same = (cv2.erode(near, kernel) == near) & (cv2.dilate(near, kernel) == near)  # cv2 takes int16
    out = np.where(same.ravel() & (near.ravel() >= 0), index, -1).astype(np.int16)
    for n in range(PASSES):
        todo = np.flatnonzero(out < 0)
        if not len(todo):
            break
        cand = _candidates(out.reshape(h, w), todo, WINDOW if n == 0 else FILL_WINDOW)
        residual, label = _explain(ycc[inverse[todo]], pal, cand)
        # its own colour: a thin thing, not a blend of its neighbours; or exactly a palette colour (lossless)
        alone = (distance[todo] <= EXACT_DISTANCE) & (distance[todo] + MARGIN < residual)
        alone |= distance[todo] <= SAME
        label[alone], residual[alone] = index[todo][alone], distance[todo][alone]
        ok = residual <= tolerance
        out[todo[ok]] = label[ok]
    out = out.reshape(h, w)
    decided = cv2.dilate((out >= 0).astype(np.uint8), np.ones((LONELY, LONELY), np.uint8))
    lonely = (decided == 0) & (distance.reshape(h, w) <= tolerance)  # no context at all: the colour alone
    out[lonely] = index.reshape(h, w)[lonely]
    _thin_by_evidence(out, index.reshape(h, w), distance.reshape(h, w), tolerance)
    return out


def _thin_by_evidence(out: np.ndarray, index: np.ndarray, distance: np.ndarray, tolerance: float) -> None:
    """In place: an undecided pixel within `tolerance` of its nearest colour takes it when at least
    EVIDENCE_COUNT pixels in the EVIDENCE_WINDOW x EVIDENCE_WINDOW window around it are within
    EVIDENCE_DISTANCE of that colour: a pole or a person too thin for seeds, whose colour shows, not
    a lone blend nearest to a third colour (a car's rim nearest to bus or train).

    Shape:
        (H, W) int16 decoded (-1 undecided), (H, W) nearest index, (H, W) its distance.
    """
    ys, xs = np.nonzero((out < 0) & (distance <= tolerance))
    if not len(ys):
        return
    r = EVIDENCE_WINDOW // 2
    shown = np.pad(np.where(distance <= EVIDENCE_DISTANCE, index, -1), r, constant_values=-1)
    want = index[ys, xs]
    count = np.zeros(len(ys), np.int32)
    for dy in range(EVIDENCE_WINDOW):  # a loop over the window's offsets, each over all the pixels at once
        for dx in range(EVIDENCE_WINDOW):
            count += shown[ys + dy, xs + dx] == want
    keep = count >= EVIDENCE_COUNT
    out[ys[keep], xs[keep]] = want[keep]


def _candidates(decided: np.ndarray, todo: np.ndarray, window: int) -> np.ndarray:
    """(M, CANDIDATES) the colours most frequent among decided pixels in a window around each pixel, -1 = none."""
    present = np.unique(decided[decided >= 0])
    counts = np.zeros((len(todo), max(len(present), 1)), np.float32)
    for j, c in enumerate(present):
        around = cv2.boxFilter((decided == c).astype(np.float32), -1, (window, window), normalize=False)
        counts[:, j] = around.ravel()[todo]
    k = min(CANDIDATES, counts.shape[1])
    order = np.argsort(-counts, axis=1, kind="stable")[:, :k]
    cand = present[order].astype(np.int64) if len(present) else np.full((len(todo), 1), -1)
    cand[np.take_along_axis(counts, order, 1) == 0] = -1
    return cand


def _explain(x: np.ndarray, pal: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's best explanation by its candidates, one colour or a blend of two: (residual, colour).

    Shape:
        (M, 3) pixels in the decoder's space, (N, 3) palette, (M, K) candidates -> (M,) float32, (M,) int16.
    """
    best = np.full(len(x), np.inf, np.float32)
    label = np.full(len(x), -1, np.int16)
    colors = pal[np.maximum(cand, 0)]  # (M, K, 3)
    for a in range(cand.shape[1]):
        ca = colors[:, a]
        residual = np.sqrt(((x - ca) ** 2).sum(1))
        _keep_better(best, label, residual, cand[:, a] >= 0, cand[:, a])
        for b in range(a + 1, cand.shape[1]):
            dy, dc = colors[:, b, 0] - ca[:, 0], colors[:, b, 1:] - ca[:, 1:]
            # luma and chroma blend with weights of their own, each within [0, 1]
            s = np.clip((x[:, 0] - ca[:, 0]) * dy / np.maximum(dy * dy, 1e-6), 0, 1)
            u = np.clip(((x[:, 1:] - ca[:, 1:]) * dc).sum(1) / np.maximum((dc * dc).sum(1), 1e-6), 0, 1)
            off_y = x[:, 0] - ca[:, 0] - s * dy
            off_c = x[:, 1:] - ca[:, 1:] - u[:, None] * dc
            residual = np.sqrt(off_y**2 + (off_c**2).sum(1))
            weight = np.where(np.abs(dy) >= LUMA_SPLIT, s, u)  # luma is sharp where it differs
            valid = (cand[:, a] >= 0) & (cand[:, b] >= 0)
            _keep_better(best, label, residual, valid, np.where(weight < 0.5, cand[:, a], cand[:, b]))
    return best, label


def _keep_better(best: np.ndarray, label: np.ndarray, res: np.ndarray, valid: np.ndarray, what: np.ndarray) -> None:
    """In place: where `res` is valid and smaller than `best`, take it and its colour."""
    better = valid & (res < best)
    best[better] = res[better]
    label[better] = what[better]
