"""Callback style: the pipeline calls you once per result, and writes its usual outputs too.

    python examples/callback.py ../shared/media/car-detection.mp4 m.onnx out.mp4

Runs the same stages as ``streamseg run SOURCE -m m.onnx -o out.mp4``; the
callback runs on the caller's thread, after the outputs have the frame.
"""

from __future__ import annotations

import sys

from streamseg import Pipeline, Result


class CarWatcher:
    """Counts the frames where cars cover more than 5% of the picture."""

    def __init__(self, car_class: int):
        self.car_class = car_class
        self.busy_frames = 0

    def __call__(self, r: Result) -> None:
        if (r.labels == self.car_class).mean() > 0.05:
            self.busy_frames += 1


def main(source: str, model: str, output: str) -> None:
    pipeline = Pipeline(source, model=model, outputs=[output], metrics_port=0)  # 0: any free port
    pipeline.start()
    print(f"Prometheus metrics at {pipeline.metrics.url}metrics while it runs")
    watcher = CarWatcher(pipeline.spec.classes.index("car"))
    pipeline.on_result = watcher
    summary = pipeline.run()  # blocks until the source ends; Ctrl-C: pipeline.stop() from a signal handler
    print(
        f"{summary.frames_out} frames, {watcher.busy_frames} with cars over 5% of the picture, "
        f"{summary.fps:.1f} fps; wrote {output}"
    )


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
