"""Deterministic synthetic street scenes, written in the SegNet authors' CamVid layout.

Why synthetic: the pipeline (train -> prune -> quantize -> convert -> profile) needs
a dataset that exists everywhere, costs nothing to make and is the same on every
machine, so tests and demos can run without downloading CamVid.

Why this elaborate: a dataset a per-pixel colour lookup can solve would let a broken
network look fine. Here every class shares colours with another (grey overcast sky,
grey asphalt, grey concrete, silver cars; cars and clothes take any colour; a global
gain, gamma, colour cast and fog move everything), so a model has to use what CamVid
asks for: texture (window grids, lane markings, paving joints, foliage), shape (cars
with wheels and windows, people with heads and legs, thin vertical poles) and
position under a perspective camera (road below the horizon, running to a vanishing
point; facades along the street; sky above).

The scene is a small ray model: a pinhole camera 1 unit above a flat ground plane
(1 unit ~ 1.5 m), a straight street with road, pavements and optional verges, a
facade plane on each side split into buildings / vegetation / gaps along the street,
a skyline far away, and things (cars as 3D boxes, people, poles, trees) painted
far-to-near. Only numpy and OpenCV, no TensorFlow, so the board can run it too.
"""

from __future__ import annotations

import colorsys
import json
import math
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from segnet_edge.device.errors import UsageError

#: Bump when a change alters the output bytes for a given seed.
GENERATOR_VERSION = 1

CLASS_NAMES: tuple[str, ...] = ("sky", "building", "road", "pavement", "vegetation", "car", "person", "pole")
#: CamVid's RGB colours for the same classes (SegNet's palette).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 128, 128), (128, 0, 0), (128, 64, 128), (60, 40, 222),
    (128, 128, 0), (64, 0, 128), (64, 64, 0), (192, 192, 128),
)  # fmt: skip
IGNORE_LABEL = 255
SKY, BUILDING, ROAD, PAVEMENT, VEGETATION, CAR, PERSON, POLE = range(len(CLASS_NAMES))
SPLITS: tuple[str, ...] = ("train", "val", "test")
MIN_SIZE = 32
CLASSES_FILE = "classes.json"
INFO_FILE = "synth.json"

_F32 = np.float32


