"""Drawing primitives of the synthetic scenes: labelIds by name, blocked random draws, the
pinhole camera, world-space rectangles, and the canvas that draws image and label in lockstep."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from segkit.labels import LABELS

_SHIFT = 4  # fractional bits of cv2 coordinates: sub-pixel geometry at small image sizes
_Z_MIN = 0.5  # metres; nearer points are clamped before projection


def _ids(*names: str) -> tuple[int, ...]:
    """labelIds by name, from the official table (a typo fails at import)."""
    by_name = {lb.name: lb.id for lb in LABELS}
    return tuple(by_name[name] for name in names)


EGO, BORDER, STATIC = _ids("ego vehicle", "rectification border", "static")  # void: ignored
ROAD, SIDEWALK, TERRAIN, SKY = _ids("road", "sidewalk", "terrain", "sky")
BUILDING, WALL, FENCE, VEGETATION = _ids("building", "wall", "fence", "vegetation")
POLE, LIGHT, SIGN = _ids("pole", "traffic light", "traffic sign")
PERSON, RIDER, BICYCLE, MOTORCYCLE = _ids("person", "rider", "bicycle", "motorcycle")
CAR, TRUCK, BUS, TRAIN = _ids("car", "truck", "bus", "train")

Colour = np.ndarray  # (3,) float RGB
Draw = Callable[["_Canvas", "_Random"], None]
Drawable = tuple[float, Draw]  # (sort key, draw)


# --------------------------------------------------------------------------------------------
# Randomness, camera, canvas
# --------------------------------------------------------------------------------------------


class _Random:
    """Scalar draws served from blocks of a numpy Generator. A scene takes thousands of scalar
    draws, and each costs microseconds when asked of numpy one by one. Deterministic for a
    given generator state; array draws go to the generator itself (`gen`)."""

    def __init__(self, gen: np.random.Generator) -> None:
        self.gen = gen
        self._uniform: list[float] = []
        self._normal: list[float] = []

    def random(self) -> float:
        if not self._uniform:
            self._uniform = self.gen.random(1024).tolist()
        return self._uniform.pop()

    def uniform(self, lo: float, hi: float, size=None):
        return lo + (hi - lo) * self.random() if size is None else self.gen.uniform(lo, hi, size)

    def normal(self, loc: float = 0.0, scale: float = 1.0, size=None):
        if size is not None:
            return self.gen.normal(loc, scale, size)
        if not self._normal:
            self._normal = self.gen.standard_normal(512).tolist()
        return loc + scale * self._normal.pop()

    def integers(self, lo: int, hi: int | None = None) -> int:
        """An int in [lo, hi), or in [0, lo) when `hi` is None."""
        lo, hi = (0, lo) if hi is None else (lo, hi)
        return lo + min(int(self.random() * (hi - lo)), hi - lo - 1)

    def pick(self, probs: Sequence[float]) -> int:
        """Index i with probability probs[i] (the probabilities sum to 1)."""
        r = self.random()
        for i, p in enumerate(probs):
            r -= p
            if r < 0:
                return i
        return len(probs) - 1

    def sign(self) -> float:
        return 1.0 if self.random() < 0.5 else -1.0

    def poisson(self, lam: float) -> int:
        return int(self.gen.poisson(lam))


@dataclass(frozen=True)
class _Camera:
    """Pinhole camera at x=0, looking along +z; the road is the plane y=0."""

    f: float  # focal length, pixels
    cx: float  # vanishing point x, pixels
    cy: float  # horizon y, pixels
    height: float  # metres above the road
    size: tuple[int, int]  # (H, W) pixels

    def px(self, pts: np.ndarray) -> np.ndarray:
        """World points (..., 3) in metres (x right, y up, z ahead) -> pixels (..., 2)."""
        z = np.maximum(pts[..., 2:], _Z_MIN)
        return (self.cx, self.cy) + self.f * (pts[..., :2] * (1.0, -1.0) + (0.0, self.height)) / z

    def visible_x(self, z: float, margin: float) -> tuple[float, float]:
        """Lateral range (metres) that projects into the image at depth `z`, widened by `margin`."""
        return -self.cx * z / self.f - margin, (self.size[1] - self.cx) * z / self.f + margin

    @property
    def z_bottom(self) -> float:
        """Depth of the road at the image's bottom edge, metres."""
        return self.f * self.height / (self.size[0] - self.cy)


