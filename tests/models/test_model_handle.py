"""One model handle per model: resolved once, its ONNX graph parsed once, shared by everything that needs it."""

from __future__ import annotations

import onnx

from streamseg import Pipeline
from streamseg.models import open_model
from streamseg.models.fetch import sha256_of


def test_a_run_parses_the_onnx_file_once(duc_onnx, car_video, tmp_path, monkeypatch):
    """`streamseg run VIDEO -m FILE.onnx --max-frames 2`: the embedded spec and the file's precision come
    from one parse (ONNX Runtime reads the file itself, without the onnx package)."""
    parsed: list[str] = []
    load = onnx.load

    def counting_load(path, *args, **kwargs):  # counts, and loads as onnx.load does
        parsed.append(str(path))
        return load(path, *args, **kwargs)

    monkeypatch.setattr(onnx, "load", counting_load)
    monkeypatch.setattr(onnx, "load_model", counting_load)
    out = tmp_path / "out.mp4"
    pipeline = Pipeline(car_video, duc_onnx, backend="onnxruntime", precision="fp32", outputs=[str(out)], max_frames=2)
    summary = pipeline.run()
    assert summary.frames_out == 2 and out.stat().st_size > 0
    assert parsed == [str(duc_onnx)]


def test_a_handle_carries_the_file_spec_precision_and_hash(duc_onnx):
    handle = open_model(str(duc_onnx))
    assert handle.path == duc_onnx and handle.spec.name.startswith("duc")
    assert handle.precision == "fp32" and handle.sha256 == sha256_of(duc_onnx)
    half = handle.with_spec(handle.spec.model_copy(update={"dtype": "float16"}))
    assert half.spec.dtype == "float16" and half.precision == "fp16"
    assert half.graph is handle.graph  # one parse, shared by the handles of one file
    copy = handle.graph_copy()
    copy.graph.node.pop()
    assert len(copy.graph.node) == len(handle.graph.graph.node) - 1  # a copy to rewrite; the handle's stays
