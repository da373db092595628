"""What this machine offers streamseg: versions, codecs, accelerators, and what ``--backend auto`` would pick.

``streamseg doctor`` prints it; it is what a user pastes into a bug report.
Every probe is guarded: a missing or broken package becomes a line saying
what brings it, never an exception. Optional packages are looked up with
``importlib`` (metadata and ``find_spec``); TensorRT is never imported.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from collections.abc import Callable
from importlib import metadata
from typing import Any

# /proc/cpuinfo flags that decide CPU inference speed, and what each buys
CPU_FLAGS = {
    "avx2": "AVX2 (ONNX Runtime's baseline fast path)",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX-512 VNNI (INT8 dot products)",
    "avx_vnni": "AVX-VNNI (INT8 dot products, 256-bit)",
    "avx512_bf16": "AVX-512 BF16",
    "amx_tile": "AMX tiles (BF16/INT8 matrix units)",
    "amx_bf16": "AMX BF16",
    "amx_int8": "AMX INT8",
}
ENCODERS = ("libx264", "h264_nvenc")
DECODERS = ("h264_cuvid", "hevc_cuvid")


def gather() -> dict:
    """Every section; a section whose probe failed says so instead of stopping the rest."""
    sections: dict[str, Callable[[], dict]] = {
        "python": _python,
        "streamseg": _streamseg,
        "pyav": _pyav,
        "onnxruntime": _onnxruntime,
        "openvino": _openvino,
        "cpu": _cpu,
        "torch": _torch,
        "tensorrt": _tensorrt,
        "auto_backend": _auto_backend,
    }
    facts: dict = {}
    for name, probe in sections.items():
        try:
            facts[name] = probe()
        except Exception as err:  # noqa: BLE001 - a diagnostic never dies on what it diagnoses
            facts[name] = {"error": f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}"}
    facts["missing"] = [
        item for section in facts.values() if isinstance(section, dict) for item in section.get("missing", [])
    ]
    return facts


def version_of(*names: str) -> str | None:
    """The installed version of the first distribution found among ``names``."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _python() -> dict:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
    }


def _streamseg() -> dict:
    import streamseg

    return {
        "version": version_of("streamseg") or getattr(streamseg, "__version__", None),
        "path": os.path.dirname(streamseg.__file__),
    }


def _pyav() -> dict:
    if importlib.util.find_spec("av") is None:
        return {"installed": False, "missing": ["PyAV (decode/encode): pip install av"]}
    import av
    from av.codec.hwaccel import hwdevices_available

    from streamseg.outputs.encoder import encoder_works
    from streamseg.sources.nvdec import nvdec_unavailable

    available = av.codecs_available
    encoders = {
        name: {"present": name in available, "opens": name in available and encoder_works(name)} for name in ENCODERS
    }
    report: dict[str, Any] = {
        "version": av.__version__,
        "ffmpeg": _ffmpeg_version(av),
        "libraries": {name: ".".join(map(str, v)) for name, v in av.library_versions.items()},
        "hwdevices": list(hwdevices_available()),
        "encoders": encoders,
        "decoders": {name: name in available for name in DECODERS},
        "nvdec": {"usable": False, "reason": None},
        "missing": [],
    }
    reason = nvdec_unavailable("h264")
    report["nvdec"] = {"usable": reason is None, "reason": reason}
    if encoders["h264_nvenc"]["present"] and not encoders["h264_nvenc"]["opens"]:
        report["h264_nvenc_note"] = "opens only on an NVIDIA GPU with NVENC (not the H100/H200/A100); libx264 is used"
    if not encoders["libx264"]["opens"]:
        report["missing"].append("libx264 encoder: PyAV's PyPI wheel bundles it (pip install --force-reinstall av)")
    return report


def _ffmpeg_version(av) -> str | None:
    info = getattr(av, "ffmpeg_version_info", None)
    if isinstance(info, str):
        return info
    if info is not None:
        return ".".join(map(str, info)) if isinstance(info, tuple) else str(info)
    return None


