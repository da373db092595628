"""Sources of several input sizes share one ONNX Runtime session: memory does not grow with the sizes.

Before, each input size got its own Winograd session with its own transformed weights: three sizes in
one run peaked at 1.9x the memory of one (fcn_resnet50, --size 260). Now one size-independent graph
serves them all. Peak memory, not time: nothing here depends on the CPU's speed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from streamseg.backends import create_backend
from streamseg.models import spec_from_onnx
from streamseg.preprocess import CpuPreprocessor
from streamseg.sources import open_source
from tests.support.memory import wait_with_peak_rss
from tests.support.videos import cut_clip

# width x height: three sizes, landscape and portrait; at --size 96 the inputs are 96x171, 96x128, 128x96
SIZES = [(768, 432), (640, 480), (480, 640)]
# one copy of the weights: the three-size run holds what the one-size run held, plus the two extra
# sources' decode, composite and encode buffers; each per-size session added ~0.4x
BOUND = 1.3


def peak_of_run(model: Path, clips: list[Path], out: Path) -> int:
    """``streamseg run`` over ``clips`` at --size 96: the child's own peak resident bytes."""
    out.mkdir()
    args = [sys.executable, "-m", "streamseg", "run", *map(str, clips), "-m", str(model), "--size", "96"]
    args += ["-o", f"{out}/{{name}}.mp4", "--backend", "onnxruntime", "--no-progress"]
    with (out / "stderr.txt").open("w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        peak = wait_with_peak_rss(proc, timeout=600)
    stderr = (out / "stderr.txt").read_text()
    assert proc.returncode == 0, stderr
    assert "Winograd F(4x4,3x3) on 4 convolutions" in stderr, stderr
    assert all((out / f"{clip.stem}.mp4").stat().st_size > 0 for clip in clips)
    return peak


def test_three_input_sizes_take_the_memory_of_one(fcn_onnx, car_video, tmp_path):
    clips = [cut_clip(car_video, tmp_path / f"clip_{w}x{h}.mp4", w, h, frames=3) for w, h in SIZES]
    one = peak_of_run(fcn_onnx, clips[:1], tmp_path / "one")
    three = peak_of_run(fcn_onnx, clips, tmp_path / "three")
    print(f"peak RSS: one size {one / 2**20:.0f} MiB, three sizes {three / 2**20:.0f} MiB ({three / one:.2f}x)")
    assert three <= BOUND * one, f"three sizes {three / 2**20:.0f} MiB, one {one / 2**20:.0f} MiB"


def test_one_session_gives_each_size_the_labels_of_direct_convolution(fcn_onnx, car_video, tmp_path):
    """The size-independent Winograd graph, at three sizes in turn and back to the first, against the plain
    model: the same scores to rounding and the same labels, as the per-size graphs gave (tests/backends/
    test_winograd.py held those to the same bounds)."""
    spec = spec_from_onnx(fcn_onnx)
    spec = spec.model_copy(update={"resize": spec.resize.model_copy(update={"size": 96})})
    pre = CpuPreprocessor(spec)
    clips = [cut_clip(car_video, tmp_path / f"clip_{w}x{h}.mp4", w, h, frames=1) for w, h in SIZES]
    tensors = []
    for clip in [*clips, clips[0]]:
        source = open_source(str(clip), max_frames=1)
        tensors += [pre(frame).tensor for frame in source.frames()]
        source.close()
    assert [t.shape[2:] for t in tensors] == [(96, 171), (96, 128), (128, 96), (96, 171)]
    winograd = create_backend("onnxruntime", fcn_onnx, spec)
    direct = create_backend("onnxruntime", fcn_onnx, spec, winograd=False)
    try:
        assert winograd.name.endswith("Winograd F(4x4,3x3) on 4 convolutions")
        for tensor in tensors:
            got, expected = winograd.run(tensor), direct.run(tensor)
            assert got.shape == expected.shape
            assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
            assert (got.argmax(1) == expected.argmax(1)).mean() > 0.999
    finally:
        winograd.close()
        direct.close()
