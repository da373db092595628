"""The same-engine baseline: the pipeline's own engine and precision in a plain loop, one frame at a time.

What a user of ONNX Runtime or OpenVINO alone would write around the engine, on one Python thread:
PyAV decode → resize and normalize → ``engine.run`` → argmax → palette and ``cv2.addWeighted`` →
PyAV encode. The engine comes from ``create_backend`` with the pipeline's backend, precision, threads
and model handle, so ``end_to_end / same_engine`` is what the pipeline's stage threads, queues and
tuned steps buy with the engine held equal (``end_to_end / naive`` also changes the engine). The loop
takes one frame at a time, so its engine has one stream (OpenVINO's LATENCY hint, every thread on the
frame), where the pipeline keeps a file's frames in flight on the engine's throughput streams.

Preprocessing is the package's ``CpuPreprocessor``, the bare mode's exact input tensor; labels are
``np.argmax`` over the class axis and a nearest-neighbour resize to the frame, as the ONNX Runtime
examples do them; an output that needs its own decoding (the zoo's DUC layout, a labels output)
goes through the package's ``CpuPostprocessor`` instead. Every frame is blended, background too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np

from streamseg.backends import Backend, create_backend
from streamseg.bench.modes import latency, throughput
from streamseg.bench.resources import ResourceSampler
from streamseg.frames import Frame
from streamseg.models.handle import ModelHandle
from streamseg.models.spec import ModelSpec
from streamseg.postprocess import CpuPostprocessor
from streamseg.postprocess.cpu import content_rows_cols
from streamseg.preprocess import CpuPreprocessor

STAGES = ("decode", "preprocess", "infer", "postprocess", "blend", "encode")


def run_same_engine(
    source: str | Path,
    output: str | Path,
    engine: Backend,
    spec: ModelSpec,
    *,
    frames: int,
    on_frame: Callable[[int], None] | None = None,
) -> dict[str, list[float]]:
    """Segment the first ``frames`` frames of ``source`` into ``output``; returns seconds per frame per step."""
    prepare = CpuPreprocessor(spec)
    decode_output = CpuPostprocessor(spec, workers=1) if spec.decode.kind != "argmax" else None
    palette = np.zeros((256, 3), np.uint8)
    palette[: spec.num_classes] = spec.colors
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    with av.open(str(source)) as container, av.open(str(output), "w") as out:
        video = container.streams.video[0]
        stream = out.add_stream("h264", rate=video.average_rate or 25)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        stream.time_base = video.time_base
        decoded = container.decode(video)
        for index in range(frames):
            t0 = time.perf_counter()
            picture = next(decoded, None)
            if picture is None:
                break
            image = picture.to_ndarray(format="rgb24")
            t1 = time.perf_counter()
            prepared = prepare(Frame(str(source), index, image, picture.pts, picture.time_base, time.time()))
            t2 = time.perf_counter()
            scores = np.asarray(engine.run(prepared.tensor))
            t3 = time.perf_counter()
            if decode_output is not None:
                labels = decode_output(scores, prepared.geometry)
            else:
                rows, cols = content_rows_cols(prepared.geometry, *scores.shape[2:])
                labels = scores[0, :, :rows, :cols].argmax(axis=0).astype(np.uint8)
                labels = cv2.resize(labels, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
            t4 = time.perf_counter()
            blended = np.asarray(cv2.addWeighted(image, 0.5, palette[labels], 0.5, 0.0), np.uint8)  # no copy
            t5 = time.perf_counter()
            encoded = av.VideoFrame.from_ndarray(blended, format="rgb24")
            encoded.pts, encoded.time_base = picture.pts, picture.time_base
            for packet in stream.encode(encoded):
                out.mux(packet)
            t6 = time.perf_counter()
            for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                times[stage].append(seconds)
            if on_frame is not None:
                on_frame(index)
        for packet in stream.encode(None):
            out.mux(packet)
    return times


def measure_same_engine(
    source: str,
    model_path: ModelHandle,
    spec: ModelSpec,
    *,
    frames: int,
    output: Path,
    backend: str,
    threads: int | None,
    precision: str | None = None,
    winograd: bool = True,
    compile: bool = False,
) -> dict:
    """The loop above on an engine made as the pipeline makes its own; fps as every mode counts it."""
    engine = create_backend(
        backend, model_path, spec, threads=threads, precision=precision, winograd=winograd, compile=compile
    )
    done: list[float] = []
    try:
        with ResourceSampler() as resources:
            times = run_same_engine(
                source, output, engine, spec, frames=frames, on_frame=lambda index: done.append(time.perf_counter())
            )
        name = engine.name
        computes = getattr(engine, "precision", None) or model_path.with_spec(spec).precision
    finally:
        engine.close()
    return {
        "fps": round(throughput(done), 4),
        "frames": len(done),
        "engine": name,
        "precision": computes,
        "stages": {stage: latency(values) for stage, values in times.items()},
        **resources.report(),
    }
