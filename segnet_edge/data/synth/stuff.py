"""The stuff classes: facades along the street, sky, skyline, road, pavement and verges."""

from __future__ import annotations

import math

import numpy as np

from segnet_edge.data.synth.config import _F32, BUILDING, PAVEMENT, ROAD, SKY, VEGETATION
from segnet_edge.data.synth.geometry import (
    _COLOUR,
    _FILL_H,
    _FILL_Z,
    _GLASS,
    _GROUND_FLOOR,
    _KIND,
    _PITCH_H,
    _PITCH_Z,
    _START,
    _TOP,
    _Camera,
    _Side,
)
from segnet_edge.data.synth.materials import (
    _building_colour,
    _glass_colour,
    _grey,
    _hash01,
    _hsv,
    _noise,
    _periodic,
    _pick,
    _soft_band,
    _vegetation_colour,
)


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
