"""What a ``POST /sources`` may touch: its files under the roots the run was given, its URLs not this machine.

- Outputs (videos, label folders, summaries) must resolve, symlinks followed, under ``--output-root``;
  by default under the folders of the run's own outputs, or the working folder.
- File sources must lie under ``--input-root``; without one, a request may name no file at all.
- Network sources use a scheme the table in ``streamseg.uris`` reads as live; ``http``, ``https`` and ``tcp`` to this
  machine (loopback, link-local, unspecified) are refused unless ``--allow-loopback-sources``.

The person who starts the run (its flags, config file and Python caller) is trusted and not confined;
a request is only as trusted as its token, so it is. ``Pipeline.add_source`` still refuses collisions
with everything the run writes or reads.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from streamseg.errors import StreamsegError
from streamseg.logs import redact
from streamseg.uris import is_local_path, local_path, network_schemes, scheme_of

if TYPE_CHECKING:
    from streamseg.config import RunConfig, SourceSpec
    from streamseg.outputs.naming import SourceOutputs

LOOPBACK_GUARDED = ("http", "https", "tcp")  # they can reach a local admin page (server-side request forgery)


class Forbidden(StreamsegError, PermissionError):
    """A request asks for something its rules do not allow; answered with 403 and the reason."""


@dataclass(frozen=True)
class Confinement:
    output_roots: tuple[str, ...]  # real paths
    input_root: str | None
    allow_loopback: bool = False

    @classmethod
    def from_config(cls, config: RunConfig) -> Confinement:
        if config.output_root:
            roots = [config.output_root]
        else:
            roots = list(_output_folders(config)) or [os.getcwd()]
        return cls(
            output_roots=tuple(dict.fromkeys(os.path.realpath(r) for r in roots)),
            input_root=os.path.realpath(config.input_root) if config.input_root else None,
            allow_loopback=config.allow_loopback_sources,
        )

    def check_source(self, uri: str) -> None:
        """Raise Forbidden for a file outside ``--input-root``, a scheme not allowed, or a loopback URL."""
        scheme = scheme_of(uri).name
        if is_local_path(uri):
            path = local_path(uri)
            if self.input_root is None:
                raise Forbidden("file sources need --input-root DIR on the run (none was given)")
            if not _inside(os.path.realpath(path), self.input_root):
                raise Forbidden(f"source {path}: not under --input-root {self.input_root}")
            return
        network = network_schemes()
        if scheme not in network:
            raise Forbidden(f"source {scheme}:…: use a file or one of {', '.join(s + '://' for s in network)}")
        if scheme in LOOPBACK_GUARDED and not self.allow_loopback and _reaches_this_machine(uri):
            raise Forbidden(
                f"source {redact(uri)}: {scheme} to this machine is refused (--allow-loopback-sources allows it)"
            )

    def check_outputs(self, spec: SourceSpec, outputs: SourceOutputs, config: RunConfig) -> None:
        """Raise Forbidden for an output that would write outside the output roots."""
        for place in outputs.paths(config):
            self._check_output(place.what, place.path)
        if config.encoder.segment_seconds is not None:  # segment patterns write new files: their folders count
            for uri in outputs.videos:
                if is_local_path(uri):
                    self._check_output("-o", local_path(uri))

    def _check_output(self, what: str, path: str) -> None:
        real = os.path.realpath(path)
        if not any(_inside(real, root) for root in self.output_roots):
            where = " or ".join(self.output_roots)
            raise Forbidden(f"{what} {path}: resolves to {real}, outside the output root {where} (--output-root)")


def _output_folders(config: RunConfig) -> Iterable[str]:
    """The folders the run's own outputs write into (templates cut at their first field)."""
    places = [*config.outputs, config.labels_out, config.summary, config.mcap]
    for source in config.sources:
        places += [*(source.outputs or ()), source.labels_out, source.summary]
    for place in places:
        if not place:
            continue
        row = scheme_of(place)
        if row.writes == "hls":
            path = place[len("hls:") :] + "/"
        elif row.local:
            path = local_path(place)
        else:
            continue
        fixed = path.split("{", 1)[0]  # out/{name}.mp4 -> out/ ; labels/{name} -> labels/
        yield os.path.dirname(fixed) or "."


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _reaches_this_machine(uri: str) -> bool:
    """Whether the URL's host is, or resolves to, a loopback, link-local or unspecified address."""
    try:
        host = urlsplit(uri).hostname
    except ValueError:
        return True  # unparseable: refuse rather than guess
    if not host:
        return True
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False  # does not resolve: FFmpeg cannot reach it either
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified:
            return True
        mapped = getattr(ip, "ipv4_mapped", None)
        if mapped is not None and (mapped.is_loopback or mapped.is_link_local or mapped.is_unspecified):
            return True
    return False
