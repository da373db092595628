"""``streamseg doctor``: facts that match this machine, and no crash when packages are missing."""

from __future__ import annotations

import importlib.util
import json
import sys

import av
import pytest

from streamseg.backends import plan_auto
from streamseg.devices import cuda_present
from streamseg.doctor import as_text, gather
from tests.support.cli import run_cli

SECTIONS = (
    "python",
    "streamseg",
    "pyav",
    "onnxruntime",
    "openvino",
    "cpu",
    "torch",
    "tensorrt",
    "auto_backend",
    "missing",
)


@pytest.fixture(scope="module")
def doctor_json() -> dict:
    proc = run_cli("doctor", "--json", check=True, timeout=120)
    return json.loads(proc.stdout)


def test_json_reports_this_machine(doctor_json):
    facts = doctor_json
    assert set(SECTIONS) <= set(facts)
    assert facts["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert facts["pyav"]["version"] == av.__version__
    assert facts["pyav"]["decoders"]["h264_cuvid"] == ("h264_cuvid" in av.codecs_available)
    assert facts["pyav"]["encoders"]["libx264"]["opens"] is True  # the PyPI wheel bundles libx264
    assert facts["pyav"]["nvdec"]["usable"] == cuda_present()
    with open("/proc/cpuinfo") as info:
        flags = next(line for line in info if line.startswith("flags")).split(":", 1)[1].split()
    assert facts["cpu"]["flags"]["avx2"] == ("avx2" in flags)
    assert facts["cpu"]["flags"]["amx_tile"] == ("amx_tile" in flags)
    if importlib.util.find_spec("torch") is not None:
        import torch

        assert facts["torch"]["version"] == torch.__version__
        assert facts["torch"]["cuda_available"] == torch.cuda.is_available()
        assert len(facts["torch"]["gpus"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    for precision, key in ((None, "model's own"), ("fp16", "fp16"), ("bf16", "bf16")):
        backend, passed = plan_auto(precision)
        assert facts["auto_backend"][key] == {"backend": backend, "passed_over": passed}


@pytest.mark.skipif(cuda_present(), reason="checks the choice on a machine without a GPU")
def test_auto_without_a_gpu_is_onnxruntime_and_says_why(doctor_json):
    plan = doctor_json["auto_backend"]["fp16"]
    assert plan["backend"] == "onnxruntime" and any("no CUDA GPU" in reason for reason in plan["passed_over"])


def test_text_report_exits_zero_and_names_the_choice():
    proc = run_cli("doctor", check=True, timeout=120)
    assert proc.returncode == 0
    for head in ("python", "pyav", "onnxruntime", "torch", "tensorrt", "auto"):
        assert any(line.startswith(head) for line in proc.stdout.splitlines()), head
    assert f"pyav        {av.__version__}" in proc.stdout


def test_missing_packages_name_the_extra_that_brings_them(monkeypatch):
    """With torch, torchvision, OpenVINO and TensorRT hidden, every section still reports, with install hints."""
    for name in ("torch", "torchvision", "openvino", "tensorrt", "tensorrt_rtx"):
        monkeypatch.setitem(sys.modules, name, None)  # find_spec() -> None, import -> ImportError
    facts = gather()
    assert facts["torch"] == {"installed": False, "missing": [facts["torch"]["missing"][0]]}
    missing = "\n".join(facts["missing"])
    assert "streamseg[export]" in missing and "streamseg[openvino]" in missing and "streamseg[tensorrt]" in missing
    assert facts["auto_backend"]["fp16"]["backend"] == "onnxruntime"
    assert "error" not in facts["pyav"] and facts["pyav"]["nvdec"]["usable"] is False
    text = as_text(facts)
    assert "torch       not installed" in text and "missing:" in text
