"""CAMERAS.yaml: the ``sources:`` list that ``run --config`` takes, plus the run options every camera shares.

Each camera gets its final name here (as ``run`` names sources), and its outputs are filled in for the node it
runs on: ``{name}``, ``{index}`` (its place in the fleet) and ``{node}``. A camera that starts again (moved to
another node, or its node pipeline restarted) writes its files as a new segment, ``cam-00002.mp4``, the
counted naming of ``--segment-seconds``, so it never overwrites what it wrote before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from streamseg.config import RunConfig, SourceSpec
from streamseg.errors import ConfigError
from streamseg.outputs.naming import SourceOutputs, check_name, expand, source_name, unique_names
from streamseg.outputs.paths import OutputPath, check_output_paths
from streamseg.yamlfile import describe_validation_error

NODE_FOR_CHECKS = "node"  # {node} while checking that cameras' outputs don't collide


@dataclass(frozen=True)
class Fleet:
    """The shared run options (``run.sources`` empty) and every camera, named."""

    run: RunConfig
    cameras: tuple[SourceSpec, ...]


def fleet_from(config: RunConfig, where: str = "the fleet") -> Fleet:
    """CAMERAS.yaml as read (flags on top): the cameras named, their outputs checked against each other."""
    if config.model is None:
        raise ConfigError(f"{where}: model: no model given (model: NAME in the file, or --model)")
    cameras = name_cameras(list(config.sources))
    run = config.model_copy(update={"sources": ()})
    check_outputs(run, cameras)
    return Fleet(run, cameras)


def name_cameras(specs: list[SourceSpec], taken: list[str] | tuple[str, ...] = ()) -> tuple[SourceSpec, ...]:
    """Every camera with its name: its own (checked, unique), else one from its URI, as ``run`` names sources."""
    given = [check_name(s.name) for s in specs if s.name]
    clash = sorted({n for n in given if given.count(n) > 1 or n in taken})
    if clash:
        raise ConfigError(f"camera name {clash[0]!r} is used twice")
    auto = unique_names([source_name(s.uri) for s in specs if not s.name], [*given, *taken])
    return tuple(s if s.name else s.model_copy(update={"name": auto.pop(0)}) for s in specs)


def parse_camera(body: Any, taken: list[str]) -> SourceSpec:
    """A ``POST /cameras`` body (one ``sources:`` entry: a mapping, or a URI) as a named camera."""
    if isinstance(body, str):
        body = {"uri": body}
    if not isinstance(body, dict):
        raise ConfigError("the body must be a JSON object: one `sources:` entry (uri, name, outputs…)")
    try:
        spec = SourceSpec.model_validate(body)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err, "camera")) from None
    (named,) = name_cameras([spec], taken)
    return named


def placed_source(run: RunConfig, camera: SourceSpec, index: int, node: str, segment: int) -> SourceSpec:
    """``camera`` with its outputs filled in for ``node``; from its second start on, file outputs are a new segment."""
    assert camera.name is not None, "cameras are named when the fleet loads"

    def fill(template: str, video: bool) -> str:
        path = expand(template, camera.name or "", index, node)
        return segment_path(path, segment, video and run.encoder.segment_seconds is not None)

    videos = camera.outputs if camera.outputs is not None else run.outputs
    labels = camera.labels_out or run.labels_out
    summary = camera.summary or run.summary
    return camera.model_copy(
        update={
            "outputs": tuple(fill(v, video=True) for v in videos),
            "labels_out": fill(labels, video=False) if labels else None,
            "summary": fill(summary, video=False) if summary else None,
        }
    )


def segment_path(path: str, segment: int, segmented: bool) -> str:
    """``out/cam.mp4`` as segment ``n`` (``out/cam-0000n.mp4``); streams, the first segment and --segment-seconds
    recordings (whose sink never overwrites a file) keep their name."""
    if segment <= 1 or segmented or "://" in path or path.startswith("hls:"):
        return path
    stripped = path.rstrip("/")
    place = Path(stripped)
    return str(place.with_name(f"{place.stem}-{segment:05d}{place.suffix}"))


def check_outputs(run: RunConfig, cameras: tuple[SourceSpec, ...], present: tuple[SourceSpec, ...] = ()) -> None:
    """Cameras' files never collide with each other (or an input), whichever nodes they land on."""
    every = [*present, *cameras]
    places: list[OutputPath] = []
    for index, camera in enumerate(every):
        placed = placed_source(run, camera, index, NODE_FOR_CHECKS, 1)
        outputs = SourceOutputs(placed.outputs or (), placed.labels_out, placed.summary)
        places.extend(outputs.paths(run, placed.name))
    check_output_paths([c.uri for c in every], places)
