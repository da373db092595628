"""Each source's name and output paths: templates expanded per source (``outputs.paths`` checks them).

Output paths and URLs are templates: ``{name}`` is the source's name (a file's
stem, or a URL's host and path, made unique with ``-2``, ``-3`` …) and
``{index}`` its position; under ``streamseg serve``, ``{node}`` is the node it runs on.
One source may use plain paths, as it always could.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from streamseg.errors import ConfigError
from streamseg.logs import redact
from streamseg.outputs.paths import OutputOptions, OutputPath, output_paths
from streamseg.uris import is_local_path, local_path

if TYPE_CHECKING:
    from streamseg.events.source import SourceEvents

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
FIELDS = ("name", "index", "node")


def source_name(uri: str) -> str:
    """A short name for ``uri``: a file's stem, a URL's host and path (no credentials), a device's node."""
    if not is_local_path(uri):
        parts = urlsplit(uri)
        where = parts.netloc.rsplit("@", 1)[-1]  # host[:port], never the credentials
        path = parts.path
        if parts.scheme.lower() in ("rtmp", "rtmps"):  # /APP/STREAM-KEY: never the key (see streamseg.logs)
            path = "/".join(path.split("/")[:2])
        name = where.replace(":", "-") + path.replace("/", "-")
    else:
        path = local_path(uri)
        name = Path(path).stem if not path.startswith("/dev/") else Path(path).name
    return _UNSAFE.sub("-", name).strip("-.") or "source"


def unique_names(wanted: Sequence[str], taken: Iterable[str] = ()) -> list[str]:
    """``wanted`` with repeats (and names in ``taken``) suffixed -2, -3 …, in order."""
    used = set(taken)
    names = []
    for name in wanted:
        candidate, n = name, 1
        while candidate in used:
            n += 1
            candidate = f"{name}-{n}"
        used.add(candidate)
        names.append(candidate)
    return names


def check_name(name: str) -> str:
    """A name given by the user: it goes into paths and metric labels, so plain characters only."""
    if not name or _UNSAFE.search(name) or name in (".", ".."):
        raise ConfigError(f"source name {name!r}: use letters, digits, '.', '_' and '-' only")
    return name


def expand(template: str, name: str, index: int, node: str | None = None) -> str:
    """``template`` with ``{name}``, ``{index}`` (and ``{node}``, given one) filled in; other braces are refused."""
    try:
        parsed = [
            (f, spec, conversion) for _, f, spec, conversion in string.Formatter().parse(template) if f is not None
        ]
    except ValueError as err:
        raise ConfigError(f"output template {_shown(template)}: {err}") from None
    fields = [f for f, _, _ in parsed]
    unknown = sorted({f for f in fields if f not in FIELDS or (f == "node" and node is None)})
    if unknown:
        where = "only under streamseg serve" if unknown[0] == "node" else "use {name} or {index}"
        raise ConfigError(f"output template {_shown(template)}: unknown field {{{unknown[0][:40]}}} ({where})")
    if any(spec or conversion for _, spec, conversion in parsed):  # {name:>300000000} would fill memory
        raise ConfigError(
            f"output template {_shown(template)}: plain {{name}}, {{index}} and {{node}} only, no format specs"
        )
    return template.format(name=name, index=index, node=node) if fields else template


def _shown(template: str) -> str:
    """The template for a message: credentials redacted, at most 200 characters."""
    shown = redact(template)
    return repr(shown if len(shown) <= 200 else shown[:200] + "…")


@dataclass(frozen=True)
class SourceOutputs:
    """Where one source's results go, templates expanded."""

    videos: tuple[str, ...] = ()
    labels_out: str | None = None
    summary: str | None = None
    events: SourceEvents | None = None  # regions and rules: coverage on each result, events, clips

    def paths(self, options: OutputOptions, owner: str | None = None) -> list[OutputPath]:
        """Every file or folder these outputs write (stream URLs are not paths); ``options`` says how."""
        return output_paths(
            self.videos,
            self.labels_out,
            self.summary,
            labels_format=options.labels_format,
            encoder=options.encoder,
            owner=owner,
        )
