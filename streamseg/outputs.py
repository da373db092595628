"""Each source's name and output paths: templates expanded per source (``sinks.paths`` checks them).

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
from streamseg.sinks.paths import OutputPath, output_paths

if TYPE_CHECKING:
    from streamseg.config import RunConfig

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
FIELDS = ("name", "index", "node")


def source_name(uri: str) -> str:
    """A short name for ``uri``: a file's stem, a URL's host and path (no credentials), a device's node."""
    if "://" in uri:
        parts = urlsplit(uri)
        where = parts.netloc.rsplit("@", 1)[-1]  # host[:port], never the credentials
        name = where.replace(":", "-") + parts.path.replace("/", "-")
    else:
        name = Path(uri).stem if not uri.startswith("/dev/") else Path(uri).name
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
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as err:
        raise ConfigError(f"output template {redact(template)!r}: {err}") from None
    unknown = sorted({f for f in fields if f not in FIELDS or (f == "node" and node is None)})
    if unknown:
        where = " (only under streamseg serve)" if unknown[0] == "node" else " (use {name} or {index})"
        raise ConfigError(f"output template {redact(template)!r}: unknown field {{{unknown[0]}}}{where}")
    return template.format(name=name, index=index, node=node) if fields else template


@dataclass(frozen=True)
class SourceOutputs:
    """Where one source's results go, templates expanded."""

    videos: tuple[str, ...] = ()
    labels_out: str | None = None
    summary: str | None = None

    def paths(self, config: RunConfig, owner: str | None = None) -> list[OutputPath]:
        """Every file or folder these outputs write (stream URLs are not paths)."""
        return output_paths(self.videos, self.labels_out, self.summary, config, owner)
