"""Outputs never overwrite inputs or each other: every path is resolved before anything opens.

Paths are compared after resolving symlinks (``os.path.realpath``) and, where both
exist, as files (``os.path.samefile``, which also catches hard links). Folders that
outputs write into (label maps, HLS) collide only with the names written there.
A segmented recording never replaces a file (a taken name gets a suffix), but with
a size cap it deletes the oldest files its pattern matches: then it collides with
every name the pattern can make.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from streamseg.errors import SinkError
from streamseg.stage_options import EncoderOptions
from streamseg.uris import is_local_path, local_path, output_kind

LABEL_NAMES = r"\d{6}\.png"  # what PngLabelSink writes
HLS_NAMES = r"index\.m3u8|segment_\d{5}\.ts"  # what an hls:DIR output writes


class OutputOptions(Protocol):
    """What decides the files a run's outputs write (``RunConfig`` has these fields): no more is needed here."""

    @property
    def outputs(self) -> Sequence[str]: ...
    @property
    def labels_out(self) -> str | None: ...
    @property
    def summary(self) -> str | None: ...
    @property
    def labels_format(self) -> str: ...
    @property
    def encoder(self) -> EncoderOptions: ...


@dataclass(frozen=True)
class OutputPath:
    """One place an output writes: a file, names matching ``names`` in a folder, or a segment pattern."""

    what: str  # the option that asked for it, for the message: "-o", "--labels-out", "--summary"
    path: str
    names: str | None = None  # a folder output: the file names it writes there (a regex)
    glob: str | None = None  # a segmented recording that deletes old segments: the shell pattern of their paths
    owner: str | None = None  # the source writing it, in a run of several sources

    def describe(self) -> str:
        return f"{self.what} {self.path}" + (f" (source {self.owner!r})" if self.owner else "")

    def claims(self, path: str) -> bool:
        """Whether writing this output may replace or delete the file at ``path``."""
        real = os.path.realpath(path)
        if self.glob is not None:
            return fnmatch.fnmatchcase(real, os.path.realpath(self.glob)) or fnmatch.fnmatchcase(path, self.glob)
        if self.names is not None:
            return (
                os.path.dirname(real) == os.path.realpath(self.path)
                and re.fullmatch(self.names, os.path.basename(real)) is not None
            )
        return _same(real, path, self.path)


def _same(real: str, path: str, other: str) -> bool:
    if real == os.path.realpath(other):
        return True
    try:
        return os.path.samefile(path, other)
    except OSError:  # one of them does not exist yet
        return False


def check_output_paths(inputs: Iterable[str], outputs: Sequence[OutputPath]) -> None:
    """Raise SinkError naming both when an output is an input or two outputs write the same file."""
    local_inputs = [local_path(i) for i in inputs if is_local_path(i)]
    for output in outputs:
        for source in local_inputs:
            if output.claims(source):
                verb = "may delete" if output.glob is not None else "would overwrite"
                raise SinkError(f"output {output.describe()} {verb} the input {source}")
    for i, first in enumerate(outputs):
        for second in outputs[i + 1 :]:
            if not _collide(first, second):
                continue
            if first.owner != second.owner:
                raise SinkError(
                    f"{first.what} {first.path}: sources {first.owner!r} and {second.owner!r} would both "
                    "write it; put {name} or {index} in the path"
                )
            raise SinkError(f"outputs collide: {first.describe()} and {second.describe()} write the same file")


def _collide(first: OutputPath, second: OutputPath) -> bool:
    for a, b in ((first, second), (second, first)):
        if a.names is None and a.glob is None and b.claims(a.path):
            return True
    if first.glob is not None and second.glob is not None:
        return os.path.realpath(first.glob) == os.path.realpath(second.glob)
    if first.names is not None and second.names is not None:
        return os.path.realpath(first.path) == os.path.realpath(second.path) and first.names == second.names
    return False


def output_paths(
    videos: Sequence[str],
    labels_out: str | None,
    summary: str | None,
    *,
    labels_format: str,
    encoder: EncoderOptions,
    owner: str | None = None,
) -> list[OutputPath]:
    """Every place one source's outputs write files (``labels_format``: npz or png; ``encoder``: segments)."""
    from streamseg.outputs.files.segmented import segment_glob

    outputs = []
    segmented = encoder.segment_seconds is not None
    for uri in videos:
        writes = output_kind(uri)  # refuses md5:, tee:, pipe: … and schemes nothing writes
        if writes == "hls":
            outputs.append(OutputPath("-o", uri[len("hls:") :] or ".", names=HLS_NAMES, owner=owner))
            continue
        if writes != "file":
            continue  # a stream: no file on this machine
        uri = local_path(uri)  # file:in.mp4 writes in.mp4
        if segmented and encoder.keep_gigabytes is not None:
            outputs.append(OutputPath("-o", uri, glob=segment_glob(uri), owner=owner))
        elif segmented:
            continue  # new files under names not taken yet: it can replace nothing
        else:
            outputs.append(OutputPath("-o", uri, owner=owner))
    if labels_out:
        folder = Path(labels_out)
        if labels_format == "npz":
            outputs.append(OutputPath("--labels-out", str(folder / "labels.npz"), owner=owner))
        else:
            outputs.append(OutputPath("--labels-out", str(folder), names=LABEL_NAMES, owner=owner))
        if summary is None:
            outputs.append(OutputPath("--labels-out", str(folder / "summary.csv"), owner=owner))
    if summary:
        outputs.append(OutputPath("--summary", summary, owner=owner))
    return outputs


def check_run_outputs(sources: str | Sequence[str], options: OutputOptions) -> None:
    """Refuse a one-source run whose outputs would overwrite its source or each other, before anything opens."""
    outputs = output_paths(
        options.outputs,
        options.labels_out,
        options.summary,
        labels_format=options.labels_format,
        encoder=options.encoder,
    )
    check_output_paths([sources] if isinstance(sources, str) else list(sources), outputs)
