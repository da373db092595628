"""``streamseg bench``: the report's structure and sanity on real footage (speed is not asserted here)."""

from __future__ import annotations

import importlib.util
import json

import av
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from streamseg.bench.flops import count_macs
from streamseg.devices import cuda_present
from streamseg.models.spec import Resize
from streamseg.preprocess import plan_geometry
from tests.support.cli import run_cli

PIPELINE_STAGES = {"decode", "preprocess", "infer", "composite", "output"}
NAIVE_STAGES = {"decode", "preprocess", "infer", "postprocess", "blend", "encode"}


def _bench(*args: str) -> dict:
    proc = run_cli("bench", *args, "--json", check=True)
    return json.loads(proc.stdout)


def test_three_modes_on_the_same_frames(car_video, fcn_onnx, tmp_path):
    out = tmp_path / "e2e.mp4"
    report = _bench(str(car_video), "--model", str(fcn_onnx), "--frames", "3", "--size", "96", "--output", str(out))
    for mode in ("bare", "end_to_end", "naive"):
        assert report[f"{mode}_fps"] == report[mode]["fps"] > 0
        assert report[mode]["frames"] == 3
        assert report[mode]["cpu_percent"] > 0
        assert report[mode]["peak_rss_mb"] >= report[mode]["rss_start_mb"] > 0
        for stage in report[mode]["stages"].values():
            assert 0 < stage["p50_ms"] <= stage["p99_ms"]
    ratios = report["ratios"]
    assert ratios["end_to_end/bare"] == pytest.approx(report["end_to_end_fps"] / report["bare_fps"], rel=1e-3)
    assert ratios["end_to_end/naive"] == pytest.approx(report["end_to_end_fps"] / report["naive_fps"], rel=1e-3)

    e2e = report["end_to_end"]
    assert set(e2e["stages"]) == PIPELINE_STAGES and all(s["items"] == 3 for s in e2e["stages"].values())
    assert e2e["dropped"] == 0  # a file: queues block, nothing is lost
    assert set(e2e["queue_occupancy"]) <= set(e2e["queue_peaks"])
    assert all(0 <= q["mean"] <= q["max"] <= q["maxsize"] for q in e2e["queue_occupancy"].values())
    with av.open(str(out)) as container:  # a real, playable file of the 3 frames
        assert sum(1 for _ in container.decode(video=0)) == 3

    naive = report["naive"]
    assert set(naive["stages"]) == NAIVE_STAGES
    assert naive["same_weights_check"]["label_agreement"] >= 0.99
    assert report["bare"]["precision"] == "fp32" and not any("computes in" in w for w in report["warnings"])

    h, w = report["frame_size"]
    expected = plan_geometry(Resize(mode="short_side", size=96), h, w).input_size
    assert report["input_size"] == list(expected) == report["bare"]["input_size"]
    assert report["flops"]["gmacs"] == pytest.approx(count_macs(fcn_onnx, (1, 3, *expected)).gmacs, abs=1e-3)
    assert report["date"] and report["machine"]["cores"] >= 1


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs the openvino extra")
def test_bf16_engine_is_named_and_its_agreement_reported(car_video, fcn_onnx):
    import openvino

    if "BF16" not in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no native BF16")
    report = _bench(
        str(car_video),
        "--model",
        str(fcn_onnx),
        "--frames",
        "2",
        "--size",
        "96",
        "--modes",
        "bare,naive",
        "--backend",
        "openvino",
        "--precision",
        "bf16",
    )
    streams = report["bare"]["streams"]  # a file's: OpenVINO's throughput choice
    assert report["bare"]["engine"] == "openvino (CPU, bf16" + (f", {streams} streams)" if streams > 1 else ")")
    assert report["bare"]["precision"] == "bf16"
    agreement = report["naive"]["same_weights_check"]["label_agreement"]
    assert 0.99 <= agreement < 1  # BF16 moves some labels; exactly equal would mean it ran in FP32
    assert f"labels agree on {agreement:.2%}" in " ".join(report["warnings"])


def test_naive_refuses_other_weights(car_video, fcn_onnx):
    proc = run_cli(
        "bench",
        str(car_video),
        "--model",
        str(fcn_onnx),
        "--frames",
        "2",
        "--size",
        "64",
        "--modes",
        "bare,naive",
        "--seed",
        "1",
    )
    assert proc.returncode != 0
    assert "not the same weights" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_model_without_torch_twin_skips_naive_and_plots(car_video, duc_onnx, tmp_path):
    pytest.importorskip("matplotlib", reason="needs the plots extra (matplotlib)")
    plot = tmp_path / "stages.png"
    report = _bench(str(car_video), "--model", str(duc_onnx), "--frames", "3", "--plot", str(plot))
    assert report["naive_fps"] is None and report["ratios"]["end_to_end/naive"] is None
    assert "torchvision" in report["skipped"]["naive"]
    assert report["input_size"] == [800, 800] and report["bare_fps"] > 0 and report["end_to_end_fps"] > 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_floor_from_a_given_peak_and_none_without(car_video, duc_onnx):
    report = _bench(
        str(car_video), "--model", str(duc_onnx), "--frames", "3", "--modes", "bare", "--peak-tflops", "2.5"
    )
    floor = report["floor"]
    assert floor["floor_ms"] == pytest.approx(2 * report["flops"]["gmacs"] / 2.5, abs=1e-3)
    assert floor["engine_ms"] == report["bare"]["stages"]["infer"]["p50_ms"] and floor["precision"] == "fp32"
    assert floor["engine_over_floor"] == pytest.approx(floor["engine_ms"] / floor["floor_ms"], rel=1e-2)
    assert floor["source"] == "--peak-tflops" and "gpu" not in report["bare"]  # no GPU memory on a CPU run
    plain = _bench(str(car_video), "--model", str(duc_onnx), "--frames", "2", "--modes", "bare")
    assert plain["floor"] is None  # a CPU has no datasheet entry


