"""What ``streamseg bench`` measures, each on the same first N frames of one input.

* ``bare``: the inference engine alone, on input tensors preprocessed beforehand, with as many
  calls in flight as the pipeline keeps (``Backend.streams`` and ``Backend.queued``);
* ``end_to_end``: the whole ``Pipeline``, decode to encoded file;
* ``naive``: the PyTorch Hub example loop (``benchmarks/naive_hub.py``);
* ``same_engine``: the pipeline's engine in a plain sequential loop (``same_engine.py``).

Every mode's fps is ``(n - 1) / (t_last - t_first)`` over the instants frames
come out, so the first frame (engine warm-up, pipeline fill) counts in none; with k
engine streams, from the k-th frame out (``throughput``).
"""

from __future__ import annotations

import functools
import importlib.util
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import numpy as np

from streamseg.backends import create_backend
from streamseg.backends.base import input_spec
from streamseg.bench.resources import ResourceSampler
from streamseg.errors import ConfigError, MissingExtraError, ModelError, StreamsegError
from streamseg.frames import Frame
from streamseg.models.handle import ModelHandle
from streamseg.models.spec import ModelSpec
from streamseg.preprocess import CpuPreprocessor
from streamseg.sources import open_source

NAIVE_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "naive_hub.py"


def throughput(done: list[float], in_flight: int = 1) -> float:
    """Frames per second from the moment ``in_flight`` frames are out to the last one.

    With k calls in flight, outputs may come k at a time: counting from the first would credit the k - 1
    that came with it to a span they were not inferred in (5% too fast at 20 frames, k = 2).
    """
    start = max(1, in_flight) - 1
    if len(done) < start + 2 or done[-1] <= done[start]:
        return 0.0
    return (len(done) - 1 - start) / (done[-1] - done[start])


