"""``streamseg serve CAMERAS.yaml [--ray ADDRESS] [--api-port PORT]``: live cameras kept running, on one machine
or placed across a Ray cluster and moved when a node dies."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from streamseg.cli.command import Command, examples
from streamseg.cli.flags import config_option
from streamseg.cli.run import build_config

DEFAULT_API_PORT = 8585


@click.command(
    cls=Command,
    epilog=examples(
        "streamseg serve cams.yaml --api-port 8585",
        "ray start --head --port 6379 && streamseg serve cams.yaml --ray 127.0.0.1:6379",
        "streamseg serve cams.yaml --ray auto --cameras-per-node 4 -o 'rec/{node}/{name}.mp4'",
        "curl -H \"Authorization: Bearer $(cat TOKEN_FILE)\" -H 'Content-Type: application/json' "
        '-d \'{"uri": "rtsp://cam/5"}\' http://127.0.0.1:8585/cameras',
    ),
)
@click.argument("cameras", type=click.Path(dir_okay=False))
@click.option("--ray", "ray_address", help="A Ray cluster's address (or auto): one node pipeline per node or GPU.")
@click.option(
    "--api-port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_API_PORT,
    show_default=True,
    help="The fleet API: /cameras, /nodes, /metrics, /sd.",
)
@click.option(
    "--cameras-per-node",
    type=click.IntRange(min=1),
    help="Cameras a node pipeline holds [default: measured at its start; one machine: all].",
)
@click.option(
    "--camera-fps",
    type=click.FloatRange(min=0, min_open=True),
    default=25.0,
    show_default=True,
    help="The cameras' frame rate that measured capacity plans for.",
)
@config_option("model", help="Built-in name (see `models list`), NAME:int8, or PATH.onnx [default: the file's].")
@config_option("backend", help="Inference backend on every node [default: auto].")
@config_option("threads", type=click.IntRange(min=1), help="Inference threads per node pipeline.")
@config_option("input_size", type=click.IntRange(min=16), help="Short side of the model input.")
@config_option("interval", type=click.IntRange(min=1), help="Infer every Nth frame [default: 1].")
@config_option(
    "outputs", multiple=True, default=(), help="Video output template: {name}, {index}, {node} (repeatable)."
)
@config_option("labels_out", help="Folder template for label maps: {name}, {index}, {node}.")
@config_option("summary", help="Per-frame summary file template.")
@config_option("segment_seconds", type=float, help="Record file outputs in N-second segments.")
@config_option("serve_host", help="Interface for the API and each node's /metrics [default: 127.0.0.1].")
@config_option(
    "api_token_file", help="Take the fleet API token from this file [default: a new one; its path is printed]."
)
@config_option("input_root", help="POST /cameras may read files under this folder only [default: none may].")
@config_option(
    "output_root", help="POST /cameras may write under this folder only [default: the outputs' own folders]."
)
@config_option("allow_loopback_sources", help="Let POSTed http(s):// and tcp:// cameras reach this machine.")
def serve(
    cameras: str,
    ray_address: str | None,
    api_port: int,
    cameras_per_node: int | None,
    camera_fps: float,
    **flags: Any,
) -> None:
    """Keep the cameras of CAMERAS.yaml (a `run --config` file: its `sources:` list and the options they share)
    running: on this machine, or with --ray placed across the nodes of a Ray cluster, each node running one
    pipeline for its cameras, and moved to the others when a node dies. Ctrl-C stops every camera and
    finalizes every file."""
    from streamseg.fleet.api import FleetServer
    from streamseg.fleet.cluster import LocalNodes, RayNodes
    from streamseg.fleet.config import fleet_from
    from streamseg.fleet.controller import Controller

    config = build_config(flags, None, cameras)
    fleet = fleet_from(config, cameras)
    if not fleet.cameras:
        raise click.UsageError(f"{cameras}: no cameras (a `sources:` list)")
    nodes = RayNodes(ray_address) if ray_address else LocalNodes()
    controller = Controller(nodes, fleet, capacity=cameras_per_node, camera_fps=camera_fps)
    if not controller.fresh:
        click.echo("streamseg: re-attached to the running fleet (its cameras, not the file's)", err=True)
    try:
        server = FleetServer(controller, api_port, fleet.run.serve_host, fleet.run.api_token_file)
    except BaseException:
        if controller.fresh:
            controller.shutdown()
        else:  # the port is taken: the fleet this serve re-attached to keeps running
            controller.detach()
        raise
    stopping = threading.Event()
    try:
        click.echo(f"streamseg: fleet API at {server.url} (cameras, nodes, metrics, sd)", err=True)
        click.echo(
            f"streamseg: API token in {server.token.path} (POST/DELETE /cameras: Authorization: Bearer TOKEN)", err=True
        )
        _stop_on_signals(stopping)
        controller.serve(stopping)
    finally:
        click.echo("streamseg: stopping every camera, finalizing outputs", err=True)
        controller.shutdown()
        server.close()
    click.echo("streamseg: stopped", err=True)


def _stop_on_signals(stopping: threading.Event) -> None:
    def handler(signum, frame):
        stopping.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
