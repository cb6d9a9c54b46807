"""The random street: camera placement, lanes, sidewalks, lawns and building lines, in metres."""

from __future__ import annotations

from dataclasses import dataclass

from segkit.data.synthetic.canvas import _Camera, _Random


@dataclass(frozen=True)
class _Side:
    """One side of the street; distances are |x| from the camera in metres."""

    sign: int  # -1 left of the camera, +1 right
    curb: float  # road edge
    walk: tuple[float, float]  # sidewalk
    grass: tuple[float, float] | None  # terrain strip (between road and sidewalk, or behind it)
    front: float  # building line
    parked: bool  # cars parked along the curb (that lane has no moving traffic)


@dataclass(frozen=True)
class _Street:
    lanes: tuple[float, ...]  # x of each lane centre, left to right, metres
    oncoming: tuple[bool, ...]  # per lane: traffic comes towards the camera
    sides: tuple[_Side, _Side]  # left, right
    z_end: float  # metres to the end of the street
    closed: bool  # a row of buildings across the end of the street
    crossing: float | None  # z of a zebra crossing
    tram_lane: int | None  # lane with rails (and maybe a tram)
    sun: int  # -1/+1: that side's facades are in shade and shade the road; 0: overcast
    shadow: float  # brightness factor in shade


def _sample_camera(rng: _Random, height: int, width: int) -> _Camera:
    return _Camera(
        f=width * rng.uniform(0.85, 1.2),
        cx=width * rng.uniform(0.38, 0.62),
        cy=height * rng.uniform(0.36, 0.52),
        height=rng.uniform(1.25, 1.8),
        size=(height, width),
    )


def _sample_street(rng: _Random) -> _Street:
    n, lane_w = int(rng.integers(2, 5)), rng.uniform(2.8, 3.6)
    own = int(rng.integers(0, n))  # the camera's lane
    left = -(own + 0.5) * lane_w + rng.uniform(-0.4, 0.4)
    split = int(rng.integers(1, own + 1)) if own > 0 and rng.random() < 0.7 else 0
    closed = rng.random() < 0.6
    return _Street(
        lanes=tuple(left + (i + 0.5) * lane_w for i in range(n)),
        oncoming=tuple(i < split for i in range(n)),
        # No parked cars in the camera's own lane.
        sides=(
            _sample_side(rng, -1, -left, own > 0),
            _sample_side(rng, 1, left + n * lane_w, own < n - 1),
        ),
        z_end=rng.uniform(60, 220) if closed else rng.uniform(150, 400),
        closed=closed,
        crossing=rng.uniform(12, 40) if rng.random() < 0.35 else None,
        tram_lane=int(rng.integers(0, n)) if rng.random() < 0.15 else None,
        sun=rng.integers(-1, 2),
        shadow=rng.uniform(0.45, 0.75),
    )


def _sample_side(rng: _Random, sign: int, curb: float, parking: bool) -> _Side:
    walk_w = rng.uniform(1.5, 5.0)
    grass_w = rng.uniform(1.0, 4.0) if rng.random() < 0.45 else 0.0
    if grass_w and rng.random() < 0.5:  # a lawn strip between road and sidewalk
        grass, walk = (curb, curb + grass_w), (curb + grass_w, curb + grass_w + walk_w)
    else:
        walk = (curb, curb + walk_w)
        grass = (walk[1], walk[1] + grass_w) if grass_w else None
    return _Side(sign, curb, walk, grass, curb + walk_w + grass_w, parked=parking and rng.random() < 0.45)


def _visible_range(cam: _Camera, street: _Street) -> tuple[float, float]:
    """Depths at which objects are placed: from just below the image bottom to the street end."""
    return max(0.7 * cam.z_bottom, 3.0), min(street.z_end - 3.0, 150.0)
