"""The downstream sinks a run's options ask for (``--mcap``/``-o X.mcap``, ``--foxglove``, ``--mqtt``, ``--kafka``)."""

from __future__ import annotations

from typing import Any

from streamseg.models.spec import ModelSpec


def open_downstream_sinks(cfg: Any, spec: ModelSpec, live: bool) -> list:
    """Each sink serves every source of the run; ``live`` picks capture time over media time for stamps.

    On failure the sinks already opened are closed before the error propagates.
    """
    sinks: list = []
    try:
        if cfg.mcap:
            from streamseg.outputs.messages.mcap_sink import McapSink

            sinks.append(McapSink(cfg.mcap, spec.classes, spec.colors, live=live))
        if cfg.foxglove_port is not None:
            from streamseg.outputs.messages.foxglove_sink import FoxgloveSink

            sinks.append(
                FoxgloveSink(
                    cfg.foxglove_port, spec.classes, live=live, host=cfg.serve_host, origins=cfg.foxglove_origins
                )
            )
        if cfg.mqtt:
            from streamseg.outputs.messages.mqtt_sink import MqttSink

            sinks.append(
                MqttSink(
                    cfg.mqtt,
                    spec.classes,
                    live=live,
                    labels=cfg.mqtt_labels,
                    reconnect_delay=cfg.live.reconnect_delay,
                    reconnect_max_delay=cfg.live.reconnect_max_delay,
                )
            )
        if cfg.kafka:
            from streamseg.outputs.messages.kafka_sink import KafkaSink

            sinks.append(
                KafkaSink(
                    cfg.kafka,
                    spec.classes,
                    live=live,
                    labels=cfg.mqtt_labels,
                    reconnect_delay=cfg.live.reconnect_delay,
                    reconnect_max_delay=cfg.live.reconnect_max_delay,
                )
            )
    except BaseException:
        for sink in sinks:
            sink.close(complete=False)
        raise
    return sinks
