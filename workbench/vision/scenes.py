"""Generated detection scenes: shapes pasted on real and procedural backgrounds.

Each scene has exact ground-truth boxes, so a detector trained on them can be
scored (mAP@0.5) and compared after export and quantization. Backgrounds, all
available offline from pinned packages (nothing is fetched):

* a real photograph: matplotlib's sample image ``grace_hopper.jpg``, random crops,
  flips, colour jitter;
* real terrain: matplotlib's sample elevation model (Jacksboro fault) rendered as
  coloured hill-shading, random crops;
* procedural colour noise, gradients and stripes.

Objects (4 classes: circle, square, triangle, cross) are drawn anti-aliased with
shaded fills, never overlapping, so every tight box is exact. Sizes are in pixels
at the model's input scale (10 to 64 px), whatever the scene's own size: a scene
is drawn at a random scale and aspect ratio and the letterbox brings it back,
so the detector sees the same object sizes at every input size and the letterbox
mapping is exercised. Everything is vectorized NumPy plus Pillow resizes; each scene
is reproducible from (stream, seed, index) alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from workbench.vision.letterbox import letterbox_batch

CLASSES = ("circle", "square", "triangle", "cross")
STREAMS = {"train": 1, "held_out": 2, "bench": 3, "calibration": 4, "demo": 5}
MIN_SIZE, MAX_SIZE = 10.0, 64.0  # object size range in model-input pixels


@dataclass
class Scene:
    """One generated image and its ground truth (xyxy boxes in its own pixels)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    boxes: np.ndarray  # (M, 4) float32
    classes: np.ndarray  # (M,) int64


def _sample_data(name: str) -> Path:
    # lazy: matplotlib
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / name


@lru_cache(maxsize=1)
def photo_backgrounds() -> tuple[np.ndarray, ...]:
    """The real images used as backgrounds (HxWx3 uint8); empty if matplotlib's sample
    data is missing (scenes then use procedural backgrounds only)."""
    images: list[np.ndarray] = []
    try:
        with Image.open(_sample_data("grace_hopper.jpg")) as img:
            images.append(np.asarray(img.convert("RGB")))
    except (OSError, ImportError):
        pass
    try:
        with np.load(_sample_data("jacksboro_fault_dem.npz")) as dem:
            images.append(_hillshade(dem["elevation"].astype(np.float64)))
    except (OSError, ImportError, KeyError):
        pass
    return tuple(images)


def _hillshade(elevation: np.ndarray) -> np.ndarray:
    """Elevation grid -> coloured, hill-shaded RGB image (terrain colours x shading)."""
    dy, dx = np.gradient(elevation)
    slope = np.pi / 2 - np.arctan(np.hypot(dx, dy) / 8)
    aspect = np.arctan2(-dx, dy)
    azimuth, altitude = np.deg2rad(315), np.deg2rad(45)
    shade = np.sin(altitude) * np.sin(slope) + np.cos(altitude) * np.cos(slope) * np.cos(
        azimuth - aspect
    )
    level = (elevation - elevation.min()) / max(np.ptp(elevation), 1e-9)
    stops = np.array([0.0, 0.3, 0.6, 1.0])
    colours = np.array([[40, 90, 150], [90, 150, 70], [170, 140, 90], [240, 240, 240]], float)
    rgb = np.stack([np.interp(level, stops, colours[:, c]) for c in range(3)], axis=-1)
    return np.clip(rgb * (0.35 + 0.65 * shade.clip(0, 1))[..., None], 0, 255).astype(np.uint8)


