"""One synthetic street scene: `render_scene` draws the backdrop (sky, street end, ground), the
planes along the street, traffic and roadside objects far to near, the ego vehicle, then texture."""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np

from segkit.checks import check_image_size
from segkit.data.synthetic.canvas import (
    _SHIFT,
    _Z_MIN,
    EGO,
    ROAD,
    SIDEWALK,
    SKY,
    TERRAIN,
    VEGETATION,
    Colour,
    _Canvas,
    _Fig,
    _fixed,
    _flat,
    _flats,
    _fronts,
    _Random,
    _rgb,
)
from segkit.data.synthetic.colours import (
    _green,
    _grey,
    _jitter,
    _terrain_colour,
    _vehicle_colour,
    _walk_colour,
)
from segkit.data.synthetic.layout import _sample_camera, _sample_street, _Street
from segkit.data.synthetic.planes import _draw_facade, _sample_facade, _side_planes
from segkit.data.synthetic.roadside import _crossing, _roadside
from segkit.data.synthetic.texture import _finish
from segkit.data.synthetic.traffic import _traffic


def render_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one random street scene.

    Args:
        rng: The only source of randomness; the same generator state gives the same scene.
        height: Image height in pixels (>= 16).
        width: Image width in pixels (>= 16); the scene's geometry scales with it.

    Returns:
        (image, label): RGB image (H, W, 3) uint8 and Cityscapes labelIds (H, W) uint8.
    """
    check_image_size((height, width))
    rng = _Random(rng)
    cam = _sample_camera(rng, height, width)
    street = _sample_street(rng)
    planes = [p for side in street.sides for p in _side_planes(rng, cam, street, side)]
    objects = _traffic(rng, cam, street) + _crossing(rng, street)
    objects += [o for side in street.sides for o in _roadside(rng, cam, street, side)]
    cv = _Canvas(cam)
    _draw_sky(cv, rng)
    _draw_street_end(cv, rng, street)
    _draw_ground(cv, rng, street)
    # Planes along the street first, the one farther from the road first: a nearer plane hides
    # it. Then compact objects, farthest first. Objects stand nearer to the road than planes.
    for _, draw in sorted(planes, key=lambda p: -p[0]) + sorted(objects, key=lambda o: -o[0]):
        draw(cv, rng)
    _draw_hood(cv, rng)
    return _finish(cv, rng)


# --------------------------------------------------------------------------------------------
# Sky, street end, ground
# --------------------------------------------------------------------------------------------


def _draw_sky(cv: _Canvas, rng: _Random) -> None:
    kind = rng.pick((0.55, 0.35, 0.1))
    if kind == 0:  # clear blue, paler at the horizon
        top = np.array([rng.uniform(50, 120), rng.uniform(100, 170), rng.uniform(180, 245)])
        bottom = _jitter(rng, (200, 215, 235), 20)
    elif kind == 1:  # overcast
        top = _grey(rng, 140, 215, 10)
        bottom = np.minimum(top + rng.uniform(10, 40), 255)
    else:  # evening
        top, bottom = _jitter(rng, (90, 110, 160), 25), _jitter(rng, (235, 170, 120), 20)
    t = np.clip(np.arange(cv.cam.size[0]) / max(cv.cam.cy, 1.0), 0, 1)[:, None]
    cv.rgbl[..., :3] = np.clip(top * (1 - t) + bottom * t, 0, 255).astype(np.uint8)[:, None, :]
    cv.rgbl[..., 3] = SKY
    w = cv.cam.size[1]
    for _ in range(rng.poisson(2.5)):  # clouds: clusters of pale ellipses
        centre = np.array([rng.uniform(0, w), rng.uniform(0, cv.cam.cy * 0.8)])
        size = w * rng.uniform(0.03, 0.1)
        colour = top + (rng.uniform(225, 255) - top) * rng.uniform(0.4, 0.9)
        for _ in range(rng.integers(3, 7)):
            offset = (rng.normal(0, 1.2 * size), rng.normal(0, 0.3 * size))
            axes = size * np.array([rng.uniform(0.56, 1.4), rng.uniform(0.24, 0.6)])
            cv.disc_px(centre + offset, axes, (*_rgb(_jitter(rng, colour, 8)), SKY))


def _draw_street_end(cv: _Canvas, rng: _Random, street: _Street) -> None:
    """A row of buildings across the street's end, or distant trees along an open horizon."""
    z = street.z_end if street.closed else street.z_end * 3
    x, x_max = cv.cam.visible_x(z, margin=10.0)
    while x < x_max:
        width = rng.uniform(8, 25) if street.closed else rng.uniform(5, 25)
        if street.closed:
            quads = partial(_cross_facade_quads, x, z)
            _draw_facade(cv, rng, quads, lambda u: np.full_like(u, z), width, _sample_facade(rng))
        else:
            axes = (width * 0.7, rng.uniform(4, 14))
            cv.blob(_Fig.at(cv.cam, x, z), (width / 2, 0), axes, _green(rng) * 0.8, VEGETATION)
        x += width


def _cross_facade_quads(x0: float, z: float, u0, u1, v0, v1) -> np.ndarray:
    return _fronts(x0 + np.asarray(u0), x0 + np.asarray(u1), v0, v1, z)


