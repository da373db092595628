"""The events' figures for ``/metrics``: coverage now, events started, regions with an event on, the webhook."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from streamseg.events.bus import EventBus


def event_metrics(core: Any, bus: EventBus, coverage: dict[str, dict[str, dict[str, float]]]) -> Iterator[Any]:
    """Prometheus metric families; ``coverage`` is each source's newest (region -> class -> share)."""
    if not coverage and not bus.regions:
        return
    gauge = core.GaugeMetricFamily(
        "streamseg_region_coverage",
        "Share of a region's pixels a class holds, on the newest frame (the rules' classes, or all: --coverage all)",
        labels=["source", "region", "class"],
    )
    for source, shares in sorted(coverage.items()):
        for region, classes in shares.items():
            for name, share in classes.items():
                gauge.add_metric([source, region, name], share)
    yield gauge
    started = core.CounterMetricFamily(
        "streamseg_events", "Events started, by source and rule", labels=["source", "rule"]
    )
    for (source, rule), count in sorted(bus.started.items()):
        started.add_metric([source, rule], count)
    yield started
    active = core.GaugeMetricFamily(
        "streamseg_region_event_active", "1 while a region has an event on", labels=["source", "region"]
    )
    for source, polygons in sorted(bus.regions.items()):
        on = bus.active(source)
        for polygon in polygons:
            active.add_metric([source, polygon.name], 1.0 if polygon.name in on else 0.0)
    yield active
    if bus.webhook is not None:
        hook = core.CounterMetricFamily(
            "streamseg_webhook_messages", "Webhook messages by outcome (dropped: queue full)", labels=["outcome"]
        )
        for outcome in ("sent", "failed", "dropped"):
            hook.add_metric([outcome], getattr(bus.webhook, outcome))
        yield hook
