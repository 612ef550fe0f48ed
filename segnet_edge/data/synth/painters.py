"""The thing classes: cars, people, poles and trees painted far to near with their instance ids."""

from __future__ import annotations

import cv2
import numpy as np

from segnet_edge.data.synth.config import _F32
from segnet_edge.data.synth.geometry import _Camera

_CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 20, endpoint=False)),
                    np.sin(np.linspace(0, 2 * np.pi, 20, endpoint=False))], axis=1)


class _Painter:
    """Paints polygons into the image and the instance map together, tracking each thing's bbox."""

    def __init__(self, image: np.ndarray, instances: np.ndarray) -> None:
        self.image = image
        self.instances = instances
        self.h, self.w = instances.shape
        self.current = 0
        self.box = [self.w, self.h, 0, 0]

    def begin(self, instance: int) -> None:
        self.current = instance
        self.box = [self.w, self.h, 0, 0]

    def drawn(self) -> int:
        x0, y0, x1, y1 = self.box
        if x1 <= x0 or y1 <= y0:
            return 0
        return int(np.count_nonzero(self.instances[y0:y1, x0:x1] == self.current))

    def poly(self, xs, ys, colour) -> None:
        xs = np.asarray(xs, np.float64)
        ys = np.asarray(ys, np.float64)
        x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
        if x1 < -1 or y1 < -1 or x0 > self.w + 1 or y0 > self.h + 1:
            return
        if x0 < -4 * self.w or x1 > 5 * self.w or y0 < -4 * self.h or y1 > 5 * self.h:
            xs = np.clip(xs, -4 * self.w, 5 * self.w)
            ys = np.clip(ys, -4 * self.h, 5 * self.h)
        pts = np.empty((len(xs), 2), np.int32)
        pts[:, 0] = np.rint(xs * 4)
        pts[:, 1] = np.rint(ys * 4)
        cv2.fillPoly(self.image, [pts], (float(colour[0]), float(colour[1]), float(colour[2])), cv2.LINE_8, 2)
        cv2.fillPoly(self.instances, [pts], (self.current,), cv2.LINE_8, 2)
        b = self.box
        b[0] = min(b[0], max(0, int(x0) - 1))
        b[1] = min(b[1], max(0, int(y0) - 1))
        b[2] = max(b[2], min(self.w, int(x1) + 2))
        b[3] = max(b[3], min(self.h, int(y1) + 2))

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, colour) -> None:
        self.poly(cx + rx * _CIRCLE[:, 0], cy + ry * _CIRCLE[:, 1], colour)

    def rect(self, x0: float, y0: float, x1: float, y1: float, colour) -> None:
        self.poly([x0, x1, x1, x0], [y0, y0, y1, y1], colour)


def _face(cam: _Camera, pts3d: list[tuple[float, float, float]]):
    a = np.asarray(pts3d, dtype=np.float64)
    return cam.project(a[:, 0], a[:, 1], a[:, 2])