def _onnxruntime() -> dict:
    if importlib.util.find_spec("onnxruntime") is None:
        return {"installed": False, "missing": ["ONNX Runtime (the CPU backend): pip install onnxruntime"]}
    import onnxruntime as ort

    return {"version": ort.__version__, "providers": ort.get_available_providers(), "device": ort.get_device()}


def _openvino() -> dict:
    if importlib.util.find_spec("openvino") is None:
        return {
            "installed": False,
            "missing": ['OpenVINO (--backend openvino, bf16): pip install "streamseg[openvino]"'],
        }
    import openvino as ov

    core = ov.Core()
    devices = {}
    for device in core.available_devices:
        try:
            devices[device] = core.get_property(device, "FULL_DEVICE_NAME")
        except Exception:  # noqa: BLE001 - a device that cannot name itself is still listed
            devices[device] = None
    return {"version": version_of("openvino") or getattr(ov, "__version__", None), "devices": devices}


def _cpu() -> dict:
    flags: set[str] = set()
    model = platform.processor() or None
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "flags" and not flags:
                    flags = set(value.split())
                elif key.strip() == "model name" and model in (None, "", platform.machine()):
                    model = value.strip()
    except OSError:
        pass  # not Linux: no flags to read
    from streamseg.cores import usable_cores

    return {
        "model": model,
        "machine": platform.machine(),
        "cores": usable_cores(),
        "flags": {flag: flag in flags for flag in CPU_FLAGS},
        "flags_read": bool(flags),
    }


def _torch() -> dict:
    if importlib.util.find_spec("torch") is None:
        return {
            "installed": False,
            "missing": ['torch (export, --backend torch, GPU stages): pip install "streamseg[export]"'],
        }
    import torch

    report: dict[str, Any] = {
        "version": torch.__version__,
        "torchvision": version_of("torchvision"),
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpus": [],
        "missing": [],
    }
    if report["torchvision"] is None:
        report["missing"].append('torchvision (--backend torch, models export): pip install "streamseg[export]"')
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            report["gpus"].append(
                {
                    "index": index,
                    "name": props.name,
                    "compute_capability": f"{props.major}.{props.minor}",
                    "memory_gib": round(props.total_memory / 2**30, 1),
                    "multiprocessors": props.multi_processor_count,
                }
            )
        report["driver"] = _driver_version()
    elif torch.version.cuda is None:
        report["note"] = "a CPU build of torch: the GPU path needs a CUDA build (pytorch.org)"
    return report


def _driver_version() -> str | None:
    try:
        with open("/proc/driver/nvidia/version") as f:
            first = f.readline()
    except OSError:
        return None
    words = first.split()
    return next((w for w in words if w[:1].isdigit() and w.count(".") >= 1), first.strip() or None)


def _tensorrt() -> dict:
    found = {module: importlib.util.find_spec(module) is not None for module in ("tensorrt", "tensorrt_rtx")}
    report: dict[str, Any] = {
        "tensorrt": version_of("tensorrt", "tensorrt-cu13", "tensorrt-cu12") if found["tensorrt"] else None,
        "tensorrt_rtx": version_of("tensorrt-rtx", "tensorrt_rtx") if found["tensorrt_rtx"] else None,
        "importable": found,
    }
    if not any(found.values()):
        report["missing"] = ['TensorRT (--backend tensorrt, the fastest GPU engine): pip install "streamseg[tensorrt]"']
    return report


def _auto_backend() -> dict:
    from streamseg.backends import plan_auto

    plans = {}
    for precision in (None, "fp16", "bf16", "int8"):
        name, passed = plan_auto(precision)
        plans[precision or "model's own"] = {"backend": name, "passed_over": passed}
    return plans


