"""Outputs for downstream tools: ROS 2 messages in MCAP files, a live Foxglove server, MQTT and Kafka events.

Each sink serves every source of a run: topics are per ``Result.source``, created when a source's first
frame arrives. Each needs an extra (``ros``, ``foxglove``, ``mqtt``, ``kafka``), imported only when used.
"""
