"""The fleet API on ``--api-port``: cameras and nodes, changed under the run API's rules
(``streamseg.outputs.servers.access``: a bearer token, JSON bodies, the server's own Origin), and fleet metrics.

- ``GET /cameras``: name, node, state, fps, dropped, last_frame_age_s of every camera;
- ``GET /nodes``: node, address, capacity and cameras of every node pipeline;
- ``POST /cameras`` (a ``sources:`` entry as JSON): placed on the node with the most room;
- ``DELETE /cameras/NAME``;
- ``GET /metrics``: fleet gauges (cameras by state, nodes, capacity, moves);
- ``GET /sd``: Prometheus HTTP service discovery, one target per node pipeline's own ``/metrics``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from streamseg.errors import StreamsegError
from streamseg.logs import redact
from streamseg.outputs.servers.access import AccessRules, ApiToken, parse_json_body
from streamseg.outputs.servers.confine import Forbidden
from streamseg.outputs.servers.http import BackgroundServer, QuietHandler

MAX_BODY = 64 * 1024  # bytes of a POST /cameras body
STATES = ("unplaced", "opening", "running", "reconnecting", "moving", "ended", "failed")
PATHS = ["/cameras", "/nodes", "/metrics", "/sd"]


class FleetServer:
    """Serves ``controller`` (``streamseg.fleet.controller.Controller``) on ``host:port``.

    Changes need ``token``: the caller's own (``--api-token-file``), else a new one in the user's runtime folder.
    """

    def __init__(self, controller: Any, port: int, host: str = "127.0.0.1", token_file: str | None = None):
        self.controller = controller
        self.token = ApiToken.from_file(token_file) if token_file else ApiToken.create()
        self.access = AccessRules("on", self.token)
        try:
            self._server = BackgroundServer("fleet API", "--api-port", _FleetHandler, self, port, host)
        except BaseException:
            self.token.close()
            raise
        self.port, self.url = self._server.port, self._server.url

    def metrics(self) -> str:
        """Prometheus text: the fleet's own gauges (each node pipeline serves its own /metrics, see /sd)."""
        cameras, nodes = self.controller.cameras(), self.controller.node_rows()
        lines = [
            "# HELP streamseg_fleet_cameras Cameras by state",
            "# TYPE streamseg_fleet_cameras gauge",
            *(
                f'streamseg_fleet_cameras{{state="{state}"}} {sum(1 for c in cameras if c["state"] == state)}'
                for state in STATES
            ),
            "# HELP streamseg_fleet_nodes Node pipelines, by state",
            "# TYPE streamseg_fleet_nodes gauge",
            *(
                f'streamseg_fleet_nodes{{state="{state}"}} {sum(1 for n in nodes if n["state"] == state)}'
                for state in ("ready", "starting")
            ),
            "# HELP streamseg_fleet_capacity Cameras the ready node pipelines can hold",
            "# TYPE streamseg_fleet_capacity gauge",
            f"streamseg_fleet_capacity {sum(n['capacity'] or 0 for n in nodes)}",
            "# HELP streamseg_fleet_moves_total Cameras moved off a node that died",
            "# TYPE streamseg_fleet_moves_total counter",
            f"streamseg_fleet_moves_total {self.controller.moves}",
        ]
        return "\n".join(lines) + "\n"

    def targets(self) -> list[dict[str, Any]]:
        """``/sd``: Prometheus's HTTP service-discovery format."""
        return [
            {"targets": [row["metrics"]], "labels": {"node": row["node"], "address": row["address"]}}
            for row in self.controller.node_rows()
            if row["metrics"]
        ]

    def close(self) -> None:
        self._server.close()
        self.token.close()


class _FleetHandler(QuietHandler):
    @property
    def fleet(self) -> FleetServer:
        return self.app

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/cameras":
            self.send_json(self.fleet.controller.cameras())
        elif path == "/nodes":
            self.send_json(self.fleet.controller.node_rows())
        elif path == "/metrics":
            self.send_body(self.fleet.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/sd":
            self.send_json(self.fleet.targets())
        else:
            self.send_json({"error": "not found", "paths": PATHS}, 404)

    def do_POST(self) -> None:
        """``POST /cameras`` with one ``sources:`` entry as JSON."""
        if self.refused_by(self.fleet.access):  # the run API's rules: Origin, token, Content-Type
            return
        if self.path.split("?", 1)[0] != "/cameras":
            self.send_json({"error": "not found"}, 404)
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                raise ValueError(f"a JSON body of 1..{MAX_BODY} bytes is needed")
            placed = self.fleet.controller.add_camera(parse_json_body(self.rfile.read(length)))
        except Forbidden as err:
            self.send_json({"error": redact(str(err))}, 403)
            return
        except (ValueError, StreamsegError) as err:
            self.send_json({"error": redact(str(err))}, 400)
            return
        self.send_json(placed, 201)

    def do_DELETE(self) -> None:
        """``DELETE /cameras/NAME``: the camera stops wherever it runs; its outputs are finalized."""
        if self.refused_by(self.fleet.access):  # the run API's rules: Origin, token, Content-Type
            return
        path = self.path.split("?", 1)[0]
        if not path.startswith("/cameras/"):
            self.send_json({"error": "not found"}, 404)
            return
        name = unquote(path[len("/cameras/") :])
        try:
            self.fleet.controller.remove_camera(name)
        except KeyError:
            self.send_json({"error": f"no camera named {name!r}"}, 404)
            return
        self.send_json({"removed": name}, 200)
