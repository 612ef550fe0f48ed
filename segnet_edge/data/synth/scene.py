"""One scene: layout, stuff, things and camera effects, rendered into an image and its labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from segnet_edge.data.synth.config import _F32, CAR, PALETTE, PERSON, POLE, SKY, VEGETATION
from segnet_edge.data.synth.effects import _camera_effects
from segnet_edge.data.synth.geometry import _Camera
from segnet_edge.data.synth.layout import _layout, _plan_things
from segnet_edge.data.synth.materials import _noise
from segnet_edge.data.synth.painters import (
    _CIRCLE,
    _draw_car,
    _draw_person,
    _draw_pole,
    _draw_tree,
    _face,
    _Painter,
)
from segnet_edge.data.synth.stuff import _make_side, _render_stuff


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


def render_scene(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One street scene: (BGR uint8 HxWx3, class-index uint8 HxW)."""
    scene = render_scene_detailed(rng, size)
    return scene.image, scene.labels


def colourise_labels(labels: np.ndarray, palette=PALETTE) -> np.ndarray:
    """Class indices -> BGR picture with the dataset palette (ignore/unknown values in black)."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(palette)] = np.asarray(palette, np.uint8)[:, ::-1]
    return lut[labels]