def _draw_car(p: _Painter, cam: _Camera, t: dict) -> None:
    x0, x1, z0, z1, hgt = t["x0"], t["x1"], t["z"], t["z"] + t["length"], t["height"]
    body, glass = t["colour"], t["glass"]
    length, width = z1 - z0, x1 - x0
    style = t["style"]
    belt, bottom = (0.5 if style == "van" else 0.58) * hgt, 0.14 * hgt
    if style == "van":
        c0, c1 = z0 + 0.03 * length, z1 - 0.2 * length
    elif style == "hatch":
        c0, c1 = z0 + 0.06 * length, z1 - 0.35 * length
    else:
        c0, c1 = z0 + 0.24 * length, z1 - 0.33 * length
    if t["front"]:  # we see the bonnet end: mirror the cabin along the car
        c0, c1 = z0 + (z1 - c1), z0 + (z1 - c0)
    inset = 0.08 * width
    r = t["wheel"]
    if cam.f * hgt / z0 < 7:  # a few pixels tall: the silhouette is all that shows
        _draw_car_silhouette(p, cam, x0, x1, z0, z1, hgt, belt, c0, c1, inset, body)
        return
    dark = np.full(3, 0.05, _F32) * (1 + t["dirt"])
    side_x = x1 if x1 < -0.05 else (x0 if x0 > 0.05 else None)

    # under-body and the wheels seen below the bumper
    xs, ys = _face(cam, [(x0 + 0.05, 0, z0 + 0.15 * length), (x1 - 0.05, 0, z0 + 0.15 * length),
                         (x1 - 0.05, bottom + 0.02, z0 + 0.15 * length), (x0 + 0.05, bottom + 0.02, z0 + 0.15 * length)])
    p.poly(xs, ys, dark)
    # bonnet / boot / roofline top face
    xs, ys = _face(cam, [(x0, belt, z0), (x1, belt, z0), (x1, belt, z1), (x0, belt, z1)])
    p.poly(xs, ys, body * 1.12)
    if side_x is not None:
        xs, ys = _face(cam, [(side_x, bottom, z0), (side_x, bottom, z1), (side_x, belt, z1), (side_x, belt, z0)])
        p.poly(xs, ys, body * 0.82)
        sign = 1 if side_x == x0 else -1
        for wz in (z0 + 0.18 * length, z1 - 0.18 * length):
            pts = [(side_x, r + r * c, wz + r * s) for c, s in _CIRCLE]
            xs, ys = _face(cam, pts)
            p.poly(xs, ys, dark)
            pts = [(side_x, r + 0.5 * r * c, wz + 0.5 * r * s) for c, s in _CIRCLE]
            xs, ys = _face(cam, pts)
            p.poly(xs, ys, t["hub"])
        # cabin side with its windows
        sx_top = side_x + sign * inset
        xs, ys = _face(cam, [(side_x, belt, c0), (side_x, belt, c1), (sx_top, hgt, c1 - 0.12 * length),
                             (sx_top, hgt, c0 + 0.08 * length)])
        p.poly(xs, ys, body * 0.82)
        cx, cy = xs.mean(), ys.mean()
        p.poly(cx + 0.8 * (xs - cx), cy + 0.78 * (ys - cy), glass)
        mid = 0.5 * (c0 + c1)
        xs, ys = _face(cam, [(side_x, belt, mid - 0.04), (side_x, belt, mid + 0.04),
                             (sx_top, hgt, mid + 0.04), (sx_top, hgt, mid - 0.04)])
        p.poly(xs, ys, body * 0.7)
    if hgt < 0.97:  # roof seen from above
        xs, ys = _face(cam, [(x0 + inset, hgt, c0 + 0.08 * length), (x1 - inset, hgt, c0 + 0.08 * length),
                             (x1 - inset, hgt, c1 - 0.12 * length), (x0 + inset, hgt, c1 - 0.12 * length)])
        p.poly(xs, ys, body * 1.18)
    # cabin end with the rear / front screen
    zc = c0 + 0.08 * length
    xs, ys = _face(cam, [(x0 + 0.02, belt, c0), (x1 - 0.02, belt, c0), (x1 - inset, hgt, zc), (x0 + inset, hgt, zc)])
    p.poly(xs, ys, body * 0.95)
    cx, cy = xs.mean(), ys.mean()
    p.poly(cx + 0.85 * (xs - cx), cy + 0.75 * (ys - cy), glass)
    # the near end: body, lights, number plate, bumper
    xs, ys = _face(cam, [(x0, bottom, z0), (x1, bottom, z0), (x1, belt, z0), (x0, belt, z0)])
    p.poly(xs, ys, body * 0.95)
    lamp_h0, lamp_h1 = bottom + 0.55 * (belt - bottom), bottom + 0.85 * (belt - bottom)
    for a, b in ((x0 + 0.04, x0 + 0.04 + 0.22 * width), (x1 - 0.04 - 0.22 * width, x1 - 0.04)):
        xs, ys = _face(cam, [(a, lamp_h0, z0), (b, lamp_h0, z0), (b, lamp_h1, z0), (a, lamp_h1, z0)])
        p.poly(xs, ys, t["lamp"])
    xm = 0.5 * (x0 + x1)
    xs, ys = _face(cam, [(xm - 0.17, bottom + 0.12, z0), (xm + 0.17, bottom + 0.12, z0),
                         (xm + 0.17, bottom + 0.22, z0), (xm - 0.17, bottom + 0.22, z0)])
    p.poly(xs, ys, t["plate"])
    xs, ys = _face(cam, [(x0, bottom, z0), (x1, bottom, z0), (x1, bottom + 0.08, z0), (x0, bottom + 0.08, z0)])
    p.poly(xs, ys, body * 0.6 if t["dirt"] > 0.5 else dark * 2)


def _draw_car_silhouette(p: _Painter, cam: _Camera, x0: float, x1: float, z0: float, z1: float, hgt: float,
                         belt: float, c0: float, c1: float, inset: float, body: np.ndarray) -> None:
    side_x = x1 if x1 < -0.05 else (x0 if x0 > 0.05 else None)
    if side_x is not None:
        xs, ys = _face(cam, [(side_x, 0, z0), (side_x, 0, z1), (side_x, belt, z1), (side_x, belt, z0)])
        p.poly(xs, ys, body * 0.82)
    xs, ys = _face(cam, [(x0, belt, c0), (x1, belt, c0), (x1 - inset, hgt, c0), (x0 + inset, hgt, c0)])
    p.poly(xs, ys, body * 0.4)
    xs, ys = _face(cam, [(x0, 0, z0), (x1, 0, z0), (x1, belt, z0), (x0, belt, z0)])
    p.poly(xs, ys, body * 0.95)


