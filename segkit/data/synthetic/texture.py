"""The last step of a scene: texture by class, camera roll, blur, sensor noise, lighting."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from segkit.data.synthetic.canvas import (
    BORDER,
    BUILDING,
    BUS,
    CAR,
    LIGHT,
    PERSON,
    POLE,
    RIDER,
    ROAD,
    SIDEWALK,
    SIGN,
    SKY,
    TERRAIN,
    TRAIN,
    TRUCK,
    VEGETATION,
    WALL,
    _Canvas,
    _Random,
)

# Texture amplitude per labelId, in grey levels: row 0 coarse (stains, shading), row 1 grain.
_TEXTURE = np.zeros((2, 256), np.float32)
_TEXTURE[:] = ((6,), (4,))
for _classes, _amp in (((SKY,), (3, 1)), ((ROAD, SIDEWALK), (8, 5)), ((BUILDING, WALL), (6, 4)),
                       ((VEGETATION,), (14, 14)), ((TERRAIN,), (12, 11)),
                       ((CAR, BUS, TRAIN, TRUCK), (4, 2)),
                       ((PERSON, RIDER, POLE, LIGHT, SIGN), (3, 3))):  # fmt: skip
    _TEXTURE[:, list(_classes)] = np.array(_amp)[:, None]


def _finish(cv: _Canvas, rng: _Random) -> tuple[np.ndarray, np.ndarray]:
    """Texture by class, maybe roll, blur, sensor noise, then light level, colour cast, gamma."""
    h, w = cv.cam.size
    # cv2 rather than numpy for whole-image arithmetic: several times faster at these sizes.
    amp = (_TEXTURE * rng.gen.uniform(0.5, 1.5, (2, 256))).astype(np.float32)
    coarse = rng.gen.standard_normal((h // 8 + 2, w // 8 + 2), dtype=np.float32)
    coarse = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    label = cv2.extractChannel(cv.rgbl, 3)
    texture = cv2.LUT(label, amp[0]) * coarse + cv2.LUT(label, amp[1]) * _noise(rng, h, w, 1)
    image = cv2.cvtColor(cv.rgbl, cv2.COLOR_RGBA2RGB).astype(np.float32)
    image = cv2.add(image, cv2.merge([texture] * 3))
    if rng.random() < 0.25:
        image, label = _roll(rng, image, label)
    if rng.random() < 0.7:
        image = cv2.GaussianBlur(image, (3, 3), rng.uniform(0.4, 0.9))
    image = cv2.scaleAdd(_noise(rng, h, w, 3), rng.uniform(1.0, 5.0), image)  # sensor noise
    image = cv2.convertScaleAbs(cv2.threshold(image, 0, 0, cv2.THRESH_TOZERO)[1])  # clip to 0..255
    # Light level, colour cast and gamma, one look-up table per channel.
    gain = rng.uniform(0.6, 1.25) * np.array([rng.uniform(0.88, 1.12) for _ in range(3)])
    lut = 255 * (np.arange(256)[:, None] / 255) ** rng.uniform(0.8, 1.25) * gain
    return cv2.LUT(image, np.clip(lut, 0, 255).astype(np.uint8)[None]), label


@lru_cache(maxsize=2)
def _noise_bank(channels: int) -> np.ndarray:
    """Gaussian noise drawn once from a fixed seed. A random window of it per image is much
    cheaper than fresh noise and just as deterministic. Shape (768, 1536, channels) float32."""
    gen = np.random.default_rng(20240 + channels)
    return gen.standard_normal((768, 1536, channels), dtype=np.float32)


def _noise(rng: _Random, h: int, w: int, channels: int) -> np.ndarray:
    """Standard normal noise (h, w) or (h, w, 3) float32 (a read-only window of a bank)."""
    bank = _noise_bank(channels)
    if h > bank.shape[0] or w > bank.shape[1]:
        noise = rng.gen.standard_normal((h, w, channels), dtype=np.float32)
    else:
        y, x = rng.integers(0, bank.shape[0] - h + 1), rng.integers(0, bank.shape[1] - w + 1)
        noise = bank[y : y + h, x : x + w]
    return noise[..., 0] if channels == 1 else noise


def _roll(rng: _Random, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by a small camera roll; the corners become 'rectification border' (void)."""
    h, w = label.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-3, 3), 1.0)
    image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    label = cv2.warpAffine(label, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=BORDER)
    return image, label
