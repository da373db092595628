"""A model described as data: what goes in, what comes out, what the classes are.

A spec is enough to run any segmentation ONNX: the pipeline reads input and
output names, layout, color order, normalization, resize rule, classes,
palette and output decoding from it, and nothing from the model's name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streamseg.errors import ConfigError
from streamseg.models.palettes import voc_palette
from streamseg.yamlfile import describe_validation_error, load_yaml

Channel = Annotated[int, Field(ge=0, le=255)]
RGB = tuple[Channel, Channel, Channel]
Triple = tuple[float, float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Normalize(_Strict):
    """``(pixel * range / 255 - mean) / std``, per channel in the model's color order."""

    range: Literal[1, 255] = 1  # 1: mean/std on 0-1 pixels; 255: on 0-255 pixels
    mean: Triple
    std: Triple | None = None  # None: mean subtraction only

    @model_validator(mode="after")
    def _std_positive(self) -> Normalize:
        if self.std is not None and min(self.std) <= 0:
            raise ValueError("std values must be > 0")
        return self


class Resize(_Strict):
    """How a frame becomes the model input.

    ``short_side``: scale so the short side is ``size`` (dynamic H/W models).
    ``letterbox``: scale to fit inside ``size`` (H, W) keeping aspect, pad the rest.
    ``stretch``: scale to exactly ``size`` (H, W). ``none``: keep the frame size.
    """

    mode: Literal["short_side", "letterbox", "stretch", "none"]
    size: int | tuple[int, int] | None = None
    pad_multiple: int = Field(1, ge=1)  # pad right/bottom to a multiple of this

    @model_validator(mode="after")
    def _size_fits_mode(self) -> Resize:
        if self.mode == "short_side" and not isinstance(self.size, int):
            raise ValueError("short_side needs size: <int>")
        if self.mode in ("letterbox", "stretch") and not isinstance(self.size, tuple):
            raise ValueError(f"{self.mode} needs size: [height, width]")
        return self

    @property
    def short_side(self) -> int:
        """The target short side of a ``short_side`` rule."""
        if not isinstance(self.size, int):
            raise ConfigError(f"resize {self.mode} {self.size} has no short side")
        return self.size

    @property
    def fixed_size(self) -> tuple[int, int]:
        """(H, W) of a ``letterbox`` or ``stretch`` rule."""
        if not isinstance(self.size, tuple):
            raise ConfigError(f"resize {self.mode} {self.size} has no fixed [height, width]")
        return self.size


class Decode(_Strict):
    """How the raw output becomes a label map.

    ``argmax``: (1, C, h, w) scores; labels are the argmax, upsampled (nearest).
    ``labels``: (1, h, w) or (1, 1, h, w) class ids already.
    ``duc``: dense upsampling convolution output (1, C, h*w*r*r) as in the ONNX
    model zoo's ResNet101-DUC: a (r x r) sub-pixel grid per cell of ``cell``
    input pixels; scores are resized to the frame, then argmaxed.
    """

    kind: Literal["argmax", "labels", "duc"] = "argmax"
    cell: int = Field(8, ge=1)  # duc: input pixels per output cell
    subpixels: int = Field(4, ge=1)  # duc: r, sub-pixels per cell side


class ModelSource(_Strict):
    url: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int | None = None


class ModelSpec(_Strict):
    name: str
    input_name: str = "input"
    output_name: str = "out"
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    color_order: Literal["RGB", "BGR"] = "RGB"
    # uint8: the model takes pictures as they are, (N, H, W, 3) in color_order, and normalizes inside
    # (``normalize`` then says how, and padding takes its mean color): OpenVINO's in-engine preprocessing
    dtype: Literal["float32", "float16", "uint8"] = "float32"
    normalize: Normalize
    resize: Resize
    decode: Decode = Decode()
    classes: tuple[str, ...] = Field(min_length=1, max_length=256)
    palette: tuple[RGB, ...] | None = None  # default: the VOC colormap
    background: int | None = 0  # class not drawn by the overlay; None draws all
    source: ModelSource | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.palette is not None and len(self.palette) != len(self.classes):
            raise ValueError(f"palette has {len(self.palette)} colors for {len(self.classes)} classes")
        if self.background is not None and not 0 <= self.background < len(self.classes):
            raise ValueError(f"background {self.background} is not a class index")
        if self.dtype == "uint8" and self.layout != "NHWC":
            raise ValueError("dtype uint8 takes pictures: layout must be NHWC")
        return self

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def colors(self) -> tuple[tuple[int, int, int], ...]:
        return self.palette if self.palette is not None else voc_palette(self.num_classes)

    def with_short_side(self, size: int | None, option: str = "input_size") -> ModelSpec:
        """This spec with its short-side target replaced by ``size`` (``--size``); None keeps it.

        ``option`` names the setting in the error a fixed-size model raises.
        """
        if size is None:
            return self
        if self.resize.mode != "short_side":
            raise ConfigError(f"{option}: {self.name} resizes by {self.resize.mode}, not short_side")
        return self.model_copy(update={"resize": self.resize.model_copy(update={"size": size})})

    def as_pictures(self) -> ModelSpec:
        """This spec's input as an engine that normalizes in its own graph takes it: RGB uint8 pictures, NHWC."""
        return self.model_copy(update={"dtype": "uint8", "layout": "NHWC", "color_order": "RGB"})

    def to_json(self) -> str:
        return self.model_dump_json()  # None values too: background=None means "draw every class"

    @classmethod
    def from_mapping(cls, data: object, where: str = "spec") -> ModelSpec:
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ConfigError(describe_validation_error(err, where)) from None

    @classmethod
    def from_json(cls, text: str, where: str = "spec") -> ModelSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{where}: not valid JSON ({err})") from None
        return cls.from_mapping(data, where)

    @classmethod
    def from_yaml(cls, path: str | Path) -> ModelSpec:
        data = load_yaml(path)
        if isinstance(data, dict) and "spec" in data:  # a run config holding a spec
            return cls.from_mapping(data["spec"], f"{path}: spec")
        return cls.from_mapping(data, str(path))
