"""Class fractions back out of a streamseg MCAP file, for ``streamseg report``.

Read with the mcap library's streaming reader, record by record, so the file of a killed run (no summary,
cut mid-chunk) still gives every frame up to its last complete chunk.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.errors import ConfigError, MissingExtraError, SourceError

log = logging.getLogger(__name__)
SUFFIX = "/class_fractions"


@dataclass
class McapFractions:
    classes: tuple[str, ...]
    clock: str  # "media time ..." or "capture time ..." (see McapSink)
    index: list[int]  # frame indices, per the message sequence numbers
    stamps: list[int]  # nanoseconds
    fractions: list[np.ndarray]  # (C,) per frame
    truncated: bool  # the file ended mid-record: a run that was killed


def read_class_fractions(path: Path, source: str | None = None) -> McapFractions:
    """One source's ``/streamseg/<source>/class_fractions`` messages; ``source`` may be omitted with one source."""
    try:
        from mcap.exceptions import McapError
        from mcap.records import Channel, Message, Metadata, Schema
        from mcap.stream_reader import CRCValidationError, StreamReader
        from mcap_ros2.decoder import DecoderFactory
    except ImportError:
        raise MissingExtraError("reading MCAP files", "ros") from None
    classes, clock = None, ""
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    decoders: dict[int, Callable[[bytes], Any]] = {}
    index, stamps, fractions = [], [], []
    truncated = False
    try:
        with open(path, "rb") as file:
            try:
                for record in StreamReader(file, skip_magic=False).records:
                    if isinstance(record, Metadata) and record.name == "streamseg":
                        classes = tuple(json.loads(record.metadata["classes"]))
                        clock = record.metadata.get("clock", "")
                    elif isinstance(record, Schema):
                        schemas[record.id] = record
                    elif isinstance(record, Channel) and record.topic.endswith(SUFFIX):
                        channels[record.id] = record
                    elif isinstance(record, Message) and record.channel_id in channels:
                        channel = channels[record.channel_id]
                        if source is None:
                            source = channel.topic.split("/")[2]
                        if channel.topic.split("/")[2] != source:
                            continue
                        decoder = decoders.get(channel.id)
                        if decoder is None:
                            decoder = DecoderFactory().decoder_for("cdr", schemas.get(channel.schema_id))
                            if decoder is None:
                                raise ConfigError(f"{path}: channel {channel.topic} has no ROS 2 (CDR) schema")
                            decoders[channel.id] = decoder
                        message = decoder(record.data)
                        index.append(record.sequence)
                        stamps.append(record.log_time)
                        fractions.append(np.asarray(message.data, dtype=float))
            except (McapError, EOFError, CRCValidationError) as err:
                if not index:
                    raise ConfigError(f"{path}: not a readable MCAP file ({type(err).__name__}: {err})") from None
                truncated = True
                log.warning(
                    "%s: the file ends early (%s); using the %d frames before that",
                    path,
                    type(err).__name__,
                    len(index),
                )
    except OSError as err:
        raise SourceError(f"{path}: cannot read: {err.strerror or err}") from None
    if classes is None:
        raise ConfigError(f"{path}: not a streamseg MCAP (no 'streamseg' metadata with the class names)")
    if not index:
        names = sorted({c.topic.split("/")[2] for c in channels.values()})
        wanted = f" for source {source!r} (sources: {', '.join(names) or 'none'})" if source else ""
        raise ConfigError(f"{path}: no class fractions{wanted}")
    return McapFractions(classes, clock, index, stamps, fractions, truncated)
