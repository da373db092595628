"""Shared fixtures: real media, exported models, generated videos."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="session")
def media() -> Path:
    if not (MEDIA / "car-detection.mp4").exists():
        pytest.skip(f"real footage not found at {MEDIA}")
    return MEDIA


@pytest.fixture(scope="session")
def car_video(media: Path) -> Path:
    return media / "car-detection.mp4"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, check: bool = False,
            input: str | None = None) -> subprocess.CompletedProcess:
    """``streamseg ARGS`` in a real subprocess, as a user would run it."""
    proc = subprocess.run([sys.executable, "-m", "streamseg", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"streamseg {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def fcn_onnx(tmp_path_factory) -> Path:
    """fcn_resnet50 with random weights, exported once per session (needs the export extra)."""
    if not HAS_TORCH:
        pytest.skip("needs the export extra (torch, torchvision)")
    path = tmp_path_factory.mktemp("models") / "fcn_resnet50.onnx"
    run_cli("models", "export", "fcn_resnet50", "--weights", "none", "--output", str(path), check=True)
    return path


@pytest.fixture(scope="session")
def duc_onnx(tmp_path_factory) -> Path:
    """The DUC stand-in with the zoo's I/O contract (no torch needed)."""
    path = tmp_path_factory.mktemp("models") / "duc_standin.onnx"
    run_cli("models", "export", "duc_resnet101_hdc", "--weights", "none", "--output", str(path), check=True)
    return path
