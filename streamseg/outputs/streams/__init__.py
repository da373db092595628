"""Live video outputs: RTSP, RTMP, UDP MPEG-TS and HLS, encoded as frames come and reconnected when cut."""
