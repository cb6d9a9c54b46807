"""Procedural street scenes in the Cityscapes layout: the data set when no Cityscapes is on disk.

A pinhole camera looks down a straight street whose horizon and vanishing point move from image
to image. Facades, fences, cars, people, poles and trees are placed in metres and projected, so
sizes shrink with distance and lines converge. Image and label are drawn in lockstep, far to
near (painter's order), without anti-aliasing on the label, so every label pixel is the class of
the surface visible there. Colours are drawn per object from palettes that overlap between
classes (grey cars and grey facades, green cars and green trees); lighting, texture and sensor
noise change per image. A model has to use shape and context, not colour alone.

Speed: primitives are queued in world coordinates and projected in one numpy call per batch
(`_Canvas.flush`); per-primitive numpy calls would cost more than the drawing itself.
"""

from segkit.data.synthetic.scene import render_scene
from segkit.data.synthetic.writer import (
    GENERATOR_VERSION,
    MANIFEST,
    TRAIN_CITIES,
    VAL_CITIES,
    generate_synthetic,
)

__all__ = [
    "GENERATOR_VERSION",
    "MANIFEST",
    "TRAIN_CITIES",
    "VAL_CITIES",
    "generate_synthetic",
    "render_scene",
]
