"""The lane's steps as a contract: the temporal plug-in negotiates once, from the source's real frame rate."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from streamseg.backends import create_backend
from streamseg.composite import Compositor
from streamseg.config import RunConfig
from streamseg.errors import ConfigError
from streamseg.frames import StreamInfo
from streamseg.models import ZOO
from streamseg.postprocess import CpuPostprocessor
from streamseg.stages.cpu import CpuLane, CpuStages
from streamseg.temporal import FixedInterval, LatencyBudget
from streamseg.temporal.steps import TemporalPlugin
from tests.conftest import NEEDS_EXPORT
from tests.support.extras import HAS_TORCH

SPEC = ZOO["duc_resnet101_hdc"].spec  # the duc_onnx stand-in's


def cpu_lane() -> CpuLane:
    return CpuLane(SPEC, Compositor(SPEC), CpuPostprocessor(SPEC), scores=False)


def info(rate: Fraction | None) -> StreamInfo:
    return StreamInfo("cam", 160, 96, Fraction(1, 90000), rate, None, live=True)


def never_run(tensor):  # the plug-in times inferences only while a latency budget warms up
    raise AssertionError("no inference expected")


@pytest.mark.parametrize("rate", [Fraction(25), Fraction(25, 2), None])
def test_a_latency_budget_is_made_once_the_source_opens_from_its_frame_rate(rate):
    plugin = TemporalPlugin(RunConfig.build({"latency_budget": 300}), SPEC, never_run)
    steps = plugin.wrap(cpu_lane())
    assert steps.policy is None  # nothing made before the camera's frame period is known
    steps.on_open(info(rate), reconnects=lambda: 0)
    frame_ms = 1000 / float(rate or 25)  # a source that says no rate: 25 fps
    assert isinstance(steps.policy, LatencyBudget) and steps.policy.frame_ms == pytest.approx(frame_ms)
    assert steps.room() == math.ceil(300 / frame_ms)  # 12 at 25 fps, 4 at 12.5 fps: frames held behind a key
    assert steps.labels_origin and steps.counts()["inferred"] == 0


def test_an_interval_holds_up_its_own_frames():
    steps = TemporalPlugin(RunConfig.build({"interval": 3}), SPEC, never_run).wrap(cpu_lane())
    assert steps.counts() == {
        "inferred": 0,
        "propagated": 0,
        "interval": 3,
        "settings": "not opened",
        "propagation": "flow",
    }
    steps.on_open(info(Fraction(25)), reconnects=lambda: 0)
    assert type(steps.policy) is FixedInterval and steps.room() == 3
    assert not steps.motion_vectors  # the source is asked for vectors only with --propagate mv


def test_propagate_mv_asks_the_source_for_motion_vectors():
    steps = TemporalPlugin(RunConfig.build({"interval": 3, "propagate": "mv"}), SPEC, never_run).wrap(cpu_lane())
    assert steps.motion_vectors  # read before the lane opens its source


def test_plain_steps_hold_nothing_back(duc_onnx):
    lane = CpuStages(create_backend("onnxruntime", duc_onnx), SPEC, Compositor(SPEC)).lane()
    lane.on_open(info(Fraction(25)), reconnects=lambda: 0)
    assert lane.room() == 0 and lane.counts() == {} and not lane.labels_origin and not lane.motion_vectors
    shapes: list[tuple[int, ...]] = []
    assert lane.warm_up(96, 160, lambda shape: shapes.append(shape) or True)
    assert shapes == [(1, 3, 800, 800)]  # the model input of a 160x96 frame: letterboxed into 800x800


def test_temporal_options_are_refused_where_the_stage_set_lacks_the_plug_in(duc_onnx):
    if not HAS_TORCH:
        pytest.skip(NEEDS_EXPORT)
    from streamseg.build import lane_plugins
    from streamseg.stages.cuda import CudaStages

    assert "temporal" in CpuStages.plugins and "temporal" not in CudaStages.plugins
    # the CUDA stage set runs its torch ops on the CPU too (device="cpu"), so this machine can build one
    stages = CudaStages(create_backend("onnxruntime", duc_onnx), SPEC, Compositor(SPEC), device="cpu")
    with pytest.raises(ConfigError, match="interval, smooth and latency_budget: the cpu stages lack the temporal"):
        lane_plugins(RunConfig.build({"interval": 2}), stages, SPEC, never_run)
    assert lane_plugins(RunConfig.build({}), stages, SPEC, never_run) == []
