"""Traffic: cars, trucks, buses, trams, motorcycles and bicycles in the lanes, parked cars."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np

from segkit.data.synthetic.canvas import (
    BUS,
    CAR,
    ROAD,
    TRAIN,
    TRUCK,
    Colour,
    Draw,
    Drawable,
    _Camera,
    _Canvas,
    _Fig,
    _flat,
    _front,
    _Random,
    _side,
    _sides,
)
from segkit.data.synthetic.colours import _glass, _grey, _vehicle_colour
from segkit.data.synthetic.layout import _Street, _visible_range
from segkit.data.synthetic.roadside import _draw_ridden

# kind: (probability, width, length, height ranges in metres)
_VEHICLES = {
    "car": (0.72, (1.65, 1.95), (3.8, 4.9), (1.35, 1.75)),
    "truck": (0.1, (2.3, 2.55), (6.0, 10.0), (2.8, 3.8)),
    "bus": (0.08, (2.45, 2.55), (10.0, 13.0), (2.9, 3.3)),
    "motorcycle": (0.07, (0.8, 0.8), (2.0, 2.2), (1.7, 1.7)),
    "bicycle": (0.03, (0.6, 0.6), (1.8, 1.8), (1.7, 1.7)),
}


_VEHICLE_KINDS = tuple(_VEHICLES)
_VEHICLE_ODDS = tuple(v[0] for v in _VEHICLES.values())


def _traffic(rng: _Random, cam: _Camera, street: _Street) -> list[Drawable]:
    """Vehicles in the lanes, a tram on the tram lane, and cars parked along the curbs."""
    z_lo, z_hi = _visible_range(cam, street)
    objects: list[Drawable] = []
    own = int(np.argmin(np.abs(street.lanes)))
    for i, x in enumerate(street.lanes):
        outer = {0: street.sides[0], len(street.lanes) - 1: street.sides[1]}.get(i)
        if outer is not None and outer.parked:
            continue  # the parking lane
        if i == street.tram_lane and rng.random() < 0.6:
            z = rng.uniform(max(z_lo, 8.0), 60.0)
            objects.append((z, partial(_draw_tram, x=x, z0=z, oncoming=street.oncoming[i])))
            continue
        density, lane_w = rng.uniform(0.2, 0.8), street.lanes[1] - street.lanes[0]
        z = rng.uniform(z_lo, z_lo + 12) + (8.0 if i == own else 0.0)
        while z < z_hi:
            kind = _VEHICLE_KINDS[rng.pick(_VEHICLE_ODDS)]
            dims = tuple(rng.uniform(*r) for r in _VEHICLES[kind][1:])
            if rng.random() < density:
                slack = max(lane_w / 2 - dims[0] / 2 - 0.1, 0.0)  # stay inside the lane
                draw = _vehicle(rng, kind, x + rng.uniform(-slack, slack), z, dims, street.oncoming[i])
                objects.append((z, draw))
            z += dims[1] + rng.uniform(4, 30)
    return objects + _parked(rng, street, z_lo, z_hi)


def _vehicle(rng: _Random, kind: str, x: float, z: float, dims: tuple, oncoming: bool) -> Draw:
    if kind in ("motorcycle", "bicycle"):
        return partial(_draw_ridden, x=x, z=z + 1.0, flip=rng.sign(), motor=kind == "motorcycle")
    draw = {"car": _draw_car, "truck": _draw_truck, "bus": _draw_bus}[kind]
    return partial(draw, x=x, z0=z, dims=dims, colour=_vehicle_colour(rng), oncoming=oncoming)


def _parked(rng: _Random, street: _Street, z_lo: float, z_hi: float) -> list[Drawable]:
    objects: list[Drawable] = []
    for side in (s for s in street.sides if s.parked):
        z = rng.uniform(z_lo - 3, z_lo + 5)
        while z < z_hi:
            dims = tuple(rng.uniform(*r) for r in _VEHICLES["car"][1:])
            if rng.random() < 0.75:
                x = side.sign * (side.curb - 0.25 - dims[0] / 2)
                colour = _vehicle_colour(rng)
                car = partial(_draw_car, x=x, z0=z, dims=dims, colour=colour, oncoming=False)
                objects.append((z, car))
            z += dims[1] + rng.uniform(0.8, 3.0)
    return objects


def _box(
    cv: _Canvas,
    x0: float,
    x1: float,
    y0: float,
    y1: float,
    z0: float,
    z1: float,
    colour: Colour,
    label: int,
) -> None:
    """The visible faces of an axis-aligned box, shaded so that its form reads."""
    if y1 < cv.cam.height:
        cv.poly(_flat(x0, x1, z0, z1, y1), np.minimum(colour * 1.12, 255), label)
    if x0 > 0 or x1 < 0:
        cv.poly(_side(x0 if x0 > 0 else x1, z0, z1, y0, y1), colour * 0.8, label)
    cv.poly(_front(x0, x1, y0, y1, z0), colour, label)


def _draw_under(cv: _Canvas, x0: float, x1: float, z0: float, z1: float, wheel: float, label: int) -> None:
    """Shadow on the road (vehicles keep within their lane), and the near tyres below the body."""
    cv.poly(_flat(x0 - 0.05, x1 + 0.05, z0 - 0.2, z1), (22, 22, 24), ROAD)
    tyres = [_front(x0 + 0.05, x0 + 0.3, 0, 0.5, wheel), _front(x1 - 0.3, x1 - 0.05, 0, 0.5, wheel)]
    cv.poly(tyres, (18, 18, 20), label)


def _draw_wheels(cv: _Canvas, x0: float, x1: float, wheels: Sequence[float], r: float, label: int) -> None:
    """Wheels on the side of a vehicle that faces the camera, foreshortened."""
    if x0 > 0 or x1 < 0:
        x = x0 if x0 > 0 else x1
        for z in wheels:
            half = abs(x) * r * z / max(z * z - r * r, 1e-6)  # half width, metres at depth z
            cv.disc((x, r, z), (half, r), (20, 20, 22), label)
            cv.disc((x, r, z), (half * 0.5, r * 0.5), (110, 110, 115), label)


def _draw_lamps(cv: _Canvas, x0: float, x1: float, y0: float, y1: float, z: float, oncoming: bool, label: int) -> None:
    """Head or tail lights and the number plate, on the face towards the camera."""
    lamp = (235, 230, 200) if oncoming else (200, 25, 20)
    cv.poly(
        [_front(x0 + 0.06, x0 + 0.34, y0, y1, z), _front(x1 - 0.34, x1 - 0.06, y0, y1, z)],
        lamp,
        label,
    )
    xm = (x0 + x1) / 2
    cv.poly(_front(xm - 0.26, xm + 0.26, 0.36, 0.47, z), (225, 225, 215), label)


def _draw_car(cv: _Canvas, rng: _Random, x: float, z0: float, dims, colour: Colour, oncoming: bool) -> None:
    w, l, h = dims
    x0, x1, z1 = x - w / 2, x + w / 2, z0 + l
    belt = h * rng.uniform(0.5, 0.6)
    wheels = (z0 + 0.17 * l, z1 - 0.17 * l)
    _draw_under(cv, x0, x1, z0, z1, wheels[0], CAR)
    _box(cv, x0, x1, 0.3, belt, z0, z1, colour, CAR)
    _draw_wheels(cv, x0, x1, wheels, 0.32, CAR)
    # Cabin: slanted window towards the camera, sides, roof (a convex solid: any order works).
    near, far = (0.3, 0.72) if oncoming else (0.16, 0.82)
    za, zb, zc, zd = z0 + near * l, z0 + (near + 0.13) * l, z0 + (far - 0.13) * l, z0 + far * l
    xa, xb, xa2, xb2 = x0 + 0.1, x1 - 0.1, x0 + 0.22, x1 - 0.22
    glass = _glass(rng) * 0.8
    if xa > 0 or xb < 0:
        xs, xt = (xa, xa2) if xa > 0 else (xb, xb2)
        cv.poly([(xs, belt, za), (xs, belt, zd), (xt, h, zc), (xt, h, zb)], colour * 0.8, CAR)
        g0, g1 = belt + 0.06, h - 0.06
        window = [(xs, g0, za + 0.2), (xs, g0, zd - 0.2), (xt, g1, zc - 0.1), (xt, g1, zb + 0.1)]
        cv.poly(window, glass, CAR)
    if h < cv.cam.height:
        cv.poly(_flat(xa2, xb2, zb, zc, h), np.minimum(colour * 1.1, 255), CAR)
    cv.poly([(xa, belt, za), (xb, belt, za), (xb2, h, zb), (xa2, h, zb)], colour, CAR)
    g0, g1 = belt + 0.04, h - 0.05
    window = [(xa + 0.06, g0, za), (xb - 0.06, g0, za), (xb2 - 0.06, g1, zb), (xa2 + 0.06, g1, zb)]
    cv.poly(window, glass, CAR)
    _draw_lamps(cv, x0, x1, belt - 0.2, belt - 0.06, z0, oncoming, CAR)


def _draw_truck(cv: _Canvas, rng: _Random, x: float, z0: float, dims, colour: Colour, oncoming: bool) -> None:
    w, l, h = dims
    x0, x1, z1 = x - w / 2, x + w / 2, z0 + l
    cab = (z0, z0 + 2.2) if oncoming else (z1 - 2.2, z1)
    cargo = (z0 + 2.4, z1) if oncoming else (z0, z1 - 2.4)
    _draw_under(cv, x0, x1, z0, z1, z0 + 1.0, TRUCK)
    cab_colour = colour if rng.random() < 0.5 else _vehicle_colour(rng)
    parts = [(cab, 2.9, cab_colour), (cargo, h, _grey(rng, 120, 240, 15))]
    for (za, zb), top, paint in sorted(parts, key=lambda p: -p[0][0]):  # far part first
        _box(cv, x0, x1, 0.5, top, za, zb, paint, TRUCK)
    if oncoming:
        cv.poly(_front(x0 + 0.15, x1 - 0.15, 1.8, 2.7, z0), _glass(rng), TRUCK)
    _draw_wheels(cv, x0, x1, (z0 + 1.0, z1 - 1.2), 0.5, TRUCK)
    _draw_lamps(cv, x0, x1, 0.6, 0.8, z0, oncoming, TRUCK)


def _draw_bus(cv: _Canvas, rng: _Random, x: float, z0: float, dims, colour: Colour, oncoming: bool) -> None:
    w, l, h = dims
    x0, x1, z1 = x - w / 2, x + w / 2, z0 + l
    wheels = (z0 + 2.5, z1 - 2.8) if oncoming else (z0 + 2.8, z1 - 2.5)
    _draw_under(cv, x0, x1, z0, z1, wheels[0], BUS)
    _box(cv, x0, x1, 0.35, h, z0, z1, colour, BUS)
    glass = _glass(rng)
    if x0 > 0 or x1 < 0:
        cv.poly(_side(x0 if x0 > 0 else x1, z0 + 0.4, z1 - 0.4, 1.3, h - 0.35), glass * 0.9, BUS)
    cv.poly(_front(x0 + 0.12, x1 - 0.12, 0.9 if oncoming else 1.6, h - 0.4, z0), glass, BUS)
    if oncoming:  # destination display
        cv.poly(_front(x0 + 0.3, x1 - 0.3, h - 0.35, h - 0.1, z0), (250, 160, 30), BUS)
    _draw_wheels(cv, x0, x1, wheels, 0.5, BUS)
    _draw_lamps(cv, x0, x1, 0.55, 0.85, z0, oncoming, BUS)


def _draw_tram(cv: _Canvas, rng: _Random, x: float, z0: float, oncoming: bool) -> None:
    """Cityscapes' 'train' class is mostly trams."""
    w, l, h = rng.uniform(2.3, 2.65), rng.uniform(18, 32), rng.uniform(3.2, 3.6)
    x0, x1, z1 = x - w / 2, x + w / 2, z0 + l
    colour = _vehicle_colour(rng)
    _draw_under(cv, x0, x1, z0, z1, z0 + 2.0, TRAIN)
    for zp in (z1 - 4.0, z0 + 4.0):  # pantographs
        fig = _Fig.at(cv.cam, x, zp)
        cv.limb(fig, (-0.5, h), (0.3, h + 1.2), 0.05, (40, 40, 40), TRAIN)
        cv.limb(fig, (0.3, h + 1.2), (-0.6, h + 1.5), 0.05, (40, 40, 40), TRAIN)
    _box(cv, x0, x1, 0.45, h, z0, z1, colour, TRAIN)
    glass = _glass(rng)
    if x0 > 0 or x1 < 0:
        xs = x0 if x0 > 0 else x1
        cv.poly(_side(xs, z0 + 1.0, z1 - 1.0, 1.4, h - 0.5), glass * 0.9, TRAIN)
        doors = np.arange(z0 + 3.0, z1 - 2.0, 6.5)
        cv.poly(_sides(xs, doors, doors + 1.3, 0.5, h - 0.4), colour * 0.6, TRAIN, each=True)
    cv.poly(_front(x0 + 0.2, x1 - 0.2, 1.3, h - 0.4, z0), glass, TRAIN)
    _draw_lamps(cv, x0, x1, 0.7, 0.9, z0, oncoming, TRAIN)
