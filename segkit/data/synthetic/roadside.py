"""On the sidewalks: trees, poles, signs, lights, people, bicycles, street furniture."""

from __future__ import annotations

from functools import partial

import numpy as np

from segkit.data.synthetic.canvas import (
    BICYCLE,
    LIGHT,
    MOTORCYCLE,
    PERSON,
    POLE,
    RIDER,
    SIGN,
    STATIC,
    VEGETATION,
    Drawable,
    _Camera,
    _Canvas,
    _Fig,
    _front,
    _Random,
)
from segkit.data.synthetic.colours import (
    _cloth,
    _green,
    _grey,
    _hue,
    _jitter,
    _skin,
    _vehicle_colour,
)
from segkit.data.synthetic.layout import _Side, _Street, _visible_range


def _roadside(rng: _Random, cam: _Camera, street: _Street, side: _Side) -> list[Drawable]:
    z_lo, z_hi = _visible_range(cam, street)
    lo, hi = side.curb + 0.3, max(side.walk[1] - 0.3, side.curb + 0.4)  # stay in front of barriers
    sg = side.sign
    objects: list[Drawable] = []
    if rng.random() < 0.55:  # a row of street trees, on the lawn strip if there is one
        inner_lawn = side.grass is not None and side.grass[0] == side.curb
        x = sum(side.grass) / 2 if inner_lawn else side.curb + rng.uniform(0.6, 1.2)
        for z in np.arange(rng.uniform(z_lo - 4, z_lo + 8), z_hi, rng.uniform(7, 16)):
            objects.append((z, partial(_draw_tree, x=sg * x, z=z)))
    for z in np.arange(rng.uniform(z_lo, z_lo + 15), z_hi, rng.uniform(12, 35)):
        kind = rng.pick((0.4, 0.4, 0.2))  # lamp, sign post, traffic light
        objects.append((z, partial(_draw_pole, x=sg * (side.curb + 0.4), z=z, kind=kind)))
    for _ in range(rng.poisson(rng.uniform(0.5, 5))):
        z = rng.uniform(z_lo, min(z_hi, 70))
        objects.append((z, partial(_draw_person, x=sg * rng.uniform(lo, hi), z=z)))
    for _ in range(rng.poisson(0.8)):  # parked bicycles, cyclists, street furniture
        z, x, kind = rng.uniform(z_lo, min(z_hi, 50)), sg * rng.uniform(lo, hi), rng.integers(3)
        if kind == 2:
            objects.append((z, partial(_draw_static, x=x, z=z)))
        else:
            objects.append((z, partial(_draw_ridden, x=x, z=z, flip=rng.sign(), ridden=kind == 1)))
    return objects


def _crossing(rng: _Random, street: _Street) -> list[Drawable]:
    """Pedestrians on the zebra crossing and traffic lights on both sides of it."""
    if street.crossing is None:
        return []
    z = street.crossing - 1.0
    objects = [(z, partial(_draw_pole, x=s.sign * (s.curb + 0.4), z=z, kind=2)) for s in street.sides]
    for _ in range(rng.poisson(2.0)):
        x = rng.uniform(street.lanes[0] - 1.5, street.lanes[-1] + 1.5)
        z = street.crossing + rng.uniform(0.3, 3.2)
        objects.append((z, partial(_draw_person, x=x, z=z)))
    return objects


def _draw_tree(cv: _Canvas, rng: _Random, x: float, z: float) -> None:
    """Trunk and crown are both 'vegetation' in Cityscapes."""
    fig = _Fig.at(cv.cam, x, z)
    trunk, radius, lean = rng.uniform(2.0, 4.0), rng.uniform(1.5, 3.5), rng.normal(0, 0.2)
    bark = _jitter(rng, (80, 65, 50), 25)
    cv.limb(fig, (0, 0), (lean, trunk + radius * 0.5), rng.uniform(0.2, 0.4), bark, VEGETATION)
    leaves = _green(rng)
    n = int(rng.integers(4, 7))
    for i in range(n):
        centre = (lean + rng.normal(0, 0.45) * radius, trunk + radius * (0.8 + rng.normal(0, 0.35)))
        shade = 0.7 + 0.3 * i / n  # blobs drawn first (behind) are darker: a crude self-shadow
        axes = (radius * rng.uniform(0.45, 0.8), radius * rng.uniform(0.45, 0.8))
        cv.blob(fig, centre, axes, _jitter(rng, leaves * shade, 12), VEGETATION)


