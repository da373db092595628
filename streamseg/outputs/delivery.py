"""What each output actually delivered, so a run that reached nobody does not report success."""

from __future__ import annotations

from collections.abc import Iterable

from streamseg.errors import SinkError


def delivery_counts(sinks: Iterable[object]) -> dict[str, int]:
    """Frames each output wrote or sent (not frames handed to it), by output name."""
    return {getattr(sink, "name", type(sink).__name__): sink.delivered for sink in sinks if hasattr(sink, "delivered")}


def undelivered(sinks: Iterable[object]) -> list[str]:
    """Names of stream outputs that were handed frames but delivered none (their target never took one)."""
    return [
        sink.name
        for sink in sinks
        if hasattr(sink, "name")
        and hasattr(sink, "dropped")
        and hasattr(sink, "delivered")
        and sink.delivered == 0
        and sink.dropped > 0
    ]


def check_delivered(sinks: Iterable[object]) -> None:
    """Raise SinkError (exit 2) when a stream output delivered nothing of what it was handed."""
    sinks = list(sinks)
    silent = undelivered(sinks)
    if silent:
        dropped = sum(
            sink.dropped for sink in sinks if hasattr(sink, "dropped") and getattr(sink, "name", None) in silent
        )
        raise SinkError(
            f"no frames delivered to {', '.join(silent)} ({dropped} frames dropped: the output could not be reached)"
        )


def output_links(sinks: Iterable[object]) -> dict[str, int]:
    """Reconnects of the outputs that reconnect (streams, brokers), and frames they dropped while down."""
    streams = [sink for sink in sinks if hasattr(sink, "reconnects") and hasattr(sink, "dropped")]
    if not streams:
        return {}
    return {"output_reconnects": sum(s.reconnects for s in streams), "output_dropped": sum(s.dropped for s in streams)}
