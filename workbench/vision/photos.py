"""Real photographs that ship inside installed packages (nothing is downloaded).

scikit-image bundles a few photos in its wheel (the rest of `skimage.data` is
fetched with pooch on first use, which cannot work here, so only the bundled
files are read, by path) and scikit-learn bundles two JPEGs. They serve as the
demo images and as real inputs for parity, calibration and end-to-end timing.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np

from workbench.errors import UserError
from workbench.vision.image_io import load_image

# name -> (package, file inside the package's data folder)
PHOTOS: dict[str, tuple[str, str]] = {
    "chelsea": ("skimage", "data/chelsea.png"),  # a tabby cat
    "coffee": ("skimage", "data/coffee.png"),  # a cup of coffee
    "astronaut": ("skimage", "data/astronaut.png"),
    "rocket": ("skimage", "data/rocket.jpg"),
    "motorcycle": ("skimage", "data/motorcycle_left.png"),
    "camera": ("skimage", "data/camera.png"),  # greyscale: exercises grey -> RGB
    "hubble": ("skimage", "data/hubble_deep_field.jpg"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
}


def photo_path(name: str) -> Path:
    """Where the bundled photo `name` lies; a UserError if unknown or its package is missing."""
    if name not in PHOTOS:
        raise UserError(f"unknown photo {name!r}: choose one of {', '.join(PHOTOS)}")
    package, relative = PHOTOS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise UserError(f"photo {name!r} ships with {package!r}, which is not installed")
    return Path(spec.origin).parent / relative


@cache
def _photo_bytes(name: str) -> bytes:
    return photo_path(name).read_bytes()


def photo_bytes(name: str) -> bytes:
    """The photo's encoded file (PNG or JPEG), as a client would send it."""
    return _photo_bytes(name)


@cache
def photo(name: str) -> np.ndarray:
    """The photo decoded to HxWx3 uint8 RGB, once per process (read-only: it is shared)."""
    rgb = load_image(photo_path(name))
    rgb.flags.writeable = False
    return rgb


def photo_names(colour_only: bool = False) -> list[str]:
    return [n for n in PHOTOS if not (colour_only and n == "camera")]


def photo_stream(n: int, seed: int = 0) -> list[str]:
    """`n` photo names in a seeded order (cycling through all of them)."""
    names = photo_names()
    order = np.random.default_rng(seed).permutation(len(names))
    return [names[order[i % len(names)]] for i in range(n)]