def _draw_pole(cv: _Canvas, rng: _Random, x: float, z: float, kind: int) -> None:
    """kind 0: street lamp, 1: sign post, 2: traffic light (arms are 'pole' in Cityscapes)."""
    fig = _Fig.at(cv.cam, x, z, flip=-1.0 if x > 0 else 1.0)  # the figure's +x points at the road
    colour = _grey(rng, 40, 170) if rng.random() < 0.8 else _jitter(rng, (50, 75, 60), 15)
    height = (rng.uniform(6, 9), rng.uniform(2.4, 3.4), rng.uniform(3.0, 4.2))[kind]
    cv.limb(fig, (0, 0), (0, height), rng.uniform(0.1, 0.2), colour, POLE)
    if kind == 0:
        arm = rng.uniform(0.8, 2.5)
        cv.limb(fig, (0, height), (arm, height + 0.3), 0.08, colour, POLE)
        cv.blob(fig, (arm, height + 0.2), (0.35, 0.12), _grey(rng, 150, 240), POLE)
    elif kind == 1:
        for y in (height - 0.4, height - 1.2)[: 1 + (rng.random() < 0.4)]:
            _draw_sign(cv, rng, fig, y)
    else:
        _draw_light(cv, rng, fig, 0.0, height - 0.5)
        if rng.random() < 0.35:  # a second light hanging over the road
            arm = rng.uniform(2.5, 5.0)
            cv.limb(fig, (0, height), (arm, height), 0.1, colour, POLE)
            _draw_light(cv, rng, fig, arm, height - 0.55)


_SIGN_COLOURS = [((200, 30, 30), (240, 240, 240)), ((30, 80, 180), (30, 80, 180)),
                 ((240, 200, 20), (240, 200, 20)), ((240, 240, 240), (30, 30, 30))]  # fmt: skip


def _draw_sign(cv: _Canvas, rng: _Random, fig: _Fig, y: float) -> None:
    """A round, triangular or diamond sign with a border, facing the traffic."""
    size, shape = rng.uniform(0.55, 0.9), rng.integers(3)
    for scale, colour in zip((1.0, 0.7), _SIGN_COLOURS[rng.integers(4)]):
        r, colour = size / 2 * scale, _jitter(rng, colour, 15)
        if shape == 0:
            cv.blob(fig, (0, y), (r, r), colour, SIGN)
        else:
            n = 3 if shape == 1 else 4
            angles = np.pi / 2 + np.arange(n) * 2 * np.pi / n
            cv.poly(fig.w(zip(r * np.cos(angles), y + r * np.sin(angles))), colour, SIGN)


def _draw_light(cv: _Canvas, rng: _Random, fig: _Fig, x: float, y: float) -> None:
    body = _grey(rng, 15, 70) if rng.random() < 0.8 else _jitter(rng, (200, 170, 40), 20)
    cv.poly(
        fig.w([(x - 0.17, y - 0.5), (x + 0.17, y - 0.5), (x + 0.17, y + 0.5), (x - 0.17, y + 0.5)]),
        body,
        LIGHT,
    )
    on = rng.integers(3)
    for i, lit in enumerate([(255, 40, 30), (255, 190, 0), (40, 255, 130)]):
        lamp = lit if i == on else _grey(rng, 30, 60)
        cv.blob(fig, (x, y + 0.3 - 0.3 * i), (0.1, 0.1), lamp, LIGHT)


def _draw_person(cv: _Canvas, rng: _Random, x: float, z: float) -> None:
    """Seen from the front or back, or in profile while walking."""
    h, profile = rng.uniform(1.5, 1.95), rng.random() < 0.5
    fig = _Fig.at(cv.cam, x, z, flip=rng.sign())
    legs, shirt, skin = _cloth(rng), _cloth(rng), _skin(rng)
    stride = rng.uniform(0.05, 0.3) if profile else 0.08
    shoulder, hip = (0.12, 0.0) if profile else (0.21, 0.06)
    for side in (-1, 1):
        cv.limb(fig, (side * hip, 0.5 * h), (side * stride, 0.02), 0.14, legs, PERSON)
    top, waist = 0.82 * h, 0.47 * h
    torso = [(-shoulder, top), (shoulder, top), (0.8 * shoulder, waist), (-0.8 * shoulder, waist)]
    cv.poly(fig.w(torso), shirt, PERSON)
    for side in (-1, 1):
        arm = (0.0 if profile else side * shoulder, 0.8 * h)
        hand = (side * stride * 0.8 if profile else side * (shoulder + 0.05), waist)
        cv.limb(fig, arm, hand, 0.09, shirt * 0.9, PERSON)
    cv.blob(fig, (0, 0.92 * h), (0.085, 0.11), skin, PERSON)
    cv.blob(fig, (0, 0.95 * h), (0.09, 0.07), _jitter(rng, (50, 35, 25), 30), PERSON)  # hair


