"""A synthetic, labeled street scene generator for tests and demos.

Each scene has a horizon, sky, buildings and verges (background), a road in
perspective with lane markings, sidewalks with tiles, and cars and people
scaled by their distance. Colors and textures are drawn at random per scene;
light level, color cast, gamma, a light gradient, shadows and sensor noise
vary per image. It is deterministic for a given seed.

It is not a substitute for real footage: the shapes are simple, every class
has a narrow look, and a model trained on it only learns this little world.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

CLASSES = ("background", "road", "sidewalk", "sky", "car", "person")
PALETTE = ((0, 0, 0), (128, 64, 128), (244, 35, 232), (70, 130, 180), (0, 0, 142), (220, 20, 60))  # Cityscapes'
BACKGROUND, ROAD, SIDEWALK, SKY, CAR, PERSON = range(len(CLASSES))


@dataclass
class Thing:
    """A car or a person standing at ``y`` (ground contact, pixels), centred at ``x``, moving ``vx`` px/s."""

    kind: int
    x: float
    y: float
    scale: float  # size relative to the image height
    color: tuple[int, int, int]
    second_color: tuple[int, int, int]
    vx: float = 0.0


@dataclass
class Scene:
    size: tuple[int, int]  # (height, width)
    horizon: float
    vanish_x: float
    road_half: float  # half road width at the bottom edge, pixels
    walk_width: float  # sidewalk width relative to the road half-width
    sky: tuple[tuple[int, int, int], tuple[int, int, int]]
    verge: tuple[int, int, int]
    asphalt: tuple[int, int, int]
    pavement: tuple[int, int, int]
    buildings: list[tuple[int, int, int, tuple[int, int, int]]]  # x0, x1, top y, color
    things: list[Thing] = field(default_factory=list)
    texture_seed: int = 0


def _color(rng: np.random.Generator, low: int, high: int) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(low, high, 3))
    return r, g, b


def _tint(rng: np.random.Generator, base: tuple[int, int, int], spread: int) -> tuple[int, int, int]:
    r, g, b = (int(np.clip(v + rng.integers(-spread, spread + 1), 0, 255)) for v in base)
    return r, g, b


def random_scene(rng: np.random.Generator, size: tuple[int, int] = (240, 320)) -> Scene:
    h, w = size
    horizon = h * rng.uniform(0.32, 0.5)
    buildings, x = [], -rng.uniform(0, 0.1) * w
    while x < w:
        width = w * rng.uniform(0.08, 0.25)
        top = horizon - h * rng.uniform(0.05, 0.3)
        buildings.append((int(x), int(x + width), int(top), _tint(rng, (120, 110, 100), 50)))
        x += width + w * rng.uniform(0, 0.06)
    scene = Scene(
        size=size,
        horizon=horizon,
        vanish_x=w * rng.uniform(0.35, 0.65),
        road_half=w * rng.uniform(0.45, 0.8),
        walk_width=rng.uniform(0.25, 0.5),
        sky=(_tint(rng, (110, 160, 220), 35), _tint(rng, (190, 205, 225), 30)),
        verge=_tint(rng, (80, 110, 60), 35),
        asphalt=_tint(rng, (90, 90, 95), 25),
        pavement=_tint(rng, (170, 160, 150), 30),
        buildings=buildings,
        texture_seed=int(rng.integers(2**31)),
    )
    for kind, count in ((CAR, rng.integers(0, 5)), (PERSON, rng.integers(0, 5))):
        for _ in range(count):
            scene.things.append(random_thing(rng, scene, kind))
    return scene


def random_thing(rng: np.random.Generator, scene: Scene, kind: int) -> Thing:
    h = scene.size[0]
    depth = rng.uniform(0.15, 1.0) ** 0.7  # 0 at the horizon, 1 at the bottom edge
    y = scene.horizon + depth * (h - scene.horizon)
    half = scene.road_half * depth
    if kind == CAR:
        x = scene.vanish_x + rng.uniform(-0.75, 0.75) * half
        return Thing(
            CAR,
            x,
            y,
            depth * rng.uniform(0.3, 0.4),
            _color(rng, 20, 235),
            _tint(rng, (40, 45, 55), 20),
            vx=rng.choice([-1, 1]) * rng.uniform(10, 30) * depth,
        )
    side = rng.choice([-1, 1])
    x = scene.vanish_x + side * half * (1 + rng.uniform(0.05, 0.95) * scene.walk_width)
    return Thing(
        PERSON,
        x,
        y,
        depth * rng.uniform(0.45, 0.6),
        _color(rng, 20, 235),
        _color(rng, 20, 160),
        vx=rng.choice([-1, 1]) * rng.uniform(3, 8) * depth,
    )


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Zero-mean cloudy noise in about -1..1, ``cells`` blobs across the short side."""
    h, w = shape
    small = rng.normal(0, 1, (max(2, cells * h // min(h, w)), max(2, cells * w // min(h, w)))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _fill(image, mask, polygon, color, label):
    points = np.round(np.asarray(polygon)).astype(np.int32)
    cv2.fillPoly(image, [points], color, lineType=cv2.LINE_AA)
    cv2.fillPoly(mask, [points], label)


def render(scene: Scene, light: Lighting, rng: np.random.Generator, t: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The RGB image and its class-id mask at time ``t`` seconds; ``rng`` draws the sensor noise."""
    h, w = scene.size
    tex = np.random.default_rng(scene.texture_seed)  # static textures stay put from frame to frame
    image = np.zeros((h, w, 3), np.float32)
    mask = np.full((h, w), BACKGROUND, np.uint8)
    hz = round(scene.horizon)

    # sky: vertical gradient with clouds
    ramp = np.linspace(0, 1, hz)[:, None, None]
    top, low = np.array(scene.sky[0], np.float32), np.array(scene.sky[1], np.float32)
    image[:hz] = top * (1 - ramp) + low * ramp
    image[:hz] += 25 * np.clip(_smooth_noise(tex, (hz, w), 4), 0, None)[..., None]
    mask[:hz] = SKY
    # ground below the horizon: textured verge
    image[hz:] = np.array(scene.verge, np.float32) + 18 * _smooth_noise(tex, (h - hz, w), 12)[..., None]
    for x0, x1, top_y, color in scene.buildings:
        _fill(image, mask, [(x0, top_y), (x1, top_y), (x1, hz + 2), (x0, hz + 2)], color, BACKGROUND)
        for wy in range(top_y + 4, hz - 4, 9):  # windows
            for wx in range(x0 + 3, x1 - 5, 8):
                image[wy : wy + 4, wx : wx + 4] *= 0.55

    vx, bottom = scene.vanish_x, h - 1
    half, walk = scene.road_half, scene.road_half * (1 + scene.walk_width)
    apex = w * 0.01
    for side in (-1, 1):
        _fill(
            image,
            mask,
            [
                (vx + side * apex, hz),
                (vx + side * apex * 2, hz),
                (vx + side * walk, bottom),
                (vx + side * half, bottom),
            ],
            scene.pavement,
            SIDEWALK,
        )
    _fill(
        image, mask, [(vx - apex, hz), (vx + apex, hz), (vx + half, bottom), (vx - half, bottom)], scene.asphalt, ROAD
    )
    grain = tex.normal(0, 6, (h, w)).astype(np.float32)
    image += np.where((mask == ROAD) | (mask == SIDEWALK), grain, 0)[..., None]
    _tiles_and_markings(image, mask, scene)

    for thing in sorted(scene.things, key=lambda th: th.y):  # far ones first, near ones occlude them
        x = (thing.x + thing.vx * t + 0.2 * w) % (w * 1.4) - 0.2 * w  # wrap around, entering from the far side
        (_draw_car if thing.kind == CAR else _draw_person)(image, mask, x, thing.y, thing.scale * h, thing)

    _light(image, light, rng)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def _tiles_and_markings(image: np.ndarray, mask: np.ndarray, scene: Scene) -> None:
    h = scene.size[0]
    hz = scene.horizon
    rows = np.arange(h, dtype=np.float32)
    depth = np.clip((rows - hz) / (h - hz), 1e-3, 1)
    # tile seams every fixed ground distance: 1/depth spaced lines
    seam = (np.mod(8.0 / depth, 1.0) < 0.12)[:, None]
    image *= np.where((mask == SIDEWALK) & seam, 0.8, 1.0)[..., None]
    # dashed centre line along the road axis
    dash = (np.mod(4.0 / depth, 1.0) < 0.5) & (rows > hz + 3)
    for y in np.nonzero(dash)[0]:
        half_w = max(0.5, 2.5 * depth[y])
        x0, x1 = int(scene.vanish_x - half_w), int(np.ceil(scene.vanish_x + half_w))
        image[y, max(0, x0) : max(0, x1)] = (235, 235, 225)


def _draw_car(image, mask, x, y, height, thing: Thing) -> None:
    width = height * 2.0
    body_top, cabin_top = y - height * 0.55, y - height
    _fill(
        image,
        mask,
        [
            (x - width * 0.55, y + height * 0.06),
            (x + width * 0.55, y + height * 0.06),
            (x + width * 0.45, y + height * 0.14),
            (x - width * 0.45, y + height * 0.14),
        ],
        tuple(0.5 * v for v in thing.second_color),
        ROAD,
    )  # shadow on the road: still road
    _fill(
        image,
        mask,
        [
            (x - width / 2, y - height * 0.1),
            (x + width / 2, y - height * 0.1),
            (x + width / 2, body_top),
            (x - width / 2, body_top),
        ],
        thing.color,
        CAR,
    )
    _fill(
        image,
        mask,
        [
            (x - width * 0.35, body_top),
            (x + width * 0.35, body_top),
            (x + width * 0.25, cabin_top),
            (x - width * 0.25, cabin_top),
        ],
        thing.color,
        CAR,
    )
    _fill(
        image,
        mask,
        [
            (x - width * 0.3, body_top - 1),
            (x + width * 0.3, body_top - 1),
            (x + width * 0.22, cabin_top + height * 0.08),
            (x - width * 0.22, cabin_top + height * 0.08),
        ],
        thing.second_color,
        CAR,
    )  # windows
    radius = max(1, int(height * 0.17))
    for wx in (x - width * 0.32, x + width * 0.32):
        center = (round(wx), round(y - height * 0.1))
        cv2.circle(image, center, radius, (20, 20, 22), -1, lineType=cv2.LINE_AA)
        cv2.circle(mask, center, radius, CAR, -1)
    for lx in (x - width * 0.45, x + width * 0.38):  # lights
        cv2.rectangle(
            image,
            (int(lx), int(body_top + 2)),
            (int(lx + width * 0.07), int(body_top + height * 0.12)),
            (240, 230, 180),
            -1,
        )


def _draw_person(image, mask, x, y, height, thing: Thing) -> None:
    head = height * 0.11
    shoulders, hips = y - height * 0.8, y - height * 0.45
    half = height * 0.13
    _fill(
        image,
        mask,
        [(x - half * 0.5, hips), (x - half * 0.15, hips), (x - half * 0.35, y), (x - half * 0.85, y)],
        thing.second_color,
        PERSON,
    )  # legs
    _fill(
        image,
        mask,
        [(x + half * 0.15, hips), (x + half * 0.5, hips), (x + half * 0.85, y), (x + half * 0.35, y)],
        thing.second_color,
        PERSON,
    )
    _fill(
        image,
        mask,
        [(x - half, shoulders), (x + half, shoulders), (x + half * 0.7, hips + 1), (x - half * 0.7, hips + 1)],
        thing.color,
        PERSON,
    )  # torso
    for side in (-1, 1):  # arms
        _fill(
            image,
            mask,
            [
                (x + side * half, shoulders),
                (x + side * half * 1.4, shoulders + 2),
                (x + side * half * 1.2, hips),
                (x + side * half * 0.9, hips),
            ],
            thing.color,
            PERSON,
        )
    center = (round(x), round(shoulders - head))
    radius = max(1, round(head))
    cv2.circle(image, center, radius, (200, 160, 130), -1, lineType=cv2.LINE_AA)
    cv2.circle(mask, center, radius, PERSON, -1)


@dataclass(frozen=True)
class Lighting:
    """Exposure, color cast, gamma, a light gradient, an optional cast shadow and sensor noise."""

    gain: float
    cast: tuple[float, float, float]
    gamma: float
    gradient: float
    angle: float
    shadow: tuple[tuple[float, float], ...] | None  # polygon in image fractions
    shade: float
    noise: float


def random_lighting(rng: np.random.Generator) -> Lighting:
    shadow = None
    if rng.random() < 0.5:  # a shadow band across the ground, as from a building
        x0 = rng.uniform(-0.2, 0.8)
        shadow = ((x0, 0.4), (x0 + 0.3, 0.4), (x0 + rng.uniform(0.3, 0.9), 1.0), (x0 + rng.uniform(-0.4, 0.1), 1.0))
    return Lighting(
        gain=rng.uniform(0.55, 1.35),
        cast=tuple(rng.uniform(0.88, 1.12, 3)),
        gamma=rng.uniform(0.8, 1.25),
        gradient=rng.uniform(0, 0.35),
        angle=rng.uniform(0, 2 * np.pi),
        shadow=shadow,
        shade=rng.uniform(0.5, 0.8),
        noise=rng.uniform(2, 8),
    )


def _light(image: np.ndarray, light: Lighting, rng: np.random.Generator) -> None:
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (xx / w - 0.5) * np.cos(light.angle) + (yy / h - 0.5) * np.sin(light.angle)
    image *= (light.gain * (1 + light.gradient * ramp))[..., None] * np.array(light.cast, np.float32)
    if light.shadow is not None:
        shade = np.ones((h, w), np.float32)
        cv2.fillPoly(shade, [np.array([(x * w, y * h) for x, y in light.shadow], np.int32)], light.shade)
        image *= cv2.GaussianBlur(shade, (0, 0), 3)[..., None]
    np.clip(image, 0, 255, out=image)
    image[:] = 255 * (image / 255) ** light.gamma
    image += rng.normal(0, light.noise, image.shape).astype(np.float32)
