"""Agreement mode: a candidate model, backend or precision against the FP32 ONNX Runtime reference.

Both models see the same decoded frames through the pipeline's own
preprocessing and decoding. Per frame the reference runs, then the
candidate, so both speeds are measured side by side in one run, under the
same load; a warm-up call per model is left out of the timing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamseg.errors import BackendError, ModelError
from streamseg.evaluation.metrics import ConfusionMatrix
from streamseg.models.spec import ModelSpec

ENGINE_SUFFIXES = (".plan", ".engine", ".trt")


@dataclass
class AgreementReport:
    reference: str
    candidate: str
    reference_backend: str
    candidate_backend: str
    video: str
    frame_indices: list[int]
    input_shape: tuple[int, ...]
    agreement: float  # percent of pixels with the same label
    miou_vs_reference: float  # percent; reference labels as the ground truth
    max_logit_error: float
    mean_logit_error: float
    reference_fps: float  # inference only (backend.run), warm
    candidate_fps: float
    per_class_iou: dict[str, float | None] = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        return self.candidate_fps / self.reference_fps if self.reference_fps else float("nan")

    def as_dict(self) -> dict:
        data = {k: v for k, v in self.__dict__.items()}
        data["input_shape"] = list(self.input_shape)
        data["speedup"] = self.speedup
        data["frames"] = len(self.frame_indices)
        return data


def _candidate_backend(path: Path, spec: ModelSpec, backend: str, threads: int | None, precision: str | None):
    from streamseg.backends import create_backend

    if path.suffix.lower() in ENGINE_SUFFIXES:
        import importlib.util

        from streamseg.devices import cuda_present

        if importlib.util.find_spec("tensorrt") is None or not cuda_present():
            raise BackendError(
                f"{path.name} is a TensorRT engine: comparing it needs TensorRT and a CUDA GPU, "
                "which are not both usable here"
            )
        raise BackendError(
            f"{path.name}: pass the ONNX it was built from with --candidate-backend tensorrt "
            "(the engine cache finds or builds the engine)"
        )
    return create_backend(backend, path, spec, threads=threads, precision=precision)


def compare(
    reference: str | Path,
    candidate: str | Path,
    video: str | Path,
    *,
    frames: int = 16,
    input_size: int | None = None,
    candidate_backend: str = "onnxruntime",
    threads: int | None = None,
    candidate_precision: str | None = None,
) -> AgreementReport:
    """Run both models on ``frames`` frames spread over ``video`` and compare labels, logits and speed.

    ``candidate_precision`` (e.g. bf16 on openvino) may make the candidate the reference's own file.
    """
    from streamseg.backends.onnxruntime import OnnxRuntimeBackend
    from streamseg.models import open_model, spec_from_onnx
    from streamseg.postprocess.cpu import CpuPostprocessor
    from streamseg.preprocess.cpu import plan_geometry
    from streamseg.quantize.calibration import preprocess, sample_frames

    ref_model = open_model(reference)
    ref_spec = ref_model.spec.with_short_side(input_size)
    cand_path = Path(candidate)
    if not cand_path.is_file():
        raise ModelError(f"candidate model not found: {candidate}")
    cand_spec = ref_spec
    if cand_path.suffix.lower() == ".onnx":
        found = spec_from_onnx(cand_path)
        if found is not None:
            cand_spec = found.with_short_side(input_size or _short_side(ref_spec))
    if cand_spec.classes != ref_spec.classes:
        raise ModelError(
            f"candidate has {cand_spec.num_classes} classes, reference {ref_spec.num_classes}: "
            "they do not segment the same thing"
        )
    picked = sample_frames([Path(video)], frames, phase=0.75)  # calibration used phase 0.25
    ref_inputs = preprocess(picked, ref_spec)
    cand_inputs = preprocess(picked, cand_spec) if cand_spec != ref_spec else ref_inputs
    cand_backend = _candidate_backend(cand_path, cand_spec, candidate_backend, threads, candidate_precision)
    try:
        ref_backend = OnnxRuntimeBackend(ref_model, ref_spec, threads=threads)
    except BaseException:
        cand_backend.close()
        raise
    ref_post, cand_post = CpuPostprocessor(ref_spec), CpuPostprocessor(cand_spec)
    height, width = picked[0].image.shape[:2]  # one video: every sampled frame has this size
    ref_geometry = plan_geometry(ref_spec.resize, height, width)
    cand_geometry = plan_geometry(cand_spec.resize, height, width)
    try:
        _ = ref_backend.run(ref_inputs[0]), cand_backend.run(cand_inputs[0])  # warm-up, untimed
        confusion = ConfusionMatrix(ref_spec.num_classes)
        same = pixels = 0
        max_err, err_sum, err_count = 0.0, 0.0, 0
        ref_time = cand_time = 0.0
        for x_ref, x_cand in zip(ref_inputs, cand_inputs):
            t0 = time.perf_counter()
            y_ref = ref_backend.run(x_ref)
            t1 = time.perf_counter()
            y_cand = cand_backend.run(x_cand)
            t2 = time.perf_counter()
            ref_time += t1 - t0
            cand_time += t2 - t1
            y_ref, y_cand = np.asarray(y_ref, np.float32), _to_numpy(y_cand)
            if y_ref.shape == y_cand.shape:
                diff = np.abs(y_ref - y_cand)
                max_err = max(max_err, float(diff.max()))
                err_sum += float(diff.sum(dtype=np.float64))
                err_count += diff.size
            labels_ref = ref_post(y_ref, ref_geometry)
            labels_cand = cand_post(y_cand, cand_geometry)
            same += int(np.count_nonzero(labels_ref == labels_cand))
            pixels += labels_ref.size
            confusion.update(labels_cand, labels_ref)
    finally:
        ref_backend.close()
        cand_backend.close()
    metrics = confusion.compute()
    n = len(ref_inputs)
    return AgreementReport(
        reference=str(ref_model.path),
        candidate=str(cand_path),
        reference_backend=ref_backend.name,
        candidate_backend=cand_backend.name,
        video=str(video),
        frame_indices=[p.index for p in picked],
        input_shape=tuple(ref_inputs[0].shape),
        agreement=100.0 * same / pixels,
        miou_vs_reference=100.0 * metrics.miou,
        max_logit_error=max_err if err_count else float("nan"),
        mean_logit_error=err_sum / err_count if err_count else float("nan"),
        reference_fps=n / ref_time,
        candidate_fps=n / cand_time,
        per_class_iou={
            name: (None if np.isnan(v) else 100.0 * float(v)) for name, v in zip(ref_spec.classes, metrics.iou)
        },
    )


def _short_side(spec: ModelSpec) -> int | None:
    return spec.resize.short_side if spec.resize.mode == "short_side" else None


def _to_numpy(output) -> np.ndarray:
    """Backends on a GPU may hand back device tensors."""
    if hasattr(output, "detach"):
        output = output.detach().float().cpu().numpy()
    return np.asarray(output, np.float32)