def _draw_ground(cv: _Canvas, rng: _Random, street: _Street) -> None:
    """Land beyond the buildings, road, sidewalks, lawns, kerbs, paving joints, road marks."""
    z_far = street.z_end if street.closed else 5000.0
    if rng.random() < 0.5:  # what lies behind the buildings, seen through gaps
        cv.poly(_flat(-1e4, 1e4, _Z_MIN, z_far), _terrain_colour(rng), TERRAIN)
    else:
        cv.poly(_flat(-1e4, 1e4, _Z_MIN, z_far), _walk_colour(rng), SIDEWALK)
    road = _grey(rng, 45, 135, 6) if rng.random() < 0.85 else _jitter(rng, (120, 105, 95), 20)
    cv.poly(_flat(-street.sides[0].curb, street.sides[1].curb, _Z_MIN, z_far), road, ROAD)
    walk, grass = _walk_colour(rng), _terrain_colour(rng)
    for side in street.sides:
        sg = side.sign
        cv.poly(_flat(sg * side.walk[0], sg * side.walk[1], _Z_MIN, z_far), walk, SIDEWALK)
        if side.grass:
            cv.poly(_flat(sg * side.grass[0], sg * side.grass[1], _Z_MIN, z_far), grass, TERRAIN)
        kerb = _flat(sg * side.walk[0], sg * (side.walk[0] + 0.2), _Z_MIN, z_far)
        cv.poly(kerb, np.minimum(walk * 1.2 + 15, 255), SIDEWALK)
        z = np.arange(rng.uniform(1, 2), min(z_far, 60.0), rng.uniform(0.8, 2.5))  # paving joints
        joints = _flats(sg * side.walk[0], sg * side.walk[1], z, z + 0.05)
        cv.poly(joints, walk * rng.uniform(0.7, 0.9), SIDEWALK)
    _draw_road_marks(cv, rng, street, road, min(z_far, 250.0))
    cv.flush()
    _shade_ground(cv, rng, street, z_far)


def _draw_road_marks(cv: _Canvas, rng: _Random, street: _Street, road: Colour, z_far: float) -> None:
    """Lane lines converging to the vanishing point, rails, zebra crossing, patches (all road)."""
    paint = _jitter(rng, (225, 225, 215), 25) * rng.uniform(0.75, 1.0)
    period, dash = rng.uniform(8, 13), rng.uniform(2.5, 4.5)
    for i in range(len(street.lanes) - 1):
        x = (street.lanes[i] + street.lanes[i + 1]) / 2
        if street.oncoming[i] != street.oncoming[i + 1]:  # double line between directions
            lines = [_flat(x + a, x + a + 0.12, _Z_MIN, z_far) for a in (-0.2, 0.08)]
            cv.poly(lines, paint, ROAD)
        else:
            z = np.arange(rng.uniform(0, period), z_far, period)
            cv.poly(_flats(x - 0.07, x + 0.07, z, z + dash), paint, ROAD)
    left, right = -street.sides[0].curb, street.sides[1].curb
    for _ in range(rng.poisson(2)):  # repaired patches of asphalt
        w, z = rng.uniform(0.5, 3), rng.uniform(5, 60)
        x = rng.uniform(left, right - w)
        cv.poly(_flat(x, x + w, z, z + rng.uniform(1, 8)), road * rng.uniform(0.7, 1.2), ROAD)
    if street.tram_lane is not None:
        x = street.lanes[street.tram_lane]
        rails = [_flat(r - 0.04, r + 0.04, _Z_MIN, z_far) for r in (x - 0.72, x + 0.72)]
        cv.poly(rails, _grey(rng, 120, 180), ROAD)
    if street.crossing is not None:
        x = np.arange(left + 0.3, right - 0.8, 1.0)
        cv.poly(_flats(x, x + 0.5, street.crossing, street.crossing + 3.5), paint, ROAD)


def _shade_ground(cv: _Canvas, rng: _Random, street: _Street, z_far: float) -> None:
    """Buildings on the sun's side shade part of the ground (before anything stands on it)."""
    if street.sun == 0:
        return
    side = street.sides[0 if street.sun < 0 else 1]
    inner = max(side.front - rng.uniform(3, 14), 0.0)
    mask = np.zeros(cv.cam.size, np.uint8)
    quad = _fixed(cv.cam.px(np.array(_flat(side.sign * inner, side.sign * 1e4, _Z_MIN, z_far))))
    cv2.fillPoly(mask, [quad], 1, cv2.LINE_8, _SHIFT)
    lut = np.arange(256)[:, None] * np.array([street.shadow] * 3 + [1.0])  # the label stays
    cv2.copyTo(cv2.LUT(cv.rgbl, lut.astype(np.uint8)[None]), mask, cv.rgbl)


# --------------------------------------------------------------------------------------------
# Ego vehicle
# --------------------------------------------------------------------------------------------


def _draw_hood(cv: _Canvas, rng: _Random) -> None:
    """The bonnet of the car carrying the camera: Cityscapes' void class 'ego vehicle'."""
    cv.flush()
    if rng.random() < 0.3:
        return
    h, w = cv.cam.size
    depth, centre = h * rng.uniform(0.05, 0.14), w * rng.uniform(0.4, 0.6)
    x = np.linspace(-1, w + 1, 33)
    y = h - depth * np.clip(1 - ((x - centre) / (w * 0.75)) ** 2, 0, 1)
    colour = _vehicle_colour(rng) * 0.6
    bonnet = np.concatenate([np.stack([x, y], -1), [[w + 1, h + 1], [-1, h + 1]]])
    cv.poly_px([bonnet], (*_rgb(colour), EGO))
    glare = np.stack([x, y + depth * 0.25], -1)[8:25]  # the sky reflected in the paint
    cv.poly_px([np.concatenate([glare, glare[::-1] + (0, depth * 0.15)])], (*_rgb(colour + 60), EGO))
