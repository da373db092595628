"""Live inputs: network streams, V4L2 devices and files played as cameras, reconnected when they drop.

Frames carry timestamps derived from the capture clock (time base 1/90000), so
they rise monotonically through stalls, reconnects and loops, whatever the
stream said (an RTSP stream's first pts can be None).

A camera that is not up yet is waited for: a first open that fails for a
transient reason (refused, timed out, 404, no stream or only invalid data yet)
is retried with the same backoff and give-up limit as a reconnect. A malformed
URL, an unknown protocol or refused credentials fail at once. A source that
sends only undecodable data for ``undecodable_timeout`` seconds is dropped and
reconnected, and reported as reconnecting meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from urllib.parse import urlsplit

import av
import cv2
import numpy as np

from streamseg.backoff import Backoff
from streamseg.cores import codec_threads
from streamseg.errors import SourceError
from streamseg.frames import Frame, StreamInfo, Yuv420Planes
from streamseg.logs import redact
from streamseg.sources.file import to_planes, to_rgb
from streamseg.sources.limits import FrameTooLargeError, check_frame, check_stream, guard_stream
from streamseg.sources.no_answer import no_answer
from streamseg.sources.vectors import export_vectors, frame_vectors
from streamseg.stage_options import SourceOptions

log = logging.getLogger(__name__)

# an upright RGB picture, its motion vectors and its I420 planes (each when asked for and there)
Picture = tuple[np.ndarray, np.ndarray | None, Yuv420Planes | None]

CLOCK_RATE = 90000  # ticks per second of the capture-clock pts, as RTP video uses
TIME_BASE = Fraction(1, CLOCK_RATE)
# failures that waiting will not cure: a typo'd protocol, a bad option or URL, refused credentials, a missing device
PERMANENT = (
    av.error.ProtocolNotFoundError,
    av.error.DemuxerNotFoundError,
    av.error.OptionNotFoundError,
    av.error.ArgumentError,
    av.error.HTTPBadRequestError,
    av.error.HTTPUnauthorizedError,
    av.error.HTTPForbiddenError,
    av.error.PermissionError,
    av.error.FileNotFoundError,
    av.error.IsADirectoryError,
)


class OpenError(SourceError):
    """A failed open; a ``transient`` one (the camera or relay is not up yet) is worth retrying."""

    def __init__(self, message: str, *, transient: bool):
        super().__init__(message)
        self.transient = transient


class UndecodableError(SourceError):
    """Data keeps arriving, but none of it decodes to a picture."""


class CaptureClock:
    """Monotonic pts (1/90000) from the moment each frame was captured."""

    def __init__(self) -> None:
        self._start: float | None = None
        self._last = -1

    def pts(self, now: float) -> int:
        if self._start is None:
            self._start = now
        pts = max(round((now - self._start) * CLOCK_RATE), self._last + 1)
        self._last = pts
        return pts


class LiveSource:
    """Decodes the first video stream of ``url`` with PyAV and reconnects with backoff.

    The first connection is made on open, retried while its failure is
    transient (see the module docstring); once frames have flowed, EOF, read
    timeouts, undecodable data, ExitError and refused connections lead to
    reconnects. ``paced`` plays a file at its own rate; with ``loop`` it starts
    over at the end instead of stopping. With ``vectors`` the decoder exports its
    motion vectors and each frame carries them; with ``planes``, its own 4:2:0 planes.
    """

    def __init__(
        self,
        url: str,
        *,
        options: SourceOptions,
        format: str | None = None,
        container_options: dict[str, str] | None = None,
        paced: bool = False,
        max_frames: int | None = None,
        interrupted: threading.Event | None = None,
        vectors: bool = False,
        planes: bool = False,
    ):
        self.url = url
        self.vectors = vectors
        self.planes = planes
        self.name = redact(url)
        self.options = options
        self.paced = paced
        self._reclock = False  # paced: the clock restarts when frames() starts (not at open, before a warm-up)
        self.max_frames = max_frames
        self.reconnects = 0  # successful reconnections after a loss
        self.loops = 0
        self._format = format
        self._container_options = container_options or {}
        # the caller's event when given (a pipeline's stop), so a first connection still being retried stops too
        self._interrupted = interrupted or threading.Event()
        self._container: av.container.InputContainer | None = None
        self.problem: str | None = None  # why no pictures are coming now (for /health); None while they flow
        self._flowing = True  # False from a loss until the next picture
        if not paced and format is None:
            _check_url(url, self.name)
        first = self._connect()
        self._first: Picture | None = first
        height, width = first[0].shape[:2]
        self.info = StreamInfo(
            name=self.name,
            width=width,
            height=height,
            time_base=TIME_BASE,
            rate=self._stream.average_rate or self._stream.guessed_rate,
            frames=None,
            live=True,
        )

    # -- connection ------------------------------------------------------------------------
    def _open(self) -> av.container.InputContainer:
        timeout = self.options.read_timeout
        open_timeout, started = max(timeout, 5.0), time.monotonic()
        try:
            container = av.open(
                self.url, format=self._format, options=self._container_options, timeout=(open_timeout, timeout)
            )
        except (av.FFmpegError, OSError) as err:
            transient = not isinstance(err, PERMANENT)
            silent = None if self.paced else no_answer(self.url, err, time.monotonic() - started, timeout, open_timeout)
            raise OpenError(f"cannot open {self.name}: {silent or _reason(err)}", transient=transient) from None
        if not container.streams.video:
            container.close()
            raise OpenError(f"{self.name} has no video stream", transient=True)  # a relay may not have it yet
        stream = container.streams.video[0]
        try:
            guard_stream(stream, self.name, self.options.max_pixels)  # before the decoder allocates a picture
        except FrameTooLargeError:
            container.close()
            raise
        stream.thread_type = "AUTO" if self.paced else "SLICE"  # frame threads would add frames of delay
        stream.thread_count = codec_threads(self.options.decode_threads)
        if self.vectors:
            export_vectors(stream)
        self._stream = stream
        return container

    def _connect(self) -> Picture:
        """Open and decode the first picture; a transient failure is retried with backoff, as a reconnect is."""
        backoff = self._backoff()
        while True:
            try:
                return self._open_first()
            except OpenError as err:
                if not err.transient or self.paced:
                    raise
                self.problem = str(err)
                delay = backoff.next()
                if delay is None:
                    attempts = backoff.failures + 1
                    raise SourceError(f"{err} (gave up after {attempts} attempt{'s' * (attempts > 1)})") from None
                log.warning("%s; retrying in %.1f s (attempt %d)", err, delay, backoff.failures + 1)
                if self._interrupted.wait(delay):
                    raise SourceError(f"{self.name}: stopped while waiting for the stream ({err})") from None

    def _open_first(self) -> Picture:
        self._container = self._open()
        try:
            self._pictures = self._decode()  # kept: frames() goes on where the first picture left off
            first = next(self._pictures, None)
        except FrameTooLargeError:
            self._close_container()
            raise
        except (av.FFmpegError, OSError) as err:
            self._close_container()
            raise OpenError(f"cannot read {self.name}: {_reason(err)}", transient=True) from None
        if first is None:
            self._close_container()
            raise OpenError(f"{self.name}: no decodable video frames", transient=True)
        self.problem = None
        return first

    def _backoff(self) -> Backoff:
        options = self.options
        return Backoff(options.reconnect_delay, options.reconnect_max_delay, options.reconnect_give_up)

    def _close_container(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except (av.FFmpegError, OSError):
                pass
            self._container = None

    # -- decoding ------------------------------------------------------------------------
    def _decode(self) -> Iterator[Picture]:
        """Upright RGB pictures (with their vectors) from the open container, paced when asked; returns at EOF."""
        if self._container is None:
            return
        stream, started, first_pts = self._stream, None, None
        step = 1 / float(stream.average_rate or stream.guessed_rate or 25)
        tb = float(stream.time_base or TIME_BASE)
        limit, bad_since = self.options.undecodable_timeout, None
        for packet in self._container.demux(stream):
            if self._interrupted.is_set():
                return
            try:
                decoded = packet.decode()
            except av.InvalidDataError:  # e.g. slices before the first keyframe of a joined stream
                decoded = []
            except av.FFmpegError:
                check_stream(stream, self.name, self.options.max_pixels)  # FFmpeg's guard refused a huge picture
                raise
            if not decoded:  # tolerated a while (a joined stream waits for a keyframe), not forever
                now = time.monotonic()
                bad_since = bad_since or now
                if now - bad_since > limit and not self.paced:
                    raise UndecodableError(f"no decodable picture for {limit:g} s")
                continue
            bad_since = None
            for frame in decoded:
                check_frame(frame, self.name, self.options.max_pixels)
                if self.paced:
                    offset = 0.0
                    if frame.pts is not None:
                        first_pts = frame.pts if first_pts is None else first_pts
                        offset = (frame.pts - first_pts) * tb
                    elif started is not None:
                        offset = time.monotonic() - started + step
                    if started is None or self._reclock:  # the camera starts when reading starts
                        started, self._reclock = time.monotonic() - offset, False
                    wait = started + offset - time.monotonic()
                    if wait > 0 and self._interrupted.wait(wait):
                        return
                yield (
                    to_rgb(frame),
                    frame_vectors(frame) if self.vectors else None,
                    to_planes(frame) if self.planes else None,
                )

    def frames(self) -> Iterator[Frame]:
        clock = CaptureClock()
        backoff = self._backoff()
        size = (self.info.height, self.info.width)
        index, pending = 0, self._first
        self._first = None
        self._reclock = self.paced and pending is not None
        while not self._interrupted.is_set():
            if self._container is None and not self._reconnect(backoff):
                return
            try:
                pictures = self._decode()
                if pending is not None:
                    pictures = _prepend(pending, self._pictures)
                    pending = None
                for image, vectors, planes in pictures:
                    if image.shape[:2] != size:  # a camera that came back at another size: its vectors don't fit
                        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
                        vectors = planes = None
                    now = time.monotonic()
                    if not self._flowing:
                        self._flowing, self.problem = True, None
                    yield Frame(self.name, index, image, clock.pts(now), TIME_BASE, time.time(), vectors, planes)
                    index += 1
                    backoff.reset()
                    if self.max_frames is not None and index >= self.max_frames:
                        return
                reason = "end of stream"
            except FrameTooLargeError:
                raise  # no reconnect brings a smaller picture
            except (av.FFmpegError, OSError) as err:
                reason = _reason(err)
            self._close_container()
            if self._interrupted.is_set():
                return
            self._flowing, self.problem = False, f"lost: {reason}"
            if self.paced:  # a file: loop or stop, no reconnecting
                if not self.options.loop:
                    return
                self.loops += 1
                self._container = self._open()
                continue
            log.warning("%s: lost (%s)", self.name, reason)

    def _reconnect(self, backoff: Backoff) -> bool:
        """Wait, reopen; one log line per attempt. False when interrupted or the give-up limit is hit."""
        while not self._interrupted.is_set():
            delay = backoff.next()
            if delay is None:
                raise SourceError(f"{self.name}: gave up after {backoff.failures} reconnect attempts")
            log.warning("%s: reconnecting in %.1f s (attempt %d)", self.name, delay, backoff.failures)
            if self._interrupted.wait(delay):
                return False
            try:
                self._container = self._open()
            except FrameTooLargeError:
                raise
            except SourceError as err:
                log.warning("%s", err)
                continue
            self.reconnects += 1
            log.warning("%s: reconnected (%d so far)", self.name, self.reconnects)
            return True
        return False

    @property
    def reconnecting(self) -> bool:
        """True from a loss until pictures flow again (``/health`` says "reconnecting")."""
        lost = self._container is None or not self._flowing
        return lost and not self.paced and not self._interrupted.is_set()

    def interrupt(self) -> None:
        """Stop waiting and reading soon (from any thread, or a signal handler)."""
        self._interrupted.set()

    def close(self) -> None:
        self._interrupted.set()
        self._close_container()
        # the stream owns the codec context, whose threads FFmpeg stops only when it is freed, not on close
        self._pictures = iter(())
        vars(self).pop("_stream", None)


def _check_url(url: str, name: str) -> None:
    """Refuse at once what no retry can fix: a network URL without a host, or with a port that is no number."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0..65535
    except ValueError as err:
        raise SourceError(f"malformed URL {name}: {err}") from None
    if parts.scheme and not parts.netloc:
        raise SourceError(f"malformed URL {name}: no host")


def _prepend(first: Picture, rest: Iterator[Picture]) -> Iterator[Picture]:
    yield first
    yield from rest


def _reason(err: BaseException) -> str:
    return redact(getattr(err, "strerror", None) or str(err) or type(err).__name__)