def as_text(facts: dict) -> str:
    """The human report: one line per fact, then what is missing and how to get it."""
    lines: list[str] = []
    add = lines.append
    py, me = facts["python"], facts["streamseg"]
    add(f"python      {py.get('version')} ({py.get('executable')}) on {py.get('platform')}")
    add(f"streamseg   {me.get('version')} ({me.get('path')})")
    av = facts["pyav"]
    if "version" in av:
        enc = ", ".join(
            f"{n} {'opens' if e['opens'] else ('present, does not open' if e['present'] else 'absent')}"
            for n, e in av["encoders"].items()
        )
        dec = ", ".join(f"{n} {'present' if ok else 'absent'}" for n, ok in av["decoders"].items())
        devices = ", ".join(av["hwdevices"]) or "none"
        add(f"pyav        {av['version']}, FFmpeg {av.get('ffmpeg')}; hw devices: {devices}")
        add(f"  encoders  {enc}")
        add(f"  decoders  {dec}")
        nvdec = av["nvdec"]
        add(f"  nvdec     {'usable' if nvdec['usable'] else 'not usable: ' + str(nvdec['reason'])}")
    else:
        add(f"pyav        {av.get('error', 'not installed')}")
    ort = facts["onnxruntime"]
    add(
        f"onnxruntime {ort.get('version', ort.get('error', 'not installed'))}; providers: "
        f"{', '.join(ort.get('providers', [])) or '-'}"
    )
    ov = facts["openvino"]
    devices = ", ".join(f"{d} ({n})" if n else d for d, n in ov.get("devices", {}).items())
    ov_version = ov.get("version", ov.get("error", "not installed"))
    add(f"openvino    {ov_version}{'; devices: ' + devices if devices else ''}")
    cpu = facts["cpu"]
    if "flags" in cpu:
        have = ", ".join(flag for flag, on in cpu["flags"].items() if on) or "none of " + ", ".join(CPU_FLAGS)
        add(
            f"cpu         {cpu.get('model')}, {cpu.get('cores')} usable cores; "
            f"{'flags: ' + have if cpu['flags_read'] else 'flags unknown'}"
        )
    th = facts["torch"]
    if "version" in th:
        add(
            f"torch       {th['version']} (torchvision {th.get('torchvision') or 'absent'}), CUDA build "
            f"{th.get('cuda_build') or 'none'}, CUDA available: {'yes' if th['cuda_available'] else 'no'}"
            f"{', driver ' + th['driver'] if th.get('driver') else ''}"
        )
        for gpu in th["gpus"]:
            add(
                f"  gpu {gpu['index']}     {gpu['name']}, compute capability {gpu['compute_capability']}, "
                f"{gpu['memory_gib']} GiB, {gpu['multiprocessors']} SMs"
            )
        if th.get("note"):
            add(f"  note      {th['note']}")
    else:
        add(f"torch       {th.get('error', 'not installed')}")
    trt = facts["tensorrt"]
    add(f"tensorrt    {trt.get('tensorrt') or 'absent'}; tensorrt-rtx {trt.get('tensorrt_rtx') or 'absent'}")
    auto = facts["auto_backend"]
    if "error" in auto:
        add(f"auto        {auto['error']}")
    else:
        for precision, plan in auto.items():
            why = f" (passed over {'; '.join(plan['passed_over'])})" if plan["passed_over"] else ""
            add(f"auto        --precision {precision}: {plan['backend']}{why}")
        if any(plan["backend"] == "torch" for plan in auto.values()):
            add(
                "  note      torch builds torchvision architectures (fcn_resnet50, deeplabv3_*); other models fall "
                "through to onnxruntime"
            )
    errors = [
        f"{name}: {section['error']}"
        for name, section in facts.items()
        if isinstance(section, dict) and "error" in section
    ]
    if errors:
        add("probe errors:")
        lines.extend(f"  {e}" for e in errors)
    if facts["missing"]:
        add("missing:")
        lines.extend(f"  {item}" for item in facts["missing"])
    return "\n".join(lines)