# World-space rectangles, corners in drawing order. The plain versions take scalars and return
# lists (cheap); the plural versions broadcast arrays and return (..., 4, 3) arrays.
def _front(x0, x1, y0, y1, z) -> list:
    """Facing the camera at depth z."""
    return [(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)]


def _side(x, z0, z1, y0, y1) -> list:
    """On the vertical plane at lateral x (facades, vehicle sides)."""
    return [(x, y0, z0), (x, y0, z1), (x, y1, z1), (x, y1, z0)]


def _flat(x0, x1, z0, z1, y=0.0) -> list:
    """On the horizontal plane at height y (road, roofs)."""
    return [(x0, y, z0), (x1, y, z0), (x1, y, z1), (x0, y, z1)]


def _quads(axes: tuple[int, int, int], c, a0, a1, b0, b1) -> np.ndarray:
    """Rectangles (..., 4, 3): coordinate axes[0] is c, axes[1] spans a0..a1, axes[2] b0..b1."""
    k, i, j = axes
    out = np.empty(np.broadcast(c, a0, a1, b0, b1).shape + (4, 3))
    out[..., k] = np.asarray(c)[..., None]
    out[..., 0, i], out[..., 1, i], out[..., 2, i], out[..., 3, i] = a0, a1, a1, a0
    out[..., 0, j], out[..., 1, j], out[..., 2, j], out[..., 3, j] = b0, b0, b1, b1
    return out


def _fronts(x0, x1, y0, y1, z) -> np.ndarray:
    return _quads((2, 0, 1), z, x0, x1, y0, y1)


def _sides(x, z0, z1, y0, y1) -> np.ndarray:
    return _quads((0, 2, 1), x, z0, z1, y0, y1)


def _flats(x0, x1, z0, z1, y=0.0) -> np.ndarray:
    return _quads((1, 0, 2), y, x0, x1, z0, z1)


@dataclass(frozen=True)
class _Fig:
    """Frame of a small upright object facing the camera at ground point (x, z): its own
    metres (right, up) -> world points. `flip=-1` mirrors it (it faces left)."""

    x: float
    z: float
    flip: float
    pixel: float  # metres per pixel at this depth: the thinnest part still drawn

    @classmethod
    def at(cls, cam: _Camera, x: float, z: float, flip: float = 1.0) -> _Fig:
        return cls(x, z, flip, max(z, _Z_MIN) / cam.f)

    def w(self, pts) -> list:
        return [(self.x + self.flip * dx, dy, self.z) for dx, dy in pts]