def latency(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"items": 0, "mean_ms": 0.0, "p50_ms": 0.0, "p99_ms": 0.0}
    ms = 1000 * np.asarray(seconds)
    return {
        "items": len(seconds),
        "mean_ms": round(float(ms.mean()), 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def decode(source: str, frames: int) -> list[Frame]:
    """The first ``frames`` decoded frames of ``source``, kept in memory."""
    src = open_source(source, max_frames=frames)
    try:
        return list(src.frames())
    finally:
        src.close()


def measure_bare(
    model_path: ModelHandle,
    spec: ModelSpec,
    frames: list[Frame],
    *,
    backend: str,
    threads: int | None,
    precision: str | None = None,
    winograd: bool = True,
    compile: bool = False,
    batch: int = 1,
    cuda_graphs: bool = False,
    labels: bool = True,
    streams: int | None = None,
    pictures: bool = True,
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Inference alone; also returns the first input tensor and its output (to check other engines).

    With ``batch`` > 1 each call runs that many copies of a frame's tensor as one
    (N, 3, H, W) input, and fps counts frames: ``batch`` per call. ``streams`` as the pipeline
    asks for a file (None: the engine's throughput choice): that many calls run at once, as there.
    """
    engine = create_backend(
        backend,
        model_path,
        spec,
        threads=threads,
        precision=precision,
        winograd=winograd,
        compile=compile,
        cuda_graphs=cuda_graphs,
        batch=batch,
        labels=labels,  # the engine as the pipeline runs it
        streams=streams,
        pictures=pictures,
    )
    prepare = CpuPreprocessor(input_spec(spec, engine))
    prepared = [prepare(frame) for frame in frames]
    if not prepared:
        engine.close()
        raise ConfigError("bare engine: no frames to measure")
    done: list[float] = []
    seconds: list[float] = []
    try:
        inputs = [item.tensor if batch == 1 else np.concatenate([item.tensor] * batch) for item in prepared]
        if getattr(engine, "device", "cpu") == "cuda":  # the engine alone: inputs and outputs stay on the GPU
            inputs = _on_device(inputs, getattr(engine, "input_dtype", "float32"))

        def timed(tensor, run=engine.run):
            started = time.perf_counter()
            output = run(tensor)
            done.append(time.perf_counter())  # list.append is atomic: callers in several threads are fine
            seconds.append(done[-1] - started)
            return output

        with ResourceSampler() as resources:
            output = timed(inputs[0], engine.run if batch == 1 else functools.partial(_first_batch, engine))
            first = output[:1] if isinstance(output, np.ndarray) else output[:1].float().cpu().numpy()
            # the engine knows its streams once compiled: that many calls at once, as the pipeline keeps them
            streams, queued = engine.streams, engine.queued
            in_flight = streams + queued
            if in_flight == 1:  # here, as the infer stage's own thread runs it
                for tensor in inputs[1:]:
                    timed(tensor)
            else:
                with ThreadPoolExecutor(in_flight) as calls:
                    list(calls.map(timed, inputs[1:]))
        done.sort()
        name, output_kind = engine.name, getattr(engine, "output", "scores")
        computes = getattr(engine, "precision", None) or model_path.with_spec(spec).precision
        device = getattr(engine, "device", "cpu")
    finally:
        engine.close()
    geometry = prepared[0].geometry
    report = {
        "fps": round(batch * throughput(done, in_flight), 4),
        "frames": batch * len(done),
        "batch": batch,
        "streams": streams,
        "queued": queued,
        "engine": name,
        "output": output_kind,
        "precision": computes,
        "device": device,
        "input_size": list(geometry.input_size),
        "stages": {"infer": latency(seconds)},
        **resources.report(),
    }
    # the first frame's model input as a float tensor, for the eager model's check, where the engine took pictures
    tensor = prepared[0].tensor if prepare.spec.dtype == spec.dtype else CpuPreprocessor(spec)(frames[0]).tensor
    return report, tensor, first


def _first_batch(engine, tensor):
    """The first batched call; an engine whose model takes one frame at a time says so in one line."""
    try:
        return engine.run(tensor)
    except StreamsegError:
        raise
    except Exception as err:  # noqa: BLE001 - engines raise their own types for a shape they can't take
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"--batch {tensor.shape[0]}: {engine.name} cannot run this model on a batch ({first}); "
            "the torch backend runs any batch size"
        ) from None


def _on_device(tensors: list[np.ndarray], dtype) -> list:
    """Host tensors uploaded once, in the dtype the engine reads (a name or a torch dtype), outside its time."""
    import torch

    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    return [torch.from_numpy(t).to("cuda", dtype) for t in tensors]


def measure_end_to_end(
    source: str,
    model_path: ModelHandle,
    spec: ModelSpec,
    *,
    frames: int,
    output: Path,
    backend: str,
    threads: int | None,
    size: int | None,
    precision: str | None = None,
    winograd: bool = True,
    compile: bool = False,
    engine_labels: bool = True,
    streams: int | None = None,
    engine_normalize: bool = True,
) -> dict:
    from streamseg.pipeline import Pipeline

    done: list[float] = []
    pipeline = Pipeline(
        source,
        model_path,
        spec=spec,
        backend=backend,
        threads=threads,
        precision=precision,
        winograd=winograd,
        compile=compile,
        engine_labels=engine_labels,
        engine_normalize=engine_normalize,
        engine_streams=streams,
        input_size=size,
        outputs=[str(output)],
        max_frames=frames,
        on_result=lambda result: done.append(time.perf_counter()),
    )

    def queues() -> dict[str, tuple[int, int]]:
        return {name: (q["depth"], q["maxsize"]) for name, q in pipeline.snapshot()["queues"].items()}

    try:
        pipeline.start()
    except BaseException:
        pipeline.close()
        raise
    with ResourceSampler(probe=queues) as resources:
        summary = pipeline.run()
    engine = pipeline.parts.backend
    streams, queued = (engine.streams, engine.queued) if engine is not None else (1, 0)
    in_flight = streams + queued
    stages = {
        name: {k: s[k] for k in ("items", "mean_ms", "cpu_ms", "p50_ms", "p99_ms")}
        for name, s in summary.stages.items()
    }  # cpu_ms: the stage thread's own; infer's leaves out the engine's threads, which process_cpu_ms holds
    return {
        "fps": round(throughput(done, in_flight), 4),
        "frames": summary.frames_out,
        "wall_fps": round(summary.fps, 4),
        "engine": summary.backend,
        "streams": streams,
        "queued": queued,
        "stages": stages,
        "process_cpu_ms": round(summary.cpu_ms_per_frame, 2),
        "queue_peaks": summary.queue_peaks,
        "dropped": sum(summary.dropped.values()),
        "dropped_by_queue": summary.dropped,
        "output_bytes": output.stat().st_size if output.exists() else 0,
        **resources.report(),
    }


def load_naive_script() -> ModuleType:
    """``benchmarks/naive_hub.py`` from the source tree (it is a script, not part of the package)."""
    if not NAIVE_SCRIPT.is_file():
        raise ConfigError(f"naive baseline not found at {NAIVE_SCRIPT}: run from a source checkout or skip it")
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
        raise MissingExtraError("the naive baseline", "export")
    module_spec = importlib.util.spec_from_file_location("streamseg_naive_hub", NAIVE_SCRIPT)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"naive baseline at {NAIVE_SCRIPT} cannot be loaded as a module")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def measure_naive(
    source: str,
    spec: ModelSpec,
    *,
    frames: int,
    output: Path,
    weights: str,
    seed: int,
    check: tuple[np.ndarray, np.ndarray] | None,
    engine_precision: str = "fp32",
) -> dict:
    """The Hub loop with the same network, weights and input size; ``check`` is (input, ONNX output) from an
    engine computing in ``engine_precision``."""
    naive = load_naive_script()
    try:
        model = naive.load_model(spec.name, weights, seed=seed)
    except ValueError as err:
        raise ModelError(f"naive baseline: {err}") from None
    agreement = _same_weights(model, check, engine_precision) if check is not None else None
    done: list[float] = []
    with ResourceSampler() as resources:
        times = naive.run_naive(
            source,
            output,
            model,
            size=spec.resize.size,
            frames=frames,
            on_frame=lambda index: done.append(time.perf_counter()),
        )
    return {
        "fps": round(throughput(done), 4),
        "frames": len(done),
        "engine": "torch eager FP32",
        "weights": weights if weights == "pretrained" else f"random, seed {seed}",
        "same_weights_check": agreement,
        "stages": {stage: latency(values) for stage, values in times.items()},
        **resources.report(),
    }


# labels the eager FP32 model must share with the engine's for both to be one network: a network with other
# weights agrees by chance only (well under half); an INT8 or BF16 engine moves a few percent at most
SAME_NETWORK = {"fp32": 0.99, "fp16": 0.95, "bf16": 0.95, "int8": 0.95}


def _same_weights(model, check: tuple[np.ndarray, np.ndarray], precision: str = "fp32") -> dict:
    """Run the eager model on the bare mode's first tensor; refuse to time a different network."""
    from streamseg.models.torch_compat import import_torch

    torch = import_torch()
    tensor, expected = check
    with torch.no_grad():
        got = model(torch.from_numpy(tensor))["out"].numpy()
    labels_only = expected.dtype == np.uint8  # the engine took the argmax itself (--engine-labels)
    if (got.shape[:1] + got.shape[2:] if labels_only else got.shape) != expected.shape:
        raise ModelError(f"naive baseline: output {got.shape} differs from the ONNX model's {expected.shape}")
    agree = float((got.argmax(1) == (expected if labels_only else expected.argmax(1))).mean())
    max_diff = None if labels_only else float(np.abs(got - expected).max())
    if agree < SAME_NETWORK.get(precision, 0.99):
        raise ModelError(
            f"naive baseline: the eager model's labels agree with the ONNX model's on {agree:.1%} of "
            "pixels only: not the same weights (export with --weights none, seed 0, or pass "
            "--naive-weights pretrained)"
        )
    return {"label_agreement": round(agree, 6), "max_abs_diff": max_diff}
