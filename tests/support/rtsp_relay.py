"""A small RTSP relay for the live tests, on gst-rtsp-server (run with the system python3).

    /usr/bin/python3 tests/support/rtsp_relay.py PORT RECORD_PATH=PLAY_PATH [...]

Publishers ANNOUNCE/RECORD H.264 to RECORD_PATH; readers PLAY it at PLAY_PATH.
(gst-rtsp-server gives one mode per mount, so a relay needs two paths.)
Binds 127.0.0.1 only. Prints "ready" once listening.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

H264 = "video/x-h264,stream-format=byte-stream,alignment=au"


class Relay:
    def __init__(self, port: str, pairs: list[tuple[str, str]]):
        self.readers: dict[str, set] = {}  # record path -> appsrcs of live play medias
        self.last_pts: dict[object, int] = {}  # appsrc -> pts of the last buffer pushed
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address("127.0.0.1")
        self.server.set_service(port)
        self.server.get_thread_pool().set_max_threads(16)  # a client that waits must not block the others
        mounts = self.server.get_mount_points()
        for record, play in pairs:
            self.readers[record] = set()
            mounts.add_factory(record, self._record_factory(record))
            mounts.add_factory(play, self._play_factory(record))

    def _record_factory(self, path: str):
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
        # h264parse repeats SPS/PPS before every IDR: readers joining mid-stream can start at any keyframe
        factory.set_launch(
            f"( rtph264depay name=depay0 ! h264parse config-interval=-1 ! {H264} "
            "! appsink name=sink emit-signals=true sync=false )"
        )
        factory.set_latency(0)

        def configure(_factory, media):
            sink = media.get_element().get_by_name("sink")
            sink.connect("new-sample", self._forward, path)

        factory.connect("media-configure", configure)
        return factory

    def _play_factory(self, path: str):
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_shared(True)
        factory.set_launch(
            f'( appsrc name=src is-live=true format=time caps="{H264}" '
            "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )

        def configure(_factory, media):
            src = media.get_element().get_by_name("src")
            self.readers[path].add(src)
            media.connect("unprepared", lambda _m: self.readers[path].discard(src))

        factory.connect("media-configure", configure)
        return factory

    def _forward(self, sink, path):
        sample = sink.emit("pull-sample")
        if sample is not None:
            for src in list(self.readers[path]):
                clock = src.get_clock()
                if clock is None:  # not playing yet
                    continue
                # restamp on the play pipeline's clock, strictly rising: two frames with one RTP
                # timestamp would be merged into one access unit by the reader (and decode as garbage)
                now = clock.get_time() - src.get_base_time()
                pts = max(now, self.last_pts.get(src, -Gst.MSECOND) + Gst.MSECOND)
                self.last_pts[src] = pts
                buffer = sample.get_buffer().copy()
                buffer.pts, buffer.dts = pts, Gst.CLOCK_TIME_NONE
                src.emit("push-buffer", buffer)
        return Gst.FlowReturn.OK

    def run(self) -> None:
        if self.server.attach(None) == 0:
            sys.exit(f"rtsp_relay: cannot listen on 127.0.0.1:{self.server.get_service()}")
        print("ready", flush=True)
        GLib.MainLoop().run()


if __name__ == "__main__":
    Gst.init(None)
    pairs = [tuple(arg.split("=", 1)) for arg in sys.argv[2:]]
    Relay(sys.argv[1], pairs).run()
