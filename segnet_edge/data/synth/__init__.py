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

The package is split by job: config (what is asked, the class vocabulary), geometry
(camera, facade planes), materials (colours, textures), stuff (street, facades, sky),
painters (cars, people, poles, trees), layout (where everything goes), effects (what
a real camera adds), scene (one rendered scene) and writer (the dataset folder).
"""

from segnet_edge.data.synth.config import (
    BUILDING,
    CAR,
    CLASS_NAMES,
    CLASSES_FILE,
    GENERATOR_VERSION,
    IGNORE_LABEL,
    INFO_FILE,
    MIN_SIZE,
    PALETTE,
    PAVEMENT,
    PERSON,
    POLE,
    ROAD,
    SKY,
    SPLITS,
    VEGETATION,
    SynthConfig,
    SynthSummary,
    scene_rng,
)
from segnet_edge.data.synth.scene import SceneRender, colourise_labels, render_scene, render_scene_detailed
from segnet_edge.data.synth.writer import classes_json, write_synth_dataset

__all__ = [
    "BUILDING", "CAR", "CLASS_NAMES", "CLASSES_FILE", "GENERATOR_VERSION", "IGNORE_LABEL", "INFO_FILE", "MIN_SIZE",
    "PALETTE", "PAVEMENT", "PERSON", "POLE", "ROAD", "SKY", "SPLITS", "VEGETATION", "SceneRender", "SynthConfig",
    "SynthSummary", "classes_json", "colourise_labels", "render_scene", "render_scene_detailed", "scene_rng",
    "write_synth_dataset",
]
