"""Planes along the street: facades, walls, fences, hedges."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from segkit.data.synthetic.canvas import (
    _Z_MIN,
    BUILDING,
    FENCE,
    VEGETATION,
    WALL,
    Colour,
    Drawable,
    _Camera,
    _Canvas,
    _front,
    _Random,
    _side,
    _sides,
)
from segkit.data.synthetic.colours import _building_colour, _glass, _green, _grey, _jitter
from segkit.data.synthetic.layout import _Side, _Street
from segkit.data.synthetic.roadside import _draw_tree


@dataclass(frozen=True)
class _Facade:
    height: float  # metres
    colour: Colour
    glass: Colour
    floor: float  # storey height, metres
    bay: float  # window spacing along the facade, metres
    window: tuple[float, float]  # window width (fraction of the bay) and height (metres)
    shops: bool  # big windows on the ground floor
    bands: bool  # a horizontal band at each storey
    depth: float  # metres, for the end face seen where the building line steps back


def _sample_facade(rng: _Random, shade: float = 1.0) -> _Facade:
    tall = rng.random() < 0.3
    return _Facade(
        height=rng.uniform(14, 40) if tall else rng.uniform(5, 18),
        colour=_building_colour(rng) * shade,
        glass=_glass(rng) * shade,
        floor=rng.uniform(2.8, 3.8),
        bay=rng.uniform(1.8, 3.5),
        window=(rng.uniform(0.35, 0.75), rng.uniform(1.1, 2.2)),
        shops=rng.random() < 0.7,
        bands=rng.random() < 0.5,
        depth=rng.uniform(8, 20),
    )


def _side_planes(rng: _Random, cam: _Camera, street: _Street, side: _Side) -> list[Drawable]:
    """Buildings, trees in the gaps, and a wall, fence or hedge along one side; key = |x|."""
    shade = street.shadow if street.sun == side.sign else 1.0
    planes: list[Drawable] = []
    z = rng.uniform(-15, 0)
    while z < street.z_end:
        length = rng.uniform(8, 35)
        if rng.random() < 0.12:  # a gap between buildings: sky and maybe a tree show through
            x = side.front + rng.uniform(3, 10)
            planes.append((x, partial(_draw_tree, x=side.sign * x, z=z + length / 2)))
        else:
            x = side.front + (rng.uniform(0.3, 2.0) if rng.random() < 0.3 else 0.0)
            z1 = min(z + length, street.z_end)
            style = _sample_facade(rng, shade)
            planes.append((x, partial(_draw_building, x=side.sign * x, z0=z, z1=z1, style=style)))
        z += length
    return planes + _barrier(rng, street, side)


def _draw_building(cv: _Canvas, rng: _Random, x: float, z0: float, z1: float, style: _Facade) -> None:
    if z0 > _Z_MIN:  # the end face, seen where the neighbour is set back or missing
        end = _front(x, x + math.copysign(style.depth, x), 0, style.height, z0)
        cv.poly(end, style.colour * 0.8, BUILDING)
    z0 = max(z0, _Z_MIN)
    quads = partial(_side_facade_quads, x, z0)
    _draw_facade(cv, rng, quads, lambda u: z0 + u, z1 - z0, style)


def _side_facade_quads(x: float, z0: float, u0, u1, v0, v1) -> np.ndarray:
    return _sides(x, z0 + np.asarray(u0), z0 + np.asarray(u1), v0, v1)


def _draw_facade(cv: _Canvas, rng: _Random, quads: Callable, depth: Callable, length: float, st: _Facade) -> None:
    """A facade `length` x `st.height` metres. `quads(u0, u1, v0, v1)` maps facade metres (u
    along, v up) to world quads; `depth(u)` is used to skip windows smaller than 1.5 pixels."""
    cv.poly(quads(0.0, length, 0.0, st.height), st.colour, BUILDING)
    cornice = st.colour * rng.uniform(0.7, 1.15)
    cv.poly(quads(0.0, length, st.height - 0.6, st.height), cornice, BUILDING)
    ground = st.floor * 1.2
    if st.bands:
        v = np.arange(ground, st.height - 1.0, st.floor)
        cv.poly(quads(0.0, length, v, v + 0.3), st.colour * rng.uniform(0.75, 1.2), BUILDING)
    cols = max(int(length / st.bay), 1)
    bay = length / cols
    u = (np.arange(cols) + 0.5) * bay
    u = u[cv.cam.f * st.window[1] / np.maximum(depth(u), _Z_MIN) > 1.5]
    v = ground + 0.9 + np.arange(max(int((st.height - ground - 1.0) / st.floor), 0)) * st.floor
    uu, vv = (a.ravel() for a in np.meshgrid(u, v))
    half = st.window[0] * bay / 2
    lit = rng.gen.random(uu.size) < 0.2
    for m, colour in ((~lit, st.glass), (lit, np.minimum(st.glass * 1.4 + 40, 255))):
        if m.any():
            windows = quads(uu[m] - half, uu[m] + half, vv[m], vv[m] + st.window[1])
            cv.poly(windows, colour, BUILDING)
    if st.shops and u.size:
        cv.poly(quads(u - bay * 0.4, u + bay * 0.4, 0.3, ground - 0.5), st.glass * 0.8, BUILDING)


def _barrier(rng: _Random, street: _Street, side: _Side) -> list[Drawable]:
    """Maybe a wall, fence or hedge in front of the buildings, or between sidewalk and lawn."""
    kind = rng.pick((0.4, 0.22, 0.22, 0.16))
    if kind == 0:
        return []
    x = side.walk[1] - 0.1 if side.grass and side.grass[0] >= side.walk[1] else side.front - 0.15
    z0 = rng.uniform(0, 25)
    z1 = min(z0 + rng.uniform(10, 80), street.z_end)
    draw = (_draw_wall, _draw_fence, _draw_hedge)[kind - 1]
    return [(x, partial(draw, x=side.sign * x, z0=z0, z1=z1))]


def _draw_wall(cv: _Canvas, rng: _Random, x: float, z0: float, z1: float) -> None:
    height = rng.uniform(0.6, 2.2)
    colour = _grey(rng, 80, 200) if rng.random() < 0.6 else _building_colour(rng)
    cv.poly(_side(x, z0, z1, 0, height), colour, WALL)
    cv.poly(_side(x, z0, z1, height - 0.12, height), colour * 1.15, WALL)
    if rng.random() < 0.5:  # courses of stone or brick
        v = np.arange(0.25, height - 0.15, rng.uniform(0.2, 0.4))
        cv.poly(_sides(x, z0, z1, v, v + 0.03), colour * 0.8, WALL)


def _draw_fence(cv: _Canvas, rng: _Random, x: float, z0: float, z1: float) -> None:
    """Bars, rails and posts. Far away the bars overlap; the even-odd fill then leaves gaps,
    in the image and the label alike."""
    height = rng.uniform(0.9, 2.0)
    if rng.random() < 0.6:
        colour = _grey(rng, 30, 190)
    else:
        colour = _jitter(rng, [(60, 90, 60), (130, 95, 60)][rng.integers(2)], 20)
    z = np.arange(z0, z1, rng.uniform(0.12, 0.3))
    cv.poly(_sides(x, z, z + 0.04, 0.05, height - 0.05), colour, FENCE)
    rails = [_side(x, z0, z1, y - 0.04, y + 0.04) for y in (0.15, height - 0.08)]
    cv.poly(rails, colour * 0.9, FENCE)
    posts = np.arange(z0, z1, 2.5)
    cv.poly(_sides(x, posts, posts + 0.1, 0, height + 0.05), colour * 0.8, FENCE)


def _draw_hedge(cv: _Canvas, rng: _Random, x: float, z0: float, z1: float) -> None:
    z = np.linspace(max(z0, _Z_MIN), z1, 60)
    top = rng.uniform(0.9, 1.8) + np.convolve(rng.normal(0, 0.25, z.size), np.ones(5) / 5, "same")
    crest = np.stack([np.full_like(z, x), top, z], -1)
    outline = np.concatenate([crest, [(x, 0.0, z1), (x, 0.0, z[0])]])
    cv.poly(outline, _green(rng) * 0.85, VEGETATION)
