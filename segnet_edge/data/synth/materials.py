"""Colours and procedural textures: what makes classes share colours and differ in texture."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from segnet_edge.data.synth.config import _F32


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


def _glass_colour(rng: np.random.Generator) -> np.ndarray:
    kind = _pick(rng, ["dark", "blue", "reflect", "lit"], [0.5, 0.2, 0.2, 0.1])
    if kind == "dark":
        return _grey(rng, 0.04, 0.25)
    if kind == "blue":
        return _hsv(rng.uniform(0.5, 0.62), rng.uniform(0.2, 0.5), rng.uniform(0.2, 0.5))
    if kind == "reflect":
        return _grey(rng, 0.5, 0.85)
    return _hsv(rng.uniform(0.1, 0.15), rng.uniform(0.3, 0.6), rng.uniform(0.6, 0.9))


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
