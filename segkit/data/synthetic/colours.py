"""Colours of the synthetic scenes: palettes overlap between classes on purpose."""

from __future__ import annotations

import colorsys

import numpy as np

from segkit.data.synthetic.canvas import Colour, _Random


def _jitter(rng: _Random, colour, amount: float) -> Colour:
    noise = [rng.uniform(-amount, amount) for _ in range(3)]
    return np.clip(np.add(colour, noise), 0, 255)


def _grey(rng: _Random, lo: float, hi: float, tint: float = 8.0) -> Colour:
    return _jitter(rng, [rng.uniform(lo, hi)] * 3, tint)


def _hue(rng: _Random, sat=(0.3, 1.0), val=(60, 230)) -> Colour:
    """Any hue at the given saturation and value (0..255) ranges."""
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val)))


def _building_colour(rng: _Random) -> Colour:
    kind = rng.pick((0.35, 0.3, 0.15, 0.2))
    if kind == 0:
        return _grey(rng, 60, 215)  # concrete and plaster
    if kind == 1:
        return _jitter(rng, (200, 180, 150), 40)  # sandstone, beige
    return _jitter(rng, (145, 75, 55), 30) if kind == 2 else _hue(rng, (0.1, 0.45), (90, 230))


def _vehicle_colour(rng: _Random) -> Colour:
    return _grey(rng, 15, 235, 6) if rng.random() < 0.5 else _hue(rng, (0.3, 1.0), (40, 220))


def _green(rng: _Random) -> Colour:
    if rng.random() < 0.12:  # autumn
        return _jitter(rng, (150, 115, 40), 35)
    return np.array([rng.uniform(30, 95), rng.uniform(65, 150), rng.uniform(15, 65)])


def _terrain_colour(rng: _Random) -> Colour:
    kind = rng.pick((0.6, 0.25, 0.15))
    if kind == 0:
        return np.array([rng.uniform(70, 140), rng.uniform(110, 175), rng.uniform(40, 90)])  # grass
    return _jitter(rng, (165, 150, 105) if kind == 1 else (120, 95, 70), 25)  # dry grass, soil


def _walk_colour(rng: _Random) -> Colour:
    kind = rng.pick((0.6, 0.2, 0.2))
    if kind == 0:
        return _grey(rng, 100, 200)
    return _jitter(rng, (175, 125, 115) if kind == 1 else (190, 175, 145), 25)


def _cloth(rng: _Random) -> Colour:
    return _grey(rng, 10, 200, 10) if rng.random() < 0.45 else _hue(rng, (0.2, 0.9), (30, 220))


def _skin(rng: _Random) -> Colour:
    return _jitter(rng, [(230, 190, 160), (190, 140, 100), (120, 80, 55)][rng.integers(3)], 20)


def _glass(rng: _Random) -> Colour:
    """Windows: dark, or reflecting a pale sky."""
    return _grey(rng, 20, 70, 12) if rng.random() < 0.6 else _jitter(rng, (150, 170, 190), 35)
