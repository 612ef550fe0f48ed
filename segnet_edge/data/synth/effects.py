"""What a real camera adds: fog, exposure, gamma, colour cast, vignetting, blur, noise, JPEG."""

from __future__ import annotations

import cv2
import numpy as np

from segnet_edge.data.synth.config import _F32
from segnet_edge.data.synth.materials import _grey


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
