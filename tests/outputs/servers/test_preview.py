"""The live preview page: MJPEG stream and stats over HTTP, then in headless Chromium."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from streamseg import Pipeline

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAS_BROWSER = Path(CHROMIUM).exists() and importlib.util.find_spec("playwright") is not None
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def paced(pipeline: Pipeline, seconds_per_frame: float) -> tuple[threading.Thread, list[np.ndarray]]:
    """Consume results slowly in the background; returns the thread and the composited pictures seen."""
    pictures: list[np.ndarray] = []

    def consume():
        for result in pipeline:
            pictures.append(result.picture)
            time.sleep(seconds_per_frame)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    return thread, pictures


def closest_picture_error(shown: np.ndarray, pictures: list[np.ndarray]) -> float:
    """Mean abs difference to the most similar composited picture, at 1/8 size so JPEG noise averages out."""

    def small(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a, (96, 54), interpolation=cv2.INTER_AREA).astype(int)

    return min(np.abs(small(shown) - small(p)).mean() for p in pictures)


def read_mjpeg_parts(url: str, count: int) -> list[bytes]:
    """The first ``count`` JPEGs of a multipart/x-mixed-replace stream."""
    parts = []
    with urllib.request.urlopen(url, timeout=30) as stream:
        assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
        while len(parts) < count:
            line = stream.readline()
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                stream.readline()  # the blank line ending the part's headers
                parts.append(stream.read(length))
    return parts


def test_stream_and_stats_over_http(car_video, duc_onnx):
    with Pipeline(car_video, model=duc_onnx, max_frames=8, preview_port=0) as pipeline:
        base = pipeline.preview.url
        page = urllib.request.urlopen(base, timeout=10).read().decode()
        assert '<img id="video" src="/stream.mjpg"' in page
        consumer, pictures = paced(pipeline, 0.05)
        jpegs = read_mjpeg_parts(base + "stream.mjpg", 2)
        stats = json.loads(urllib.request.urlopen(base + "stats.json", timeout=10).read())
        consumer.join(timeout=120)
    frames = [np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")) for jpeg in jpegs]
    assert all(f.shape == (432, 768, 3) for f in frames)
    assert closest_picture_error(frames[0], pictures) < 1.5  # the composited pictures, JPEG'd
    assert not np.array_equal(frames[0], frames[1])  # two different frames, live
    assert stats["state"] in ("running", "stopped") and stats["frames"] >= 1 and stats["fps"] > 0
    assert stats["latency_ms"] > 0 and stats["source"] == str(car_video)
    fractions = [c["fraction"] for c in stats["classes"]]
    assert fractions == sorted(fractions, reverse=True) and 0 < sum(fractions) <= 1.0
    assert all(c["color"].startswith("#") and len(c["color"]) == 7 for c in stats["classes"])


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not HAS_BROWSER, reason="needs Debian's chromium and the playwright package")
def test_preview_page_in_headless_chromium(car_video, duc_onnx, tmp_path):
    """In a real browser the page shows the segmented video, and its stats update as frames go by."""
    from playwright.sync_api import sync_playwright

    with Pipeline(car_video, model=duc_onnx, max_frames=120, preview_port=0) as pipeline:
        consumer, pictures = paced(pipeline, 0.1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1200, "height": 700},
            )
            try:
                page = browser.new_page()
                page.goto(pipeline.preview.url)
                page.wait_for_function("Number(document.getElementById('frames').textContent) > 0", timeout=60_000)
                page.wait_for_function("document.getElementById('video').naturalWidth > 0", timeout=60_000)
                first = int(page.inner_text("#frames"))
                page.wait_for_function(
                    f"Number(document.getElementById('frames').textContent) > {first}", timeout=60_000
                )
                fps = float(page.inner_text("#fps"))
                latency = page.inner_text("#latency")
                class_rows = page.locator("#classes tr").count()
                video_png = page.locator("#video").screenshot(path=str(tmp_path / "video.png"))
                page.screenshot(path=str(tmp_path / "page.png"))
            finally:
                browser.close()
        pipeline.stop()
        consumer.join(timeout=120)
    shown = np.asarray(Image.open(io.BytesIO(video_png)).convert("RGB"))
    assert shown.shape[0] >= 400 and shown.shape[1] >= 700  # the element holds the 768x432 stream
    assert shown.std() > 20  # a picture, not a blank or uniform box
    assert len(np.unique(cv2.resize(shown, (96, 54)).reshape(-1, 3), axis=0)) > 200
    # and it is the pipeline's composited picture (JPEG'd), not just any busy image
    assert closest_picture_error(np.ascontiguousarray(shown[:432, :768]), pictures) < 1.5
    assert fps > 0 and latency.endswith(" ms") and class_rows >= 1


HOSTILE = '<img src=x onerror="window.pwned=(window.pwned||0)+1">{}<script>window.pwned=1</script>'


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not HAS_BROWSER, reason="needs Debian's chromium and the playwright package")
def test_hostile_class_names_show_as_text_in_headless_chromium(car_video, duc_onnx, tmp_path):
    """Class names come from model metadata: markup in them is shown, never run."""
    from playwright.sync_api import sync_playwright

    from streamseg.models import spec_from_onnx

    spec = spec_from_onnx(duc_onnx)
    names = tuple(HOSTILE.format(i) for i in range(spec.num_classes))
    with Pipeline(
        car_video, model=duc_onnx, spec=spec.model_copy(update={"classes": names}), max_frames=80, preview_port=0
    ) as pipeline:
        consumer, _ = paced(pipeline, 0.1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
            )
            try:
                page = browser.new_page()
                page.goto(pipeline.preview.url, wait_until="domcontentloaded")  # not "load": the MJPEG never ends
                page.wait_for_function("document.querySelectorAll('#classes tr').length > 0", timeout=60_000)
                page.wait_for_timeout(1200)  # two more refreshes: an onerror handler would have fired by now
                shown = page.locator("#classes tr td:first-child").all_inner_texts()
                injected = page.evaluate("document.querySelectorAll('#classes img, #classes script').length")
                pwned = page.evaluate("window.pwned === undefined ? 0 : window.pwned")
            finally:
                browser.close()
        pipeline.stop()
        consumer.join(timeout=120)
    assert shown and all(name in names for name in shown), shown  # the markup, verbatim, as text
    assert injected == 0 and pwned == 0


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not HAS_BROWSER, reason="needs Debian's chromium and the playwright package")
def test_the_page_switches_between_sources(duc_onnx, tmp_path):
    from playwright.sync_api import sync_playwright

    from tests.support.videos import make_video

    clips = [make_video(tmp_path / f"{name}.mp4", width=160, height=96, frames=10, fps=10) for name in ("one", "two")]
    with Pipeline(clips, model=duc_onnx, preview_port=0, live={"realtime": True, "loop": True}) as pipeline:
        consumer, _ = paced(pipeline, 0.0)
        base = pipeline.preview.url
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(json.loads(urllib.request.urlopen(base + "sources.json").read())) < 2:
            time.sleep(0.2)
        stats = json.loads(urllib.request.urlopen(base + "stats.json?source=two", timeout=10).read())
        assert (
            stats["name"] == "two" and stats["source"] == str(clips[1]) and sorted(stats["sources"]) == ["one", "two"]
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
            )
            try:
                page = browser.new_page()
                page.goto(base)
                page.wait_for_function("document.getElementById('sources').options.length == 2", timeout=60_000)
                page.select_option("#sources", "two")
                page.wait_for_function(
                    f"document.getElementById('source').textContent == {json.dumps(str(clips[1]))}", timeout=30_000
                )
                assert page.get_attribute("#video", "src") == "/stream.mjpg?source=two"
            finally:
                browser.close()
        pipeline.stop()
        consumer.join(timeout=60)