class _Canvas:
    """Image and label in one (H, W, 4) array, RGB + labelId, so that one cv2 call draws both
    and they cannot drift apart. Labels are filled without anti-aliasing. Every primitive names
    its label: details painted onto a surface (windows, lane marks) name that surface's class.

    `poly`, `disc`, `limb` and `blob` queue world-space primitives; `flush` projects all queued
    points at once and draws them in order. Pixel-space drawing (`*_px`, direct array writes)
    must call `flush` first to keep the painter's order.
    """

    def __init__(self, cam: _Camera) -> None:
        self.cam = cam
        self.rgbl = np.zeros((*cam.size, 4), np.uint8)
        self._points: list[np.ndarray] = []  # queued world points, (n, 3) chunks
        self._count = 0
        self._queue: list[tuple] = []  # (start, count, shape or None, colour + label, each or disc)

    @property
    def image(self) -> np.ndarray:
        return self.rgbl[..., :3]

    @property
    def label(self) -> np.ndarray:
        return self.rgbl[..., 3]

    def poly(self, pts, colour: Colour, label: int, each: bool = False) -> None:
        """World polygons (N, 3) or (K, N, 3). One cv2 call fills K polygons by the even-odd
        rule; `each` fills them one by one, for polygons that overlap."""
        arr = np.asarray(pts, float)
        self._push(arr, arr.shape[:-1], (*_rgb(colour), label), each)

    def disc(self, centre, axes: tuple[float, float], colour: Colour, label: int, ring: float = 0.0) -> None:
        """Ellipse at a world point, semi-axes in metres at its depth; `ring` > 0: an outline
        that many metres thick (at least one pixel)."""
        self._push(np.asarray([centre], float), None, (*_rgb(colour), label), (axes, ring))

    def limb(self, fig: _Fig, a, b, width: float, colour: Colour, label: int) -> None:
        """A bar `width` metres thick (at least one pixel) between two points of a figure."""
        dx, dy = b[0] - a[0], b[1] - a[1]
        k = max(width, fig.pixel) / 2 / max(math.hypot(dx, dy), 1e-9)
        nx, ny = -dy * k, dx * k
        ax, ay, bx, by = a[0], a[1], b[0], b[1]
        quad = [(ax + nx, ay + ny), (bx + nx, by + ny), (bx - nx, by - ny), (ax - nx, ay - ny)]
        self.poly(fig.w(quad), colour, label)

    def blob(self, fig: _Fig, centre, axes, colour: Colour, label: int, ring: float = 0.0) -> None:
        self.disc(fig.w([centre])[0], axes, colour, label, ring)

    def _push(self, arr: np.ndarray, shape, value: tuple, extra) -> None:
        n = arr.size // 3
        self._queue.append((self._count, n, shape, value, extra))
        self._points.append(arr.reshape(n, 3))
        self._count += n

    def flush(self) -> None:
        if not self._queue:
            return
        pts = np.concatenate(self._points)
        fixed = _fixed(self.cam.px(pts))
        scale = (self.cam.f / np.maximum(pts[:, 2], _Z_MIN)).tolist()  # pixels per metre
        fill, rgbl, line, shift = cv2.fillPoly, self.rgbl, cv2.LINE_8, _SHIFT  # hot loop
        for start, n, shape, value, extra in self._queue:
            if shape is None:
                (ax, ay), ring = extra
                s = scale[start]
                thick = max(round(ring * s), 1) if ring > 0 else -1
                self.disc_px(fixed[start], (ax * s, ay * s), value, thick, shifted=True)
            elif len(shape) == 1:
                fill(rgbl, [fixed[start : start + n]], value, line, shift)
            else:
                polys = list(fixed[start : start + n].reshape(*shape, 2))
                self.poly_px(polys, value, extra, shifted=True)
        self._points, self._count, self._queue = [], 0, []

    def poly_px(self, polys, value: tuple, each: bool = False, shifted: bool = False) -> None:
        """Fill pixel polygons (a list of (N, 2)) with (R, G, B, labelId); `shifted`: the
        coordinates are already cv2 fixed point."""
        polys = polys if shifted else [_fixed(np.asarray(p, float)) for p in polys]
        for group in ([p] for p in polys) if each else [polys]:
            cv2.fillPoly(self.rgbl, group, value, cv2.LINE_8, _SHIFT)

    def disc_px(self, centre, axes, value: tuple, thick: int = -1, shifted: bool = False) -> None:
        """Ellipse in pixels (centre already fixed point when `shifted`), semi-axes >= 0.5 px."""
        one = 1 << _SHIFT
        k = 1 if shifted else one
        c = (int(centre[0] * k), int(centre[1] * k))
        a = (int(max(axes[0], 0.5) * one), int(max(axes[1], 0.5) * one))
        cv2.ellipse(self.rgbl, c, a, 0, 0, 360, value, thick, cv2.LINE_8, _SHIFT)


def _fixed(px: np.ndarray) -> np.ndarray:
    """Float pixels -> int32 fixed point for cv2's `shift`; clipped far outside any image."""
    return np.rint(np.clip(px, -1e7, 1e7) * (1 << _SHIFT)).astype(np.int32)


def _rgb(colour) -> tuple[float, float, float]:
    return float(colour[0]), float(colour[1]), float(colour[2])
