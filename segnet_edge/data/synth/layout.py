"""Where everything goes: the street's layout and the plan of the things standing in it."""

from __future__ import annotations

import numpy as np

from segnet_edge.data.synth.config import CAR, PERSON, POLE, VEGETATION
from segnet_edge.data.synth.materials import (
    _car_colour,
    _cloth_colour,
    _glass_colour,
    _grey,
    _hsv,
    _pick,
    _vegetation_colour,
)


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
