"""RunConfig checks its cross-field rules itself, once; the pipeline takes a config as it is."""

from __future__ import annotations

import pytest

from streamseg import Pipeline
from streamseg.config import RunConfig
from streamseg.errors import ConfigError


def test_latency_sizes_need_a_latency_budget():
    with pytest.raises(ConfigError, match=r"latency_sizes: only with a latency budget \(--latency-budget MS\)"):
        RunConfig.build({"latency_sizes": "64,48"})
    assert RunConfig.build({"latency_sizes": "48,64", "latency_budget": 100}).latency_sizes == (48, 64)


def test_the_pipeline_keeps_a_given_config_as_it_is(car_video, duc_onnx):
    config = RunConfig.build({"model": str(duc_onnx), "sources": [str(car_video)], "max_frames": 1})
    assert Pipeline(config=config).config is config  # not dumped and validated again
    merged = Pipeline(config=config, max_frames=2).config  # arguments on top: validated with them
    assert merged.max_frames == 2 and merged.sources == config.sources