# --------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. `val_count` / `test_count` default to max(1, count // 4)."""

    count: int
    size: tuple[int, int] = (96, 128)
    seed: int = 0
    val_count: int | None = None
    test_count: int | None = None

    def __post_init__(self) -> None:
        if int(self.count) < 1:
            raise UsageError(f"--count must be at least 1 (got {self.count})")
        if len(self.size) != 2 or min(int(v) for v in self.size) < MIN_SIZE:
            raise UsageError(f"--size must be at least {MIN_SIZE}x{MIN_SIZE} (got {_size_text(self.size)})")
        if not 0 <= int(self.seed) < 2**63:
            raise UsageError(f"--seed must be an integer in [0, 2**63) (got {self.seed})")
        for name in ("val_count", "test_count"):
            value = getattr(self, name)
            if value is not None and int(value) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be 0 or more (got {value})")

    def split_counts(self) -> dict[str, int]:
        default = max(1, self.count // 4)
        return {
            "train": int(self.count),
            "val": default if self.val_count is None else int(self.val_count),
            "test": default if self.test_count is None else int(self.test_count),
        }


@dataclass(frozen=True)
class SynthSummary:
    """What was written; `class_pixels` (train split) feeds median-frequency class weights."""

    out: Path
    counts: dict[str, int]
    size: tuple[int, int]
    seed: int
    class_pixels: tuple[int, ...]
    seconds: float


def _size_text(size) -> str:
    try:
        return "x".join(str(int(v)) for v in size)
    except (TypeError, ValueError):
        return repr(size)


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """One independent stream per scene, so a split's count never changes another split's scenes."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS.index(split), int(index)]))


# --------------------------------------------------------------------------------------------- camera


@dataclass(frozen=True)
class _Camera:
    """Pinhole camera at height 1 looking along +Z; image y grows downwards."""

    yh: float  # horizon row
    xv: float  # vanishing point column
    f: float  # focal length in pixels

    def project(self, x, height, z):
        z = np.maximum(np.asarray(z, dtype=np.float64), 1e-3)
        return self.xv + self.f * np.asarray(x) / z, self.yh + self.f * (1.0 - np.asarray(height)) / z


#: Columns of a facade segment table (one row per segment), gathered per pixel in one indexing step.
_KIND, _TOP, _START, _PITCH_Z, _PITCH_H, _FILL_Z, _FILL_H, _GROUND_FLOOR = range(8)
_COLOUR, _GLASS = slice(8, 11), slice(11, 14)


@dataclass
class _Side:
    """The facade plane on one side of the street, cut into segments along Z (0 gap, 1 building, 2 trees)."""

    wall_x: float
    starts: np.ndarray  # segment start depths, ascending, starts[0] == 0
    table: np.ndarray  # (segments, 14) float32, columns as above

    def at(self, z: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(self.starts, z, side="right") - 1, 0, len(self.starts) - 1)


@dataclass
class SceneRender:
    """A rendered scene plus per-thing bookkeeping the tests use to check occlusion."""

    image: np.ndarray  # uint8 BGR (H, W, 3)
    labels: np.ndarray  # uint8 (H, W)
    instances: np.ndarray  # uint16 (H, W), 0 = stuff
    instance_classes: list[int] = field(default_factory=list)  # index i -> class of instance i + 1
    drawn_pixels: list[int] = field(default_factory=list)  # pixels each thing covered when painted

    def occluded_fraction(self) -> np.ndarray:
        """Per thing: share of its painted pixels later hidden by a nearer thing."""
        if not self.instance_classes:
            return np.zeros(0)
        visible = np.bincount(self.instances.ravel(), minlength=len(self.instance_classes) + 1)[1:]
        drawn = np.maximum(np.asarray(self.drawn_pixels, dtype=np.float64), 1)
        return np.clip(1.0 - visible / drawn, 0.0, 1.0)


# --------------------------------------------------------------------------------------------- colours


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)), dtype=_F32)


def _grey(rng: np.random.Generator, lo: float, hi: float, tint: float = 0.04) -> np.ndarray:
    v = rng.uniform(lo, hi)
    return np.clip(v * (1.0 + rng.uniform(-tint, tint, 3)), 0, 1).astype(_F32)


def _pick(rng: np.random.Generator, options: list, weights: list[float]):
    """rng.choice(options, p=weights), without its per-call overhead (called hundreds of times a scene)."""
    r = rng.random() * sum(weights)
    for option, weight in zip(options, weights):
        r -= weight
        if r < 0:
            return option
    return options[-1]


def _building_colour(rng: np.random.Generator) -> np.ndarray:
    kind = _pick(rng, ["grey", "concrete", "beige", "brick", "white", "dark", "paint"],
                 [0.24, 0.16, 0.16, 0.14, 0.1, 0.1, 0.1])
    if kind == "grey":
        return _grey(rng, 0.3, 0.7)
    if kind == "concrete":
        return _grey(rng, 0.45, 0.75, 0.08)
    if kind == "beige":
        return _hsv(rng.uniform(0.07, 0.13), rng.uniform(0.15, 0.4), rng.uniform(0.5, 0.85))
    if kind == "brick":
        return _hsv(rng.uniform(0.0, 0.06), rng.uniform(0.35, 0.65), rng.uniform(0.3, 0.6))
    if kind == "white":
        return _grey(rng, 0.75, 0.95)
    if kind == "dark":
        return _grey(rng, 0.12, 0.3)
    return _hsv(rng.uniform(0, 1), rng.uniform(0.2, 0.5), rng.uniform(0.35, 0.8))


def _vegetation_colour(rng: np.random.Generator) -> np.ndarray:
    kind = _pick(rng, ["green", "dark", "olive", "autumn", "dry"], [0.45, 0.2, 0.15, 0.1, 0.1])
    if kind == "green":
        return _hsv(rng.uniform(0.22, 0.36), rng.uniform(0.35, 0.7), rng.uniform(0.25, 0.55))
    if kind == "dark":
        return _hsv(rng.uniform(0.2, 0.4), rng.uniform(0.2, 0.5), rng.uniform(0.1, 0.25))
    if kind == "olive":
        return _hsv(rng.uniform(0.14, 0.2), rng.uniform(0.25, 0.5), rng.uniform(0.25, 0.5))
    if kind == "autumn":
        return _hsv(rng.uniform(0.03, 0.12), rng.uniform(0.4, 0.75), rng.uniform(0.3, 0.6))
    return _hsv(rng.uniform(0.09, 0.15), rng.uniform(0.2, 0.45), rng.uniform(0.35, 0.65))


def _car_colour(rng: np.random.Generator) -> np.ndarray:
    kind = _pick(rng, ["white", "black", "silver", "grey", "red", "blue", "any"],
                 [0.18, 0.16, 0.16, 0.14, 0.1, 0.1, 0.16])
    if kind == "white":
        return _grey(rng, 0.75, 0.95)
    if kind == "black":
        return _grey(rng, 0.04, 0.15)
    if kind == "silver":
        return _grey(rng, 0.5, 0.75)
    if kind == "grey":
        return _grey(rng, 0.25, 0.5)
    if kind == "red":
        return _hsv(rng.uniform(-0.03, 0.03), rng.uniform(0.6, 0.9), rng.uniform(0.4, 0.8))
    if kind == "blue":
        return _hsv(rng.uniform(0.55, 0.67), rng.uniform(0.4, 0.8), rng.uniform(0.2, 0.6))
    return _hsv(rng.uniform(0, 1), rng.uniform(0.1, 0.8), rng.uniform(0.2, 0.9))


def _cloth_colour(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.45:
        return _grey(rng, 0.05, 0.8)
    return _hsv(rng.uniform(0, 1), rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85))


# --------------------------------------------------------------------------------------------- noise


def _noise(rng: np.random.Generator, h: int, w: int, cells: float) -> np.ndarray:
    """Smooth noise with about `cells` blobs across the larger side, roughly unit variance."""
    ch = max(2, int(round(cells * h / max(h, w))) + 1)
    cw = max(2, int(round(cells * w / max(h, w))) + 1)
    small = rng.standard_normal((ch, cw)).astype(_F32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _hash01(a: np.ndarray, b: np.ndarray, salt: int) -> np.ndarray:
    """A cheap deterministic per-cell random value in [0, 1) (tiles, windows)."""
    v = (a.astype(np.int64) * 73856093) ^ (b.astype(np.int64) * 19349663) ^ salt
    v = (v ^ (v >> 13)) * 1274126177
    return ((v >> 7) & 1023).astype(_F32) / 1024.0


def _soft_band(coord: np.ndarray, centre: float, half_width: float, footprint: np.ndarray) -> np.ndarray:
    """Coverage of a stripe |coord - centre| < half_width by a pixel `footprint` wide (anti-aliased)."""
    return np.clip((half_width - np.abs(coord - centre)) / np.maximum(footprint, 1e-6) + 0.5, 0.0, 1.0)


def _periodic(coord: np.ndarray, period, duty, footprint: np.ndarray) -> np.ndarray:
    """A square wave (1 for the first `duty` of each period) that fades to its mean when sub-pixel."""
    phase = coord / period
    phase -= np.floor(phase)
    fade = np.clip(1.5 - 2.0 * footprint / period, 0.0, 1.0)
    base = duty * (1.0 - fade)
    return np.where(phase < duty, base + fade, base)


# --------------------------------------------------------------------------------------------- stuff


def _make_side(rng: np.random.Generator, wall_x: float, open_side: bool) -> _Side:
    rows = []
    z = 0.0
    while z <= 160:  # beyond that a facade is a couple of pixels wide
        if open_side:
            kind = _pick(rng, [0, 2], [0.5, 0.5])
        else:
            kind = _pick(rng, [1, 2, 0], [0.72, 0.18, 0.1])
        if kind == 1:
            length, top = rng.uniform(4, 22), rng.uniform(2.5, 14.0)
        elif kind == 2:
            length, top = rng.uniform(3, 15), rng.uniform(0.6, 4.5)
        else:
            length, top = rng.uniform(2, 12), 0.0
        colour = _building_colour(rng) if kind == 1 else _vegetation_colour(rng)
        glass = _glass_colour(rng) if kind == 1 else colour
        rows.append([kind, top, z, rng.uniform(1.2, 3.0), rng.uniform(1.6, 2.4), rng.uniform(0.3, 0.7),
                     rng.uniform(0.35, 0.65), rng.uniform(1.2, 2.6), *colour, *glass])
        z += length
    table = np.asarray(rows, dtype=_F32)
    return _Side(wall_x=wall_x, starts=table[:, _START].astype(np.float64), table=table)


def _glass_colour(rng: np.random.Generator) -> np.ndarray:
    kind = _pick(rng, ["dark", "blue", "reflect", "lit"], [0.5, 0.2, 0.2, 0.1])
    if kind == "dark":
        return _grey(rng, 0.04, 0.25)
    if kind == "blue":
        return _hsv(rng.uniform(0.5, 0.62), rng.uniform(0.2, 0.5), rng.uniform(0.2, 0.5))
    if kind == "reflect":
        return _grey(rng, 0.5, 0.85)
    return _hsv(rng.uniform(0.1, 0.15), rng.uniform(0.3, 0.6), rng.uniform(0.6, 0.9))


def _sky(rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray, yh: float) -> tuple[np.ndarray, str]:
    h, w = ys.shape
    kind = _pick(rng, ["overcast", "blue", "hazy", "dusk"], [0.4, 0.3, 0.17, 0.13])
    if kind == "overcast":
        top = _grey(rng, 0.45, 0.85, 0.05)
        low = np.clip(top * rng.uniform(0.95, 1.15), 0, 1)
    elif kind == "blue":
        top = _hsv(rng.uniform(0.54, 0.64), rng.uniform(0.35, 0.7), rng.uniform(0.5, 0.9))
        low = _hsv(rng.uniform(0.52, 0.62), rng.uniform(0.05, 0.25), rng.uniform(0.75, 0.95))
    elif kind == "hazy":
        top = _grey(rng, 0.65, 0.95, 0.06)
        low = np.clip(top * rng.uniform(0.95, 1.08), 0, 1)
    else:
        top = _hsv(rng.uniform(0.6, 0.75), rng.uniform(0.2, 0.5), rng.uniform(0.3, 0.6))
        low = _hsv(rng.uniform(0.02, 0.12), rng.uniform(0.3, 0.7), rng.uniform(0.6, 0.95))
    t = np.clip(ys / max(yh, 1.0), 0, 1)[..., None] ** rng.uniform(0.6, 2.0)
    sky = top * (1 - t) + low * t
    clouds = _noise(rng, h, w, rng.uniform(3, 9)) + 0.5 * _noise(rng, h, w, rng.uniform(10, 20))
    if kind == "blue":
        cover = np.clip(clouds - rng.uniform(0.3, 1.5), 0, 1)[..., None]
        sky = sky * (1 - cover) + _grey(rng, 0.8, 1.0) * cover
    else:
        sky = sky * (1 + rng.uniform(0.02, 0.12) * clouds[..., None])
    return sky.astype(_F32), kind


def _skyline(rng: np.random.Generator, cam: _Camera, h: int, w: int, image: np.ndarray, labels: np.ndarray,
             depth: np.ndarray) -> None:
    """Far buildings and tree lines facing the camera, seen through the end of the street."""
    if rng.random() < 0.25:
        return
    x = rng.uniform(-0.3, 0.0) * w
    while x < w:
        z = rng.uniform(60, 250)
        width = max(2.0, cam.f * rng.uniform(4, 25) / z)
        if rng.random() < 0.2:
            x += width
            continue
        tree = rng.random() < 0.25
        height_px = cam.f * (rng.uniform(1.5, 5) if tree else rng.uniform(3, 30)) / z
        x0, x1 = int(round(x)), int(round(x + width))
        y0 = int(round(cam.yh - height_px))
        y1 = int(math.ceil(cam.yh)) + 1
        x0c, x1c, y0c, y1c = max(x0, 0), min(x1, w), max(y0, 0), min(y1, h)
        if x1c > x0c and y1c > y0c:
            colour = _vegetation_colour(rng) if tree else _building_colour(rng)
            patch = np.broadcast_to(colour, (y1c - y0c, x1c - x0c, 3)).copy()
            if not tree and height_px > 6:
                rows = np.arange(y0c, y1c)[:, None] - y0
                cols = np.arange(x0c, x1c)[None, :] - x0
                pitch = max(2.0, cam.f * 2.0 / z)
                win = (np.mod(rows / pitch, 1) < 0.5) & (np.mod(cols / pitch, 1) < 0.5) & (rows > 1)
                patch[win] = patch[win] * rng.uniform(0.4, 0.8)
            image[y0c:y1c, x0c:x1c] = patch
            labels[y0c:y1c, x0c:x1c] = VEGETATION if tree else BUILDING
            depth[y0c:y1c, x0c:x1c] = z
        x += width


def _render_stuff(rng: np.random.Generator, cam: _Camera, h: int, w: int, layout: dict,
                  sides: tuple[_Side, _Side], sunny: bool):
    """Sky, skyline, ground (road / pavement / verge) and the two facades, as per-pixel arrays.

    Each texture is computed only on the flat indices of the pixels it covers.
    """
    ys, xs = np.mgrid[0:h, 0:w].astype(_F32)
    ys += 0.5
    xs += 0.5
    sky, _ = _sky(rng, ys, xs, cam.yh)
    image = sky.reshape(-1, 3).copy()
    labels = np.full(h * w, SKY, np.uint8)
    depth = np.full(h * w, np.inf, _F32)
    _skyline(rng, cam, h, w, image.reshape(h, w, 3), labels.reshape(h, w), depth.reshape(h, w))
    ys, xs = ys.ravel(), xs.ravel()
    fine = rng.standard_normal(h * w).astype(_F32)
    left, right = sides

    dy = ys - cam.yh
    below = dy > 0
    inv = 1.0 / np.maximum(dy, 0.25)
    gx = (xs - cam.xv) * inv  # lateral ground coordinate
    ground = below & (gx >= left.wall_x) & (gx <= right.wall_x)

    # --- facades: intersect each pixel's ray with the wall plane on its side
    on_left = xs < cam.xv
    wall_x = np.where(on_left, _F32(left.wall_x), _F32(right.wall_x))
    denom = xs - cam.xv
    denom = np.where(on_left, np.minimum(denom, -1e-3), np.maximum(denom, 1e-3))
    wz = cam.f * wall_x / denom
    wh = 1.0 - dy * wall_x / denom
    idx = np.where(on_left, left.at(wz), len(left.starts) + right.at(wz))
    table = np.concatenate([left.table, right.table])
    kind = table[:, _KIND][idx]
    top = table[:, _TOP][idx]
    knots = np.arange(0, 200, 0.6)
    bumps = np.interp(wz, knots, rng.uniform(-1, 1, len(knots))).astype(_F32)
    top = np.where(kind == 2, top * (1 + 0.25 * bumps), top)  # ragged canopy tops
    wall = ~ground & (wh >= 0) & (wh <= top) & (kind > 0)
    beyond = ~ground & ~wall & below  # the ray passes over a low segment: open land behind

    weather = _noise(rng, h, w, 12).ravel()
    leaves = _noise(rng, h, w, 30).ravel()
    m = np.flatnonzero(wall)
    if m.size:
        seg = table[idx[m]]
        z, hh, tp, wx = wz[m], wh[m], top[m], wall_x[m]
        foot_z = np.abs(z * z / (cam.f * wx))  # along-street units per pixel
        foot_h = z / cam.f  # height units per pixel
        pitch_z, pitch_h, gf = seg[:, _PITCH_Z], seg[:, _PITCH_H], seg[:, _GROUND_FLOOR]
        win = _periodic(z + 0.3 * pitch_z, pitch_z, seg[:, _FILL_Z], foot_z)
        win *= _periodic(hh - gf, pitch_h, seg[:, _FILL_H], foot_h)
        window = np.where((hh > gf) & (hh < tp - 0.5), win, 0.0)
        window += np.where((hh > 0.15) & (hh < gf * 0.8), 0.6 * _periodic(z, 3.0, 0.8, foot_z), 0.0)
        colour = seg[:, _COLOUR]
        facade = colour * (1 + 0.06 * weather[m])[:, None] * (1 - window[:, None]) + seg[:, _GLASS] * window[:, None]
        shade = 1 - 0.3 * _soft_band(hh, tp - 0.12, 0.12, foot_h)  # roof ledge
        shade *= np.where(np.abs(z - seg[:, _START]) < foot_z * 0.8, 0.7, 1.0)  # gap between buildings
        facade *= shade[:, None]
        foliage = colour * (1 + 0.35 * leaves[m] + 0.2 * fine[m])[:, None]
        is_building = seg[:, _KIND] == 1
        rgb = np.where(is_building[:, None], facade, foliage)
        rgb *= np.where(on_left[m], _F32(layout["shade_left"]), _F32(layout["shade_right"]))[:, None]
        image[m] = rgb
        labels[m] = np.where(is_building, BUILDING, VEGETATION)
        depth[m] = z

    # --- ground
    rl, rr = layout["road"]
    pl, pr = layout["pave"]
    g = np.flatnonzero(ground | beyond)
    gx, inv = gx[g], inv[g]
    gz = cam.f * inv  # ground depth
    foot_x = inv  # ground units per pixel, across
    foot_z = cam.f * inv * inv  # ground units per pixel, along
    road = ground[g] & (gx >= rl) & (gx <= rr)
    pave = ground[g] & ~road & (gx >= rl - pl) & (gx <= rr + pr)
    rgb = np.empty((g.size, 3), _F32)
    patches = _noise(rng, h, w, 6).ravel()[g]

    r = np.flatnonzero(road)
    if r.size:
        rx, rz, fx, fz = gx[r], gz[r], foot_x[r], foot_z[r]
        road_rgb = layout["asphalt"] * (1 + 0.08 * patches[r] + 0.05 * fine[g[r]])[:, None]
        marks = np.zeros(r.size, _F32)  # dashed lane lines, optional edge lines and a zebra crossing
        lanes = layout["lanes"]
        if lanes > 1:
            dashes = _periodic(rz + layout["dash_phase"], layout["dash_period"], layout["dash_duty"], fz)
            for k in range(1, lanes):
                marks = np.maximum(marks, _soft_band(rx, rl + (rr - rl) * k / lanes, 0.06, fx) * dashes)
        if layout["edge_lines"]:
            marks = np.maximum(marks, _soft_band(rx, rl + 0.25, 0.05, fx))
            marks = np.maximum(marks, _soft_band(rx, rr - 0.25, 0.05, fx))
        if layout["zebra"] is not None:
            inside = _soft_band(rz, layout["zebra"] + 1.2, 1.2, fz)
            marks = np.maximum(marks, inside * _periodic(rx, 0.7, 0.5, fx))
        marks *= np.clip(1 - layout["wear"] * (0.5 + 0.5 * patches[r]), 0.2, 1)
        road_rgb = road_rgb * (1 - marks[:, None]) + layout["paint"] * marks[:, None]
        tracks = np.zeros(r.size, _F32)  # wheel tracks: slightly darker bands in each lane
        for k in range(lanes):
            centre = rl + (rr - rl) * (k + 0.5) / lanes
            tracks += _soft_band(rx, centre - 0.55, 0.2, fx) + _soft_band(rx, centre + 0.55, 0.2, fx)
        rgb[r] = road_rgb * (1 - 0.08 * tracks)[:, None]

    q = np.flatnonzero(pave)
    if q.size:
        px, pz, fx, fz = gx[q], gz[q], foot_x[q], foot_z[q]
        tile = layout["tile"]
        jitter = _hash01(np.floor(px / tile), np.floor(pz / tile), layout["salt"]) - 0.5
        joints = np.minimum(_periodic(px, tile, 0.9, fx), _periodic(pz, tile, 0.9, fz))
        pave_rgb = layout["paving"] * (1 + layout["tile_contrast"] * jitter + 0.04 * fine[g[q]])[:, None]
        pave_rgb *= (layout["joint"] + (1 - layout["joint"]) * joints)[:, None]
        curb = _soft_band(px, rl - 0.1, 0.1, fx) + _soft_band(px, rr + 0.1, 0.1, fx)
        rgb[q] = pave_rgb * (1 - curb[:, None]) + layout["curb"] * curb[:, None]

    v = np.flatnonzero(~road & ~pave)
    if v.size:
        rgb[v] = layout["grass"] * (1 + 0.3 * leaves[g[v]] + 0.25 * fine[g[v]])[:, None]

    if sunny:  # facade shadows cast across the street
        side = sides[layout["shadow_side"]]
        sidx = side.at(gz)
        reach = side.table[sidx, _TOP] * layout["shadow_slope"] * (side.table[sidx, _KIND] > 0)
        shadow = gx < side.wall_x + reach if layout["shadow_side"] == 0 else gx > side.wall_x - reach
        rgb[shadow] *= layout["shadow_dark"]
    image[g] = rgb
    labels[g] = np.where(road, ROAD, np.where(pave, PAVEMENT, VEGETATION))
    depth[g] = gz
    return image.reshape(h, w, 3), labels.reshape(h, w), depth.reshape(h, w), fine.reshape(h, w)


# --------------------------------------------------------------------------------------------- things

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


def _plan_things(rng: np.random.Generator, layout: dict, max_z: float) -> list[dict]:
    """Where the cars, people, poles and trees stand; painted later, far to near.

    Nothing is planned beyond `max_z`, where a unit-sized thing would be under 1.5 pixels.
    """
    rl, rr = layout["road"]
    pl, pr = layout["pave"]
    lanes = layout["lanes"]
    things: list[dict] = []
    near, far = 1.6, min(70.0, max_z)

    def log_z(lo: float, hi: float) -> float:
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))

    def car(x_centre: float, z: float) -> dict:
        style = _pick(rng, ["sedan", "hatch", "van"], [0.5, 0.3, 0.2])
        width = rng.uniform(1.1, 1.3) * (1.1 if style == "van" else 1.0)
        length = {"sedan": rng.uniform(2.8, 3.3), "hatch": rng.uniform(2.4, 2.8), "van": rng.uniform(3.0, 3.8)}[style]
        height = {"sedan": rng.uniform(0.9, 1.0), "hatch": rng.uniform(0.95, 1.05), "van": rng.uniform(1.2, 1.6)}[style]
        front = bool(rng.random() < 0.35)
        return {
            "class": CAR, "z": z, "x0": x_centre - width / 2, "x1": x_centre + width / 2, "length": length,
            "height": height, "style": style, "front": front, "colour": _car_colour(rng),
            "glass": _glass_colour(rng) * rng.uniform(0.5, 1.0),
            "hub": _grey(rng, 0.3, 0.7), "wheel": rng.uniform(0.2, 0.24),
            "lamp": _hsv(rng.uniform(0.12, 0.16), 0.15, 0.95) if front else _hsv(rng.uniform(-0.02, 0.04), 0.8, 0.7),
            "plate": _hsv(rng.uniform(0.12, 0.16), rng.uniform(0.0, 0.7), 0.9), "dirt": rng.random(),
        }

    # moving traffic, one lane at a time so boxes never intersect
    for _ in range(int(rng.choice([0, 1, 2, 3, 4, 5, 6], p=[0.12, 0.18, 0.2, 0.18, 0.14, 0.1, 0.08]))):
        lane = int(rng.integers(lanes))
        centre = rl + (rr - rl) * (lane + 0.5) / lanes + rng.normal(0, 0.12)
        for _try in range(5):
            z = log_z(near + 0.5, far)
            clash = any(t["class"] == CAR and t["x0"] < centre + 0.7 and t["x1"] > centre - 0.7
                        and z < t["z"] + t["length"] + 0.6 and t["z"] < z + 4.5 for t in things)
            if not clash:
                things.append(car(centre, z))
                break
    # parked rows along the kerb
    for side in (0, 1):
        if rng.random() < 0.4:
            z = rng.uniform(near + 0.5, 10)
            while z < far:
                if rng.random() < 0.8:
                    width = 1.2
                    x = rl + 0.15 + width / 2 if side == 0 else rr - 0.15 - width / 2
                    c = car(x, z)
                    clash = any(t["class"] == CAR and t["x0"] < c["x1"] and t["x1"] > c["x0"]
                                and z < t["z"] + t["length"] + 0.3 and t["z"] < z + c["length"] + 0.3 for t in things)
                    if not clash:
                        things.append(c)
                    z += c["length"]
                z += rng.uniform(0.5, 4)

    def person(x: float, z: float) -> dict:
        child = rng.random() < 0.1
        coat = rng.random() < 0.3
        shirt = _cloth_colour(rng)
        skin = _hsv(rng.uniform(0.03, 0.09), rng.uniform(0.25, 0.6), rng.uniform(0.25, 0.9))
        return {
            "class": PERSON, "z": z, "x": x, "height": rng.uniform(0.6, 0.8) if child else rng.uniform(1.05, 1.3),
            "stride": rng.uniform(-0.12, 0.12), "swing": rng.uniform(0.0, 1.0), "build": rng.uniform(0.85, 1.25),
            "coat": rng.uniform(0.3, 0.38) if coat else rng.uniform(0.45, 0.5),
            "trousers": _cloth_colour(rng), "shirt": shirt, "sleeve": shirt if rng.random() < 0.7 else skin,
            "skin": skin, "hair": _grey(rng, 0.03, 0.5) if rng.random() < 0.8 else _hsv(0.1, 0.5, 0.7),
            "shoes": _grey(rng, 0.03, 0.6), "bag": int(rng.choice([0, 0, -1, 1])), "bag_colour": _cloth_colour(rng),
        }

    n_people = int(rng.choice(np.arange(9), p=[0.12, 0.16, 0.16, 0.14, 0.12, 0.1, 0.08, 0.07, 0.05]))
    for _ in range(n_people):
        z = log_z(near, min(45.0, far))
        if rng.random() < 0.75 and (pl > 0.3 or pr > 0.3):
            left = pl > 0.3 and (pr <= 0.3 or rng.random() < 0.5)
            x = rng.uniform(rl - pl + 0.2, rl - 0.15) if left else rng.uniform(rr + 0.15, rr + pr - 0.2)
        else:
            x = rng.uniform(rl + 0.2, rr - 0.2)
        things.append(person(x, z))
        if rng.random() < 0.35:  # a companion walking alongside
            things.append(person(x + rng.choice([-1, 1]) * rng.uniform(0.3, 0.6), z + rng.uniform(-0.4, 0.4)))

    def pole(x: float, z: float) -> dict:
        kind = _pick(rng, ["lamp", "plain", "sign"], [0.45, 0.3, 0.25])
        return {
            "class": POLE, "z": z, "x": x, "height": rng.uniform(2.5, 6.0) if kind != "sign" else rng.uniform(1.6, 2.4),
            "width": rng.uniform(0.05, 0.12), "colour": _grey(rng, 0.1, 0.7) if rng.random() < 0.8 else _hsv(0.35, 0.5, 0.3),
            "arm": rng.uniform(0.6, 1.6) if kind == "lamp" else 0.0, "lamp": _grey(rng, 0.5, 0.95),
            "sign": int(rng.integers(1, 3)) if kind == "sign" else 0, "sign_h": rng.uniform(1.3, 2.2),
            "sign_colour": _hsv(rng.uniform(0, 1), rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.9)),
        }

    for side in (0, 1):
        width = pl if side == 0 else pr
        if width <= 0.2 or rng.random() > 0.65:
            continue
        x = rl - 0.25 if side == 0 else rr + 0.25
        z, spacing = rng.uniform(near, 12), rng.uniform(6, 20)
        while z < max_z:
            things.append(pole(x + rng.normal(0, 0.03), z))
            z += spacing * rng.uniform(0.9, 1.1)
    for _ in range(int(rng.integers(0, 3))):
        side_x = rng.uniform(rl - pl, rl) if rng.random() < 0.5 else rng.uniform(rr, rr + pr)
        things.append(pole(side_x, log_z(near, min(40.0, far))))

    for side in (0, 1):
        if rng.random() > 0.35:
            continue
        outer = (rl - pl if side == 0 else rr + pr)
        x = outer + (0.4 if side == 0 else -0.4)
        z, spacing = rng.uniform(near + 1, 15), rng.uniform(5, 14)
        leaves = _vegetation_colour(rng)
        conifer = rng.random() < 0.2
        while z < max_z:
            things.append({
                "class": VEGETATION, "z": z, "x": x + rng.normal(0, 0.1), "trunk_h": rng.uniform(1.2, 2.5),
                "trunk_w": rng.uniform(0.12, 0.25), "radius": rng.uniform(0.9, 2.0), "conifer": conifer,
                "trunk": _hsv(rng.uniform(0.05, 0.1), rng.uniform(0.2, 0.5), rng.uniform(0.1, 0.35)),
                "leaves": leaves * rng.uniform(0.85, 1.15), "blobs": int(rng.integers(3, 7)),
                "seed": int(rng.integers(2**31)),
            })
            z += spacing * rng.uniform(0.8, 1.2)
    return things


# --------------------------------------------------------------------------------------------- scene


def _layout(rng: np.random.Generator) -> dict:
    rl, rr = -rng.uniform(1.0, 3.6), rng.uniform(1.0, 3.6)
    lanes = max(1, int(round((rr - rl) / rng.uniform(2.2, 3.0))))
    pave = [0.0 if rng.random() < 0.08 else rng.uniform(1.0, 4.0) for _ in range(2)]
    verge = [rng.uniform(0.4, 3.0) if rng.random() < 0.3 else 0.0 for _ in range(2)]
    asphalt_kind = _pick(rng, ["grey", "dark", "light", "warm"], [0.4, 0.25, 0.2, 0.15])
    asphalt = {
        "grey": lambda: _grey(rng, 0.28, 0.5, 0.05),
        "dark": lambda: _grey(rng, 0.12, 0.28, 0.05),
        "light": lambda: _grey(rng, 0.5, 0.72, 0.05),
        "warm": lambda: _hsv(rng.uniform(0.05, 0.12), rng.uniform(0.1, 0.3), rng.uniform(0.25, 0.55)),
    }[asphalt_kind]()
    paving_kind = _pick(rng, ["grey", "beige", "red", "concrete"], [0.35, 0.2, 0.15, 0.3])
    paving = {
        "grey": lambda: _grey(rng, 0.35, 0.7),
        "beige": lambda: _hsv(rng.uniform(0.07, 0.13), rng.uniform(0.1, 0.35), rng.uniform(0.45, 0.8)),
        "red": lambda: _hsv(rng.uniform(0.0, 0.05), rng.uniform(0.3, 0.55), rng.uniform(0.35, 0.6)),
        "concrete": lambda: _grey(rng, 0.45, 0.8, 0.06),
    }[paving_kind]()
    return {
        "road": (rl, rr), "lanes": lanes, "pave": tuple(pave), "verge": tuple(verge),
        "asphalt": asphalt, "paving": paving, "curb": _grey(rng, 0.45, 0.85),
        "tile": rng.uniform(1.5, 3.0) if paving_kind == "concrete" else rng.uniform(0.35, 0.9),
        "tile_contrast": rng.uniform(0.03, 0.1) if paving_kind == "concrete" else rng.uniform(0.08, 0.3),
        "joint": rng.uniform(0.55, 0.85), "salt": int(rng.integers(1 << 20)),
        "grass": _vegetation_colour(rng),
        "paint": _grey(rng, 0.75, 0.95) if rng.random() < 0.8 else _hsv(rng.uniform(0.11, 0.15), 0.7, 0.85),
        "dash_period": rng.uniform(4, 10), "dash_duty": rng.uniform(0.3, 0.6), "dash_phase": rng.uniform(0, 10),
        "edge_lines": bool(rng.random() < 0.5), "zebra": rng.uniform(3, 15) if rng.random() < 0.2 else None,
        "wear": rng.uniform(0.0, 0.7),
        "shade_left": rng.uniform(0.7, 1.1), "shade_right": rng.uniform(0.7, 1.1),
        "shadow_side": int(rng.integers(2)), "shadow_slope": rng.uniform(0.2, 1.0), "shadow_dark": rng.uniform(0.4, 0.7),
    }


def render_scene_detailed(rng: np.random.Generator, size: tuple[int, int]) -> SceneRender:
    """Render one scene; see the module docstring for the model."""
    h, w = int(size[0]), int(size[1])
    cam = _Camera(yh=h * rng.uniform(0.25, 0.58), xv=w * rng.uniform(0.3, 0.7), f=w * rng.uniform(0.5, 1.0))
    layout = _layout(rng)
    rl, rr = layout["road"]
    wall_l = rl - layout["pave"][0] - layout["verge"][0]
    wall_r = rr + layout["pave"][1] + layout["verge"][1]
    sides = (_make_side(rng, wall_l, rng.random() < 0.12), _make_side(rng, wall_r, rng.random() < 0.12))
    sunny_sky = rng.random()
    image, labels, depth, fine = _render_stuff(rng, cam, h, w, layout, sides, sunny=sunny_sky < 0.4)

    things = _plan_things(rng, layout, max_z=cam.f / 1.5)
    things.sort(key=lambda t: -t["z"])
    instances = np.zeros((h, w), np.uint16)
    # contact shadows first, so a nearer thing is never darkened by a farther one's shadow
    shade = np.ones((h, w), _F32)
    for t in things:
        if t["class"] not in (CAR, PERSON) or cam.f / t["z"] < 1.5:
            continue
        if t["class"] == CAR:
            z0, z1 = t["z"] - 0.1, t["z"] + t["length"]
            xs, ys = _face(cam, [(t["x0"] - 0.05, 0, z0), (t["x1"] + 0.05, 0, z0), (t["x1"] + 0.05, 0, z1),
                                 (t["x0"] - 0.05, 0, z1)])
            dark = 0.45
        else:
            xs, ys = _face(cam, (_CIRCLE * [0.25, 0.2] + [t["x"], t["z"]])[:, [0, 0, 1]] * [1, 0, 1])
            dark = 0.6
        pts = np.rint(np.stack([xs, ys], axis=1) * 4).astype(np.int32)
        cv2.fillPoly(shade, [pts], (dark,), cv2.LINE_8, 2)
    shade = cv2.GaussianBlur(shade, (0, 0), 0.8)
    image *= shade[..., None]

    painter = _Painter(image, instances)
    classes: list[int] = []
    drawn: list[int] = []
    depths: list[float] = [0.0]
    texture: list[float] = [0.0]
    for t in things:
        s = cam.f / t["z"]
        if s < 1.5 or t["z"] < 1.0:  # under 1.5 pixels per unit, or at the lens
            continue
        if len(classes) >= 60000:
            break
        painter.begin(len(classes) + 1)
        {CAR: _draw_car, PERSON: _draw_person, POLE: _draw_pole, VEGETATION: _draw_tree}[t["class"]](painter, cam, t)
        count = painter.drawn()
        if count == 0:
            continue
        classes.append(t["class"])
        drawn.append(count)
        depths.append(t["z"])
        texture.append({CAR: 0.03, PERSON: 0.08, POLE: 0.05, VEGETATION: 0.35}[t["class"]])
    # instance ids run 1..n in paint order: a thing that painted nothing handed its id to the next
    thing = instances > 0
    if classes:
        lut_class = np.asarray([0, *classes], np.uint8)
        labels = np.where(thing, lut_class[instances], labels).astype(np.uint8)
        depth = np.where(thing, np.asarray(depths, _F32)[instances], depth)
        amp = np.asarray(texture, _F32)[instances]
        image *= (1 + amp * (0.6 * fine + 0.6 * _noise(rng, h, w, 30)))[..., None]

    image = _camera_effects(rng, image, depth, labels == SKY)
    return SceneRender(image=image, labels=labels, instances=instances, instance_classes=classes, drawn_pixels=drawn)


def _camera_effects(rng: np.random.Generator, rgb: np.ndarray, depth: np.ndarray, sky: np.ndarray) -> np.ndarray:
    """Fog, exposure, gamma, colour cast, vignetting, blur, sensor noise, JPEG: RGB float -> BGR uint8."""
    h, w = depth.shape
    fog_colour = _grey(rng, 0.55, 0.9, 0.05)
    fog_range = float(np.exp(rng.uniform(np.log(20), np.log(800))))
    t = np.where(sky, 0.0, 1.0 - np.exp(-np.where(np.isfinite(depth), depth, 1e4) / fog_range))
    t = t.astype(_F32)[..., None]
    rgb = rgb * (1 - t) + fog_colour * t
    cast = rng.uniform(0.82, 1.18, 3).astype(_F32)
    cast /= cast.mean()
    gain = rng.uniform(0.6, 1.35)
    rgb = np.clip(rgb * (cast * gain), 0, 1) ** rng.uniform(0.7, 1.45)
    ys, xs = np.ogrid[0:h, 0:w]
    r2 = ((ys - h / 2) / (h / 2)) ** 2 + ((xs - w / 2) / (w / 2)) ** 2
    rgb = rgb * (1 - rng.uniform(0, 0.35) * r2.astype(_F32) / 2)[..., None]
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    blur = rng.random()
    if blur < 0.55:
        bgr = cv2.GaussianBlur(bgr, (0, 0), rng.uniform(0.35, 1.1))
    elif blur < 0.7:
        k = int(rng.integers(3, 6))
        kernel = np.zeros((k, k), _F32)
        kernel[k // 2, :] = 1.0 / k
        bgr = cv2.filter2D(bgr, -1, kernel, borderType=cv2.BORDER_REFLECT)
    sigma = rng.uniform(0.004, 0.04)
    noise = rng.standard_normal((h, w, 3), dtype=_F32) * sigma
    noise += rng.standard_normal((h, w, 1), dtype=_F32) * sigma  # luminance grain
    out = np.clip((bgr + noise) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.35:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 90))])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def render_scene(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One street scene: (BGR uint8 HxWx3, class-index uint8 HxW)."""
    scene = render_scene_detailed(rng, size)
    return scene.image, scene.labels


def colourise_labels(labels: np.ndarray, palette=PALETTE) -> np.ndarray:
    """Class indices -> BGR picture with the dataset palette (ignore/unknown values in black)."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(palette)] = np.asarray(palette, np.uint8)[:, ::-1]
    return lut[labels]


# --------------------------------------------------------------------------------------------- writing


def classes_json() -> dict:
    return {"class_names": list(CLASS_NAMES), "palette": [list(c) for c in PALETTE], "ignore_label": IGNORE_LABEL}


def _check_target(out: Path, overwrite: bool) -> None:
    if out.is_file() or (out.exists() and not out.is_dir()):
        raise UsageError(f"{out} is a file; give a folder path for the dataset")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UsageError(f"{out} exists and is not empty; pass --overwrite to replace it or pick another folder")
        if not ((out / CLASSES_FILE).is_file() or (out / "train.txt").is_file()):
            raise UsageError(f"{out} does not look like a dataset (no {CLASSES_FILE} or train.txt); "
                             "refusing to delete it, pick another folder")


def write_synth_dataset(out: str | os.PathLike, config: SynthConfig, overwrite: bool = False,
                        progress: bool | None = None) -> SynthSummary:
    """Write the dataset into a temporary sibling folder, then rename it to `out` in one step.

    `progress=None` shows a tqdm bar only on a terminal.
    """
    from tqdm import tqdm

    out = Path(out)
    _check_target(out, overwrite)
    if out.resolve() in (Path.cwd().resolve(), *Path.cwd().resolve().parents):
        raise UsageError(f"{out} is the current folder or one above it; pick a new folder for the dataset")
    counts = config.split_counts()
    h, w = int(config.size[0]), int(config.size[1])
    digits = max(5, len(str(max(counts.values()) - 1)))
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tmp = _fresh_sibling(out, "tmp")
    class_pixels = np.zeros(len(CLASS_NAMES), np.int64)
    try:
        disable = None if progress is None else not progress
        with tqdm(total=sum(counts.values()), desc="synth", unit="scene", disable=disable) as bar:
            for split, n in counts.items():
                if n == 0:
                    continue
                (tmp / split).mkdir()
                (tmp / f"{split}annot").mkdir()
                lines = []
                for index in range(n):
                    image, labels = render_scene(scene_rng(config.seed, split, index), (h, w))
                    name = f"synth_{index:0{digits}d}.png"
                    _imwrite(tmp / split / name, image)
                    _imwrite(tmp / f"{split}annot" / name, labels)
                    if split == "train":
                        class_pixels += np.bincount(labels.ravel(), minlength=256)[: len(CLASS_NAMES)]
                    lines.append(f"{split}/{name} {split}annot/{name}\n")
                    bar.update(1)
                (tmp / f"{split}.txt").write_text("".join(lines), encoding="utf-8")
        (tmp / CLASSES_FILE).write_text(json.dumps(classes_json(), indent=2) + "\n", encoding="utf-8")
        info = {"generator": "segnet_edge.data.synth", "generator_version": GENERATOR_VERSION, "seed": int(config.seed),
                "size": [h, w], "counts": counts, "train_class_pixels": [int(v) for v in class_pixels]}
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SynthSummary(out=out, counts=counts, size=(h, w), seed=int(config.seed),
                        class_pixels=tuple(int(v) for v in class_pixels), seconds=time.perf_counter() - started)


def _imwrite(path: Path, array: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    path.write_bytes(buf.tobytes())


def _fresh_sibling(out: Path, tag: str) -> Path:
    """A new hidden folder beside `out` (same filesystem, so renames are atomic), made with the umask."""
    for _ in range(100):
        candidate = out.parent / f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.{tag}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise OSError(f"{out.parent}: could not create a temporary folder")


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move `tmp` to `out`; an existing (already vetted) `out` is moved aside first and removed after."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = _fresh_sibling(out, "old")
    old.rmdir()
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
