"""The 183 parametric car models of the procedural Cars3D source, drawn from one seeded generator.

Each model is a :class:`CarModel`: a body type (sedan, hatchback, SUV, van, pickup or sports car), its
proportions in metres (length, width, roof height, wheelbase, overhangs, the heights of the nose, cowl,
window line, trunk deck and tail, the stations of the windshield, roof and rear window along the car) and
its colours. :mod:`dyndis_envs.cars3d._mesh` turns a model into a polygon mesh.

Coordinates: ``x`` points forward (front bumper at ``+length / 2``), ``y`` to the car's left, ``z`` up
from the ground. Stations along the car (``windshield_base``, ...) are ``x`` values in metres.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

__all__ = ["BODY_TYPES", "MODEL_SEED", "N_MODELS", "CarModel", "generate_models"]

#: The body types, in the order their counts are listed in ``_TYPE_COUNTS``.
BODY_TYPES = ("sedan", "hatchback", "suv", "van", "pickup", "sports")
#: Number of models: the number of car models in the real Cars3D data.
N_MODELS = 183
#: Seed of the model generator (part of the renderer's cache key).
MODEL_SEED = 2015

_TYPE_COUNTS = {"sedan": 36, "hatchback": 33, "suv": 30, "van": 24, "pickup": 27, "sports": 33}

# Per body type: (low, high) of each proportion. Lengths in metres; the stations of the windshield, roof
# and rear window are fractions of the length measured from the car's centre (+ forward).
_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "sedan": {
        "length": (4.3, 5.0), "width": (1.72, 1.88), "height": (1.38, 1.50), "clearance": (0.13, 0.17),
        "wheel_radius": (0.31, 0.35), "wheelbase": (0.56, 0.60), "front_overhang": (0.19, 0.22),
        "nose_height": (0.62, 0.72), "cowl_height": (0.90, 0.98), "deck_height": (0.95, 1.04),
        "tail_drop": (0.0, 0.06), "windshield_base": (0.17, 0.22), "windshield_top": (-0.01, 0.05),
        "roof_end": (-0.22, -0.15), "rear_window_base": (-0.34, -0.28),
    },
    "hatchback": {
        "length": (3.6, 4.3), "width": (1.65, 1.80), "height": (1.42, 1.55), "clearance": (0.13, 0.16),
        "wheel_radius": (0.29, 0.33), "wheelbase": (0.60, 0.65), "front_overhang": (0.17, 0.20),
        "nose_height": (0.65, 0.75), "cowl_height": (0.92, 1.00), "deck_height": (0.92, 1.02),
        "tail_drop": (0.0, 0.03), "windshield_base": (0.21, 0.27), "windshield_top": (0.03, 0.09),
        "roof_end": (-0.36, -0.28), "rear_window_base": (-0.48, -0.45),
    },
    "suv": {
        "length": (4.4, 4.95), "width": (1.82, 1.96), "height": (1.66, 1.86), "clearance": (0.20, 0.25),
        "wheel_radius": (0.36, 0.40), "wheelbase": (0.58, 0.62), "front_overhang": (0.17, 0.20),
        "nose_height": (0.88, 0.98), "cowl_height": (1.08, 1.18), "deck_height": (1.05, 1.15),
        "tail_drop": (0.0, 0.02), "windshield_base": (0.22, 0.27), "windshield_top": (0.09, 0.14),
        "roof_end": (-0.45, -0.41), "rear_window_base": (-0.495, -0.485),
    },
    "van": {
        "length": (4.8, 5.6), "width": (1.90, 2.05), "height": (1.95, 2.45), "clearance": (0.15, 0.19),
        "wheel_radius": (0.32, 0.36), "wheelbase": (0.58, 0.64), "front_overhang": (0.14, 0.17),
        "nose_height": (0.78, 0.90), "cowl_height": (1.00, 1.12), "deck_height": (1.00, 1.12),
        "tail_drop": (0.0, 0.01), "windshield_base": (0.36, 0.41), "windshield_top": (0.22, 0.29),
        "roof_end": (-0.485, -0.47), "rear_window_base": (-0.499, -0.497),
    },
    "pickup": {
        "length": (5.0, 5.7), "width": (1.85, 2.00), "height": (1.74, 1.92), "clearance": (0.22, 0.27),
        "wheel_radius": (0.38, 0.42), "wheelbase": (0.60, 0.64), "front_overhang": (0.15, 0.18),
        "nose_height": (1.00, 1.10), "cowl_height": (1.12, 1.22), "deck_height": (1.12, 1.22),
        "tail_drop": (0.0, 0.0), "windshield_base": (0.21, 0.25), "windshield_top": (0.10, 0.14),
        "roof_end": (-0.12, 0.02), "rear_window_base": (-0.15, -0.01),
    },
    "sports": {
        "length": (4.2, 4.7), "width": (1.85, 1.98), "height": (1.12, 1.28), "clearance": (0.10, 0.13),
        "wheel_radius": (0.32, 0.35), "wheelbase": (0.56, 0.60), "front_overhang": (0.20, 0.23),
        "nose_height": (0.50, 0.60), "cowl_height": (0.80, 0.88), "deck_height": (0.84, 0.94),
        "tail_drop": (0.0, 0.04), "windshield_base": (0.04, 0.11), "windshield_top": (-0.14, -0.07),
        "roof_end": (-0.24, -0.18), "rear_window_base": (-0.42, -0.36),
    },
}

# Common paint colours (RGB) with their weights; each model's colour is drawn from them and jittered.
_PAINTS = (
    ((236, 236, 232), 2.0), ((186, 189, 194), 2.0), ((112, 114, 120), 1.0), ((34, 34, 38), 1.0),
    ((182, 22, 28), 2.0), ((112, 16, 26), 1.0), ((28, 62, 152), 2.0), ((22, 32, 74), 0.7),
    ((94, 142, 204), 1.0), ((32, 112, 54), 1.0), ((22, 62, 38), 0.5), ((232, 186, 24), 1.5),
    ((230, 112, 22), 1.0), ((200, 180, 142), 1.0), ((102, 66, 42), 0.5), ((22, 122, 122), 1.0),
    ((84, 42, 112), 0.5),
)
_RIMS = ((196, 198, 202), (150, 152, 158), (60, 60, 64), (214, 206, 180))


@dataclass(frozen=True)
class CarModel:
    """One parametric car: body type, proportions (metres) and colours.

    Attributes:
        name: ``"<index>_<body type>"``, e.g. ``"017_sedan"``.
        body_type: One of :data:`BODY_TYPES`.
        length: Bumper to bumper.
        width: Widest point of the body.
        height: Roof height above the ground.
        clearance: Height of the body's underside.
        wheel_radius: Outer radius of the tyres.
        tyre_width: Width of the tyres.
        wheel_inset: How far the tyres' outer faces sit inside the body's side.
        front_axle: ``x`` of the front axle.
        rear_axle: ``x`` of the rear axle.
        nose_height: Height of the hood's front edge.
        cowl_height: Height of the hood's rear edge (the windshield's base).
        deck_height: Height of the trunk deck, hatch or bed rail where the cabin ends.
        tail_height: Height of the body's rear top edge.
        windshield_base: Station of the windshield's base.
        windshield_top: Station of the windshield's top (front of the roof).
        roof_end: Station of the roof's rear end.
        rear_window_base: Station where the rear window (or the cabin's back) meets the deck.
        side_glass_end: Station where the side windows end (a C- or D-pillar behind them).
        b_pillar: Station of the pillar between front and rear side windows, or None (two-door cars).
        has_bed: True for pickups: the deck behind the cabin is an open load bed.
        plan_exponent: Superellipse exponent of the plan view's ends (larger: boxier corners).
        end_width: Width of the front and rear faces as a fraction of ``width``.
        tumblehome: Inward slope of the cabin's sides (metres over the window height).
        paint: Body colour, RGB.
        rim: Wheel rim colour, RGB.
    """

    name: str
    body_type: str
    length: float
    width: float
    height: float
    clearance: float
    wheel_radius: float
    tyre_width: float
    wheel_inset: float
    front_axle: float
    rear_axle: float
    nose_height: float
    cowl_height: float
    deck_height: float
    tail_height: float
    windshield_base: float
    windshield_top: float
    roof_end: float
    rear_window_base: float
    side_glass_end: float
    b_pillar: float | None
    has_bed: bool
    plan_exponent: float
    end_width: float
    tumblehome: float
    paint: tuple[int, int, int]
    rim: tuple[int, int, int]


def _paint(rng: np.random.Generator) -> tuple[int, int, int]:
    """A common car colour, jittered in hue, saturation and value so that no two models share it exactly."""
    weights = np.asarray([weight for _, weight in _PAINTS])
    base = np.asarray(_PAINTS[rng.choice(len(_PAINTS), p=weights / weights.sum())][0], dtype=float) / 255.0
    h, s, v = colorsys.rgb_to_hsv(*base)
    h = (h + rng.uniform(-0.025, 0.025)) % 1.0
    s = float(np.clip(s * rng.uniform(0.85, 1.1), 0.0, 1.0))
    v = float(np.clip(v * rng.uniform(0.9, 1.08), 0.05, 0.95))
    r, g, b = (round(c * 255) for c in colorsys.hsv_to_rgb(h, s, v))
    return r, g, b


def _model(index: int, body_type: str, rng: np.random.Generator) -> CarModel:
    """Draw one model of ``body_type`` from ``rng``."""
    p = {key: float(rng.uniform(low, high)) for key, (low, high) in _RANGES[body_type].items()}
    length = p["length"]
    front_axle = length / 2 - p["front_overhang"] * length
    rear_axle = front_axle - p["wheelbase"] * length
    stations = {key: p[key] * length for key in ("windshield_base", "windshield_top", "roof_end", "rear_window_base")}
    if body_type == "pickup":  # the cab's back is nearly upright
        stations["rear_window_base"] = stations["roof_end"] - rng.uniform(0.03, 0.10)
    deck = p["deck_height"]
    if stations["rear_window_base"] <= -length / 2 + 0.05:  # hatch, SUV, van: the cabin reaches the tail
        deck = max(deck, p["cowl_height"])
    if body_type in ("sedan", "sports"):
        side_glass_end = stations["roof_end"] + rng.uniform(-0.05, 0.08)
    elif body_type == "van" and rng.uniform() < 0.5:  # panel van: windows in the front doors only
        side_glass_end = stations["windshield_top"] - rng.uniform(0.55, 0.75)
    else:
        side_glass_end = stations["roof_end"] + rng.uniform(0.04, 0.12)
    # a pillar between front and rear side windows, unless the car has two doors or short windows
    glass_front = stations["windshield_base"] - 0.08 * (stations["windshield_base"] - stations["windshield_top"])
    glass_length = glass_front - side_glass_end
    two_door = body_type == "sports" or (body_type in ("hatchback", "pickup") and rng.uniform() < 0.3)
    b_pillar = None if two_door or glass_length < 1.5 else glass_front - rng.uniform(0.45, 0.55) * glass_length
    return CarModel(
        name=f"{index:03d}_{body_type}",
        body_type=body_type,
        length=length,
        width=p["width"],
        height=p["height"],
        clearance=p["clearance"],
        wheel_radius=p["wheel_radius"],
        tyre_width=float(rng.uniform(0.19, 0.25)),
        wheel_inset=float(rng.uniform(0.02, 0.05)),
        front_axle=front_axle,
        rear_axle=rear_axle,
        nose_height=p["nose_height"],
        cowl_height=p["cowl_height"],
        deck_height=deck,
        tail_height=deck - p["tail_drop"],
        side_glass_end=side_glass_end,
        b_pillar=b_pillar,
        has_bed=body_type == "pickup",
        plan_exponent=float(rng.uniform(5.0, 9.0) if body_type in ("suv", "van", "pickup") else rng.uniform(3.0, 5.0)),
        end_width=float(rng.uniform(0.78, 0.9) if body_type in ("suv", "van", "pickup") else rng.uniform(0.6, 0.75)),
        tumblehome=float(rng.uniform(0.06, 0.12) if body_type in ("van", "suv") else rng.uniform(0.12, 0.2)),
        paint=_paint(rng),
        rim=_RIMS[rng.integers(len(_RIMS))],
        **stations,
    )


def generate_models(seed: int = MODEL_SEED) -> tuple[CarModel, ...]:
    """The :data:`N_MODELS` parametric car models, body types shuffled.

    Args:
        seed: Seed of the generator; the same seed always gives the same models.

    Returns:
        The models, model ``i`` named ``f"{i:03d}_{body_type}"``.
    """
    rng = np.random.default_rng(seed)
    types = np.repeat(np.asarray(BODY_TYPES), [_TYPE_COUNTS[t] for t in BODY_TYPES])
    types = types[rng.permutation(N_MODELS)]
    return tuple(_model(i, str(body_type), rng) for i, body_type in enumerate(types))