def _photo_crop(rng: np.random.Generator, photo: np.ndarray, h: int, w: int) -> np.ndarray:
    ph, pw = photo.shape[:2]
    frac = rng.uniform(0.3, 1.0)
    ch = max(8, int(min(ph, pw * h / w) * frac))
    cw = max(8, min(pw, int(ch * w / h)))
    y0, x0 = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
    crop = Image.fromarray(photo[y0 : y0 + ch, x0 : x0 + cw]).resize(
        (w, h), Image.Resampling.BILINEAR
    )
    out = np.asarray(crop, dtype=np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < 0.3:
        out = out[:, :, rng.permutation(3)]
    return out * rng.uniform(0.7, 1.2) + rng.uniform(-25, 25)


def _procedural(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    gh, gw = rng.integers(2, 9, size=2)
    grid = rng.uniform(0, 255, size=(gh, gw, 3)).astype(np.uint8)
    out = np.asarray(
        Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32
    )
    if rng.random() < 0.5:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        theta, period = rng.uniform(0, np.pi), rng.uniform(4, 40)
        wave = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period)
        out += (rng.uniform(10, 50) * wave)[..., None] * rng.uniform(0.3, 1, size=3)
    return out


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    photos = photo_backgrounds()
    if photos and rng.random() < 0.65:
        return _photo_crop(rng, photos[int(rng.integers(len(photos)))], h, w)
    return _procedural(rng, h, w)


def _shape_alpha(rng: np.random.Generator, cls: int, bh: int, bw: int) -> np.ndarray:
    """Anti-aliased coverage (bh, bw) in [0, 1] of a shape that touches all four sides."""
    sub = 4  # 4x4 supersampling
    ys = (np.arange(bh * sub) + 0.5) / (bh * sub) * 2 - 1
    xs = (np.arange(bw * sub) + 0.5) / (bw * sub) * 2 - 1
    v, u = np.meshgrid(ys, xs, indexing="ij")
    name = CLASSES[cls]
    if name == "circle":
        inside = u * u + v * v <= 1.0
    elif name == "square":
        inside = np.ones_like(u, dtype=bool)
    elif name == "triangle":
        if rng.random() < 0.5:  # point left/right instead of up/down
            u, v = v, u
        if rng.random() < 0.5:
            v = -v
        apex = rng.uniform(-0.6, 0.6)
        corners = ((apex, -1.0), (-1.0, 1.0), (1.0, 1.0))
        edges = [
            (qx - px) * (v - py) - (qy - py) * (u - px)
            for (px, py), (qx, qy) in zip(corners, corners[1:] + corners[:1], strict=True)
        ]
        inside = ((edges[0] >= 0) & (edges[1] >= 0) & (edges[2] >= 0)) | (
            (edges[0] <= 0) & (edges[1] <= 0) & (edges[2] <= 0)
        )
    else:  # cross
        t = rng.uniform(0.22, 0.4)
        inside = (np.abs(u) <= t) | (np.abs(v) <= t)
    return inside.reshape(bh, sub, bw, sub).mean(axis=(1, 3))


def render_scene(rng: np.random.Generator, height: int, width: int, scale: float = 1.0) -> Scene:
    """A height x width scene whose objects are MIN_SIZE..MAX_SIZE x `scale` pixels."""
    image = _background(rng, height, width).astype(np.float32, copy=False)
    area = height * width / (scale * scale)  # in model-input pixels
    n_objects = int(rng.integers(1, int(np.clip(area / 3200, 2, 16)) + 1))
    boxes: list[tuple[int, int, int, int]] = []
    classes: list[int] = []
    for _ in range(n_objects * 10):
        if len(boxes) == n_objects:
            break
        size = np.exp(rng.uniform(np.log(MIN_SIZE), np.log(MAX_SIZE))) * scale
        aspect = np.exp(rng.uniform(-0.3, 0.3))
        bw = int(np.clip(round(size * aspect), 4, width))
        bh = int(np.clip(round(size / aspect), 4, height))
        x0, y0 = int(rng.integers(0, width - bw + 1)), int(rng.integers(0, height - bh + 1))
        box = (x0, y0, x0 + bw, y0 + bh)
        if any(
            box[0] < b[2] + 2 and b[0] < box[2] + 2 and box[1] < b[3] + 2 and b[1] < box[3] + 2
            for b in boxes
        ):
            continue
        cls = int(rng.integers(len(CLASSES)))
        alpha = _shape_alpha(rng, cls, bh, bw)[..., None]
        region = image[y0 : y0 + bh, x0 : x0 + bw]
        colour = rng.uniform(0, 255, size=3)
        if abs(colour.mean() - region.mean()) < 60:
            colour = np.where(region.mean() > 127, colour * 0.3, 255 - (255 - colour) * 0.3)
        ramp = np.linspace(rng.uniform(0.75, 1.0), rng.uniform(1.0, 1.25), bw, dtype=np.float32)
        fill = colour * ramp[None, :, None] + rng.normal(0, 5, size=(bh, bw, 1))
        image[y0 : y0 + bh, x0 : x0 + bw] = alpha * fill + (1 - alpha) * region
        boxes.append(box)
        classes.append(cls)
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(0, 6))
    return Scene(
        np.clip(image, 0, 255).astype(np.uint8),
        np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        np.asarray(classes, dtype=np.int64),
    )


def scene(size: int, seed: int, index: int, stream: str = "held_out") -> Scene:
    """Scene `index` of (stream, seed), for a model input of size x size: its own size
    is random (long side 0.75..1.5 x size, aspect 0.6..1, either orientation) and its
    objects are drawn at the matching scale."""
    rng = np.random.default_rng([STREAMS[stream], seed, index, size])
    scale = rng.uniform(0.75, 1.5)
    long_side = max(8, round(size * scale))
    short_side = max(8, round(long_side * rng.uniform(0.6, 1.0)))
    h, w = (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)
    return render_scene(rng, h, w, scale)


def make_scenes(n: int, size: int, seed: int = 0, stream: str = "held_out") -> list[Scene]:
    """`n` scenes for a size x size model input."""
    return [scene(size, seed, i, stream) for i in range(n)]


def letterboxed(scenes: list[Scene], size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Scenes -> (N x size x size x 3 uint8 letterboxed images, boxes in input pixels)."""
    batch, geometry = letterbox_batch([s.image for s in scenes], size)
    return batch, [g.to_input(s.boxes) for s, g in zip(scenes, geometry, strict=True)]