def test_gpu_datasheet_peaks_by_device_name():
    from streamseg.bench.floor import floor_report, gpu_peaks

    assert gpu_peaks("NVIDIA H100 80GB HBM3")["fp16"] == 989  # SXM
    assert gpu_peaks("NVIDIA H100 PCIe")["fp16"] == 756
    assert gpu_peaks("NVIDIA H200 NVL")["int8"] == 1671 and gpu_peaks("NVIDIA H200")["int8"] == 1979
    assert gpu_peaks("NVIDIA L40S")["fp32"] == 91.6 and gpu_peaks("NVIDIA L4")["fp32"] == 30.3
    assert gpu_peaks("Tesla T4")["int8"] == 130 and gpu_peaks("Intel Arc A770") is None
    # fcn_resnet50 at 520x520, 152.7 GMACs, FP16 on an H100 SXM: 0.309 ms at the tensor cores' dense peak
    report = floor_report(152.717, "fp16", 1.5, device_name="NVIDIA H100 80GB HBM3")
    assert report["floor_ms"] == pytest.approx(0.309, abs=1e-3) and report["engine_over_floor"] == pytest.approx(
        4.85, abs=0.01
    )
    fp32 = floor_report(152.717, "fp32", 20.0, device_name="NVIDIA A100-SXM4-80GB")
    assert fp32["floor_ms"] == pytest.approx(15.663, abs=1e-3) and fp32["floor_ms_tf32"] == pytest.approx(
        1.958, abs=1e-3
    )


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_present(), reason="no CUDA GPU")
def test_bench_on_a_gpu_reports_the_floor_and_gpu_memory(car_video, fcn_onnx):
    report = _bench(
        str(car_video), "--model", str(fcn_onnx), "--frames", "4", "--size", "260", "--modes", "bare,end-to-end"
    )
    bare = report["bare"]
    assert bare["device"] == "cuda" and bare["gpu_peak_allocated_mb"] > 0 and bare["gpu_device_used_mb"] > 0
    assert report["end_to_end"]["gpu_peak_allocated_mb"] > 0
    print(bare["engine"], report["floor"])
    if report["floor"] is not None:  # a GPU in the datasheet table
        assert 0 < report["floor"]["floor_ms"] < report["floor"]["engine_ms"]


def test_fcn_macs_match_torchvision(fcn_onnx):
    """torchvision lists 152.717 "GFLOPS" at 520x520 for the aux-head model: those are multiply-adds."""
    count = count_macs(fcn_onnx, (1, 3, 520, 520))
    aux_head = 65 * 65 * (1024 * 9 * 256 + 256 * 21)  # FCNHead(1024) at 1/8 of 520, not in the export
    assert (count.macs + aux_head) / 1e9 == pytest.approx(152.717, abs=0.01)
    assert count.uncounted == 0
    assert count_macs(fcn_onnx, (1, 3, 1040, 1040)).macs == pytest.approx(4 * count.macs, rel=0.01)


def test_macs_of_gemm_and_matmul(tmp_path):
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.random((8, 16), np.float32), "w"),
        numpy_helper.from_array(rng.random((5, 16), np.float32), "g"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["y"]),
            helper.make_node("Reshape", ["y", "shape"], ["y2"]),
            helper.make_node("Gemm", ["y2", "g"], ["z"], transB=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 8])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        initializer=weights + [numpy_helper.from_array(np.array([-1, 16], np.int64), "shape")],
    )
    path = tmp_path / "tiny.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString())
    count = count_macs(path, (2, 4, 8))
    assert count.by_op == {"MatMul": 2 * 4 * 16 * 8, "Gemm": 8 * 5 * 16}


@pytest.mark.slow
def test_bad_input_is_one_line(tmp_path, duc_onnx):
    proc = run_cli("bench", str(tmp_path / "missing.mp4"), "--model", str(duc_onnx), "--frames", "2")
    assert proc.returncode != 0 and "input not found" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("bench", str(tmp_path / "missing.mp4"), "--model", str(duc_onnx), "--modes", "bare,fast")
    assert proc.returncode != 0 and "modes" in proc.stderr and "Traceback" not in proc.stderr


def test_throughput_with_frames_in_flight_counts_from_the_full_pipe():
    """Two streams hand frames on in pairs or staggered: 2 frames a second either way, not more."""
    from streamseg.bench.modes import throughput

    pairs = [float(t) for t in range(10) for _ in range(2)]  # 0, 0, 1, 1, ..., 9, 9
    staggered = [0.5 * k for k in range(20)]
    assert throughput(pairs, in_flight=2) == pytest.approx(2.0)
    assert throughput(staggered, in_flight=2) == pytest.approx(2.0)
    assert throughput(pairs) == pytest.approx(19 / 9)  # from the first out: the bias the in-flight count removes
    assert throughput([1.0, 2.0], in_flight=2) == 0.0  # too few frames for a rate
