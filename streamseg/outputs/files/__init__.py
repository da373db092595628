"""File outputs: video files, segmented recordings, per-frame summaries, each flushed as it goes."""