def _draw_ridden(
    cv: _Canvas,
    rng: _Random,
    x: float,
    z: float,
    flip: float,
    motor: bool = False,
    ridden: bool = True,
) -> None:
    """A bicycle or motorcycle seen from the side, with its rider or parked."""
    fig = _Fig.at(cv.cam, x, z, flip)
    (_draw_motorcycle if motor else _draw_bicycle)(cv, rng, fig)
    if ridden:
        _draw_rider(cv, rng, fig, seat=(-0.25, 0.95) if motor else (-0.22, 0.95), hand=(0.45, 1.05))


def _draw_bicycle(cv: _Canvas, rng: _Random, fig: _Fig) -> None:
    frame = _cloth(rng)
    rear, front, crank = (-0.52, 0.34), (0.52, 0.34), (-0.02, 0.3)
    seat, head, bar = (-0.22, 0.92), (0.4, 0.9), (0.45, 1.05)
    for hub in (rear, front):
        cv.blob(fig, hub, (0.34, 0.34), (25, 25, 25), BICYCLE, ring=0.05)
    tubes = [(rear, crank), (crank, seat), (seat, rear), (seat, head), (crank, head), (head, front)]
    for a, b in [*tubes, (head, bar)]:
        cv.limb(fig, a, b, 0.04, frame, BICYCLE)


def _draw_motorcycle(cv: _Canvas, rng: _Random, fig: _Fig) -> None:
    for hub in ((-0.7, 0.32), (0.72, 0.32)):
        cv.blob(fig, hub, (0.32, 0.32), (20, 20, 20), MOTORCYCLE)
        cv.blob(fig, hub, (0.13, 0.13), (140, 140, 145), MOTORCYCLE)
    body = [(-0.6, 0.45), (0.5, 0.45), (0.62, 0.85), (0.2, 1.0), (-0.35, 0.9), (-0.8, 0.75)]
    cv.poly(fig.w(body), _vehicle_colour(rng), MOTORCYCLE)
    cv.limb(fig, (0.72, 0.32), (0.5, 1.05), 0.06, (60, 60, 60), MOTORCYCLE)


def _draw_rider(cv: _Canvas, rng: _Random, fig: _Fig, seat, hand) -> None:
    legs, shirt = _cloth(rng), _cloth(rng)
    knee, foot = (seat[0] + 0.35, seat[1] - 0.3), (seat[0] + 0.2, 0.32)
    shoulder = (seat[0] + 0.25, seat[1] + 0.58)
    cv.limb(fig, seat, knee, 0.15, legs, RIDER)
    cv.limb(fig, knee, foot, 0.12, legs, RIDER)
    cv.limb(fig, seat, shoulder, 0.3, shirt, RIDER)
    cv.limb(fig, shoulder, hand, 0.09, shirt * 0.9, RIDER)
    head = _cloth(rng) if rng.random() < 0.5 else _skin(rng)  # helmet or bare head
    cv.blob(fig, (shoulder[0] + 0.08, shoulder[1] + 0.2), (0.11, 0.12), head, RIDER)


def _draw_static(cv: _Canvas, rng: _Random, x: float, z: float) -> None:
    """Street furniture (bins, bollards, advertising pillars): Cityscapes' void class 'static'."""
    w, h = [(0.6, 1.0), (0.2, 0.9), (1.2, 2.8)][rng.integers(3)]
    colour = _grey(rng, 30, 200) if rng.random() < 0.5 else _hue(rng, (0.3, 0.9), (60, 200))
    cv.poly(_front(x - w / 2, x + w / 2, 0, h, z), colour, STATIC)
