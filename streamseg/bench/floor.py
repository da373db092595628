"""The FLOP floor in time: a frame's multiply-adds over the device's peak rate.

No engine beats it, so measured engine time over floor time says how much of
the device a model uses. GPU peaks are the vendors' dense (no sparsity)
datasheet figures, in TFLOPS (TOPS for INT8): CUDA cores for FP32, tensor cores
for the rest. A TensorRT FP32 engine may use TF32 tensor cores, so its floor
is given for both. Other devices, or a CPU, take ``--peak-tflops``.
"""

from __future__ import annotations

# (substrings of the CUDA device name, all required) -> peak TFLOPS per precision; first match wins
GPU_PEAKS: list[tuple[tuple[str, ...], dict[str, float]]] = [
    (("H100", "PCIe"), {"fp32": 51, "tf32": 378, "fp16": 756, "bf16": 756, "int8": 1513}),
    (("H100", "NVL"), {"fp32": 60, "tf32": 418, "fp16": 835, "bf16": 835, "int8": 1671}),
    (("H200", "NVL"), {"fp32": 60, "tf32": 418, "fp16": 835, "bf16": 835, "int8": 1671}),
    (("H100",), {"fp32": 67, "tf32": 495, "fp16": 989, "bf16": 989, "int8": 1979}),  # SXM5 (HBM3)
    (("H200",), {"fp32": 67, "tf32": 495, "fp16": 989, "bf16": 989, "int8": 1979}),
    (("A100",), {"fp32": 19.5, "tf32": 156, "fp16": 312, "bf16": 312, "int8": 624}),
    (("L40S",), {"fp32": 91.6, "tf32": 183, "fp16": 362, "bf16": 362, "int8": 733}),
    (("L4",), {"fp32": 30.3, "tf32": 60, "fp16": 121, "bf16": 121, "int8": 242}),
    (("A10",), {"fp32": 31.2, "tf32": 62.5, "fp16": 125, "bf16": 125, "int8": 250}),
    (("T4",), {"fp32": 8.1, "fp16": 65, "int8": 130}),
    (("RTX 4090",), {"fp32": 82.6, "tf32": 82.6, "fp16": 165, "bf16": 165, "int8": 661}),
]


def gpu_peaks(device_name: str) -> dict[str, float] | None:
    """Datasheet peaks for a CUDA device name such as "NVIDIA H100 80GB HBM3"; None when not listed."""
    for needles, peaks in GPU_PEAKS:
        if all(needle in device_name for needle in needles):
            return peaks
    return None


def floor_ms(gmacs: float, peak_tflops: float) -> float:
    """Milliseconds for ``gmacs`` multiply-adds (two operations each) at ``peak_tflops``."""
    return 2 * gmacs / peak_tflops


def floor_report(
    gmacs: float, precision: str, engine_ms: float, *, device_name: str | None = None, peak_tflops: float | None = None
) -> dict | None:
    """The floor next to the measured engine time, or None when no peak is known for the device."""
    peaks: dict[str, float] | None
    if peak_tflops is not None:
        peaks, source = {precision: peak_tflops}, "--peak-tflops"
    else:
        peaks = gpu_peaks(device_name) if device_name else None
        source = f"datasheet, {device_name}"
    if not peaks or precision not in peaks:
        return None
    floor = round(floor_ms(gmacs, peaks[precision]), 3)
    report = {
        "device": device_name,
        "precision": precision,
        "peak_tflops": peaks[precision],
        "source": source,
        "floor_ms": floor,
        "engine_ms": round(engine_ms, 3),
        "engine_over_floor": round(engine_ms / floor, 2),
    }
    if precision == "fp32" and "tf32" in peaks:
        report["floor_ms_tf32"] = round(floor_ms(gmacs, peaks["tf32"]), 3)
    return report