def _draw_person(p: _Painter, cam: _Camera, t: dict) -> None:
    s = cam.f / t["z"]
    cx, base = cam.xv + s * t["x"], cam.yh + s
    hp = t["height"] * s

    def y(frac: float) -> float:
        return base - frac * hp

    stride = t["stride"] * hp
    leg_w = 0.075 * hp
    hip = 0.47
    for sign in (-1, 1):
        top_x = cx + sign * 0.06 * hp
        foot_x = cx + sign * (0.06 * hp + stride)
        p.poly([top_x - leg_w, top_x + leg_w, foot_x + leg_w * 0.8, foot_x - leg_w * 0.8],
               [y(hip), y(hip), y(0.0), y(0.0)], t["trousers"])
        p.rect(foot_x - leg_w, y(0.03), foot_x + leg_w * 1.2, y(0.0), t["shoes"])
    shoulder, waist = 0.14 * hp * t["build"], 0.12 * hp * t["build"]
    hem = t["coat"]
    arm_w = 0.045 * hp
    for sign in (-1, 1):
        ax = cx + sign * (shoulder + arm_w * 0.3)
        hand = ax + sign * 0.03 * hp - t["swing"] * sign * stride * 0.5
        p.poly([ax - arm_w, ax + arm_w, hand + arm_w * 0.8, hand - arm_w * 0.8],
               [y(0.8), y(0.8), y(0.45), y(0.45)], t["sleeve"])
        p.ellipse(hand, y(0.44), arm_w * 0.9, arm_w * 1.2, t["skin"])
    p.poly([cx - shoulder, cx + shoulder, cx + waist * (1.3 if hem < 0.4 else 1), cx - waist * (1.3 if hem < 0.4 else 1)],
           [y(0.82), y(0.82), y(hem), y(hem)], t["shirt"])
    p.rect(cx - 0.025 * hp, y(0.86), cx + 0.025 * hp, y(0.81), t["skin"])
    p.ellipse(cx, y(0.92), 0.062 * hp, 0.075 * hp, t["skin"])
    p.ellipse(cx, y(0.94), 0.066 * hp, 0.06 * hp, t["hair"])
    if t["bag"]:
        bx = cx + t["bag"] * (shoulder + 0.05 * hp)
        p.rect(bx - 0.05 * hp, y(0.6), bx + 0.05 * hp, y(0.45), t["bag_colour"])


def _draw_pole(p: _Painter, cam: _Camera, t: dict) -> None:
    s = cam.f / t["z"]
    cx, base = cam.xv + s * t["x"], cam.yh + s
    half = max(0.5, 0.5 * t["width"] * s)
    top = base - t["height"] * s
    p.rect(cx - half, top, cx + half, base, t["colour"])
    if t["arm"]:
        direction = -1.0 if t["x"] > 0 else 1.0
        end = cx + direction * t["arm"] * s
        thick = max(0.6, 0.04 * s)
        p.poly([cx, end, end, cx], [top, top - 0.1 * s, top - 0.1 * s + thick, top + thick], t["colour"])
        p.rect(min(end, end + direction * 0.3 * s), top - 0.12 * s, max(end, end + direction * 0.3 * s),
               top - 0.02 * s, t["lamp"])
    if t["sign"]:
        sy = base - t["sign_h"] * s
        r = max(1.0, 0.3 * s)
        if t["sign"] == 1:
            p.ellipse(cx, sy, r, r, t["sign_colour"])
        else:
            p.rect(cx - r, sy - 1.3 * r, cx + r, sy + 1.3 * r, t["sign_colour"])


def _draw_tree(p: _Painter, cam: _Camera, t: dict) -> None:
    s = cam.f / t["z"]
    cx, base = cam.xv + s * t["x"], cam.yh + s
    half = max(0.5, 0.5 * t["trunk_w"] * s)
    crown = base - t["trunk_h"] * s
    p.rect(cx - half, crown - 0.3 * t["radius"] * s, cx + half, base, t["trunk"])
    rng = np.random.default_rng(t["seed"])
    radius = t["radius"] * s
    if t["conifer"]:
        for k in range(3):
            yb = crown + 0.2 * radius - k * 0.7 * radius
            wdt = radius * (1.1 - 0.25 * k)
            p.poly([cx - wdt, cx + wdt, cx], [yb, yb, yb - 1.4 * radius], t["leaves"] * rng.uniform(0.85, 1.1))
        return
    for _ in range(t["blobs"]):
        ox, oy = rng.uniform(-0.7, 0.7) * radius, rng.uniform(-1.6, -0.5) * radius
        rr = radius * rng.uniform(0.5, 0.85)
        p.ellipse(cx + ox, crown + oy, rr, rr * rng.uniform(0.8, 1.1), t["leaves"] * rng.uniform(0.8, 1.15))
