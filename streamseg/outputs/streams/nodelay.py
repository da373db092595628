"""TCP_NODELAY on the connections FFmpeg opens for a live output.

FFmpeg's RTSP (interleaved TCP) and RTMP muxers send a frame as many small
writes, one per RTP packet or RTMP chunk. With Nagle's algorithm on, which is
FFmpeg's default, each write after the first waits for the server's ACK, and
Linux delays ACKs by up to 40 ms. Measured on loopback, streamseg's RTSP output
to a GStreamer viewer: p50 34–37 ms, p90 57–60 ms; with TCP_NODELAY, 9–10 and
22–27 ms (docs/benchmarks.md).

FFmpeg's tcp protocol has a ``tcp_nodelay`` option, but the RTSP muxer opens its
connection without passing options down, so the new sockets are found after
opening (Linux: /proc/self/fd) and set here. A socket another thread opened in
the meantime gets the option too, which does it no harm.
"""

from __future__ import annotations

import os
import socket

_FDS = "/proc/self/fd"


def socket_fds() -> set[int]:
    """This process's open socket descriptors; empty where /proc is not available."""
    try:
        names = os.listdir(_FDS)
    except OSError:
        return set()
    fds = set()
    for name in names:
        try:
            if os.readlink(f"{_FDS}/{name}").startswith("socket:"):
                fds.add(int(name))
        except OSError:  # closed while we looked
            continue
    return fds


def disable_nagle(fds: set[int]) -> int:
    """Set TCP_NODELAY on those of ``fds`` that are TCP sockets; returns how many were set."""
    count = 0
    for fd in fds:
        try:
            sock = socket.socket(fileno=os.dup(fd))  # a duplicate: closing it leaves FFmpeg's open
        except OSError:
            continue
        try:
            if sock.type == socket.SOCK_STREAM and sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                count += 1
        except OSError:
            pass
        finally:
            sock.close()
    return count
