"""The naive baseline: the PyTorch Hub FCN example, applied to a video, as a user would write it.

Follows https://pytorch.org/hub/pytorch_vision_fcn_resnet101/ step by step:
torchvision ``ToTensor``/``Normalize`` on the CPU, eager FP32 ``model(x)['out'][0]``,
``argmax(0)``, a PIL palette image resized to the frame, then ``Image.blend`` and a
PyAV encode, one frame after the other on one thread of Python.

Two departures from the page, both to compare like with like:

* the frame is resized to the same model input size streamseg uses
  (``transforms.Resize(short_side)``); the page feeds the native size;
* the model is the one streamseg exported, with the same weights: torchvision's
  builder without the auxiliary head (the Hub model also runs ``aux``, +7% MACs),
  random weights seeded as ``streamseg models export --weights none`` seeds them,
  or torchvision's pretrained weights. ``streamseg bench`` checks the outputs agree
  with the ONNX model on a real frame before timing anything.

Needs the ``export`` extra (torch, torchvision). Run alone:

    python benchmarks/naive_hub.py INPUT OUTPUT.mp4 --model fcn_resnet50 --frames 30
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from PIL import Image

from streamseg.models import ZOO
from streamseg.models.export import build_fcn
from streamseg.models.torch_compat import import_torch, import_torchvision

STAGES = ("decode", "preprocess", "infer", "postprocess", "blend", "encode")


def load_model(name: str, weights: str = "none", *, seed: int = 0):
    """The eager torchvision model behind zoo entry ``name``, as ``models export`` builds it."""
    entry = ZOO.get(name)
    if entry is None or entry.torchvision_builder is None:
        raise ValueError(
            f"{name!r} has no torchvision builder: the Hub baseline covers "
            f"{', '.join(n for n, e in ZOO.items() if e.torchvision_builder)}"
        )
    chosen = entry.torchvision_weights if weights == "pretrained" else None
    return build_fcn(entry.torchvision_builder, chosen, num_classes=entry.spec.num_classes, seed=seed)


def hub_palette(num_classes: int = 21) -> bytes:
    """The Hub page's color per class, as the flat bytes ``putpalette`` takes."""
    torch = import_torch()
    palette = torch.tensor([2**25 - 1, 2**15 - 1, 2**21 - 1])
    colors = torch.as_tensor([i for i in range(num_classes)])[:, None] * palette
    return (colors % 255).numpy().astype("uint8").tobytes()


def run_naive(
    source: str | Path,
    output: str | Path,
    model,
    *,
    size: int = 520,
    frames: int | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> dict[str, list[float]]:
    """Segment ``source`` into ``output`` the Hub way; returns seconds per frame for each step."""
    torch = import_torch()
    transforms = import_torchvision().transforms
    preprocess = transforms.Compose(
        [
            transforms.Resize(size),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    colors = hub_palette()
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    with av.open(str(source)) as container, av.open(str(output), "w") as out:
        video = container.streams.video[0]
        stream = out.add_stream("h264", rate=video.average_rate or 25)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        stream.time_base = video.time_base
        decoded = container.decode(video)
        for index in range(frames if frames is not None else 1 << 62):
            t0 = time.perf_counter()
            frame = next(decoded, None)
            if frame is None:
                break
            input_image = frame.to_image()
            t1 = time.perf_counter()
            input_batch = preprocess(input_image).unsqueeze(0)
            t2 = time.perf_counter()
            with torch.no_grad():
                output_tensor = model(input_batch)["out"][0]
            t3 = time.perf_counter()
            output_predictions = output_tensor.argmax(0)
            r = Image.fromarray(output_predictions.byte().cpu().numpy()).resize(input_image.size)
            r.putpalette(colors)  # the page passes the (21, 3) array; today's Pillow wants it flat
            t4 = time.perf_counter()
            blended = Image.blend(input_image, r.convert("RGB"), 0.5)
            t5 = time.perf_counter()
            picture = av.VideoFrame.from_image(blended)
            picture.pts, picture.time_base = frame.pts, frame.time_base
            for packet in stream.encode(picture):
                out.mux(packet)
            t6 = time.perf_counter()
            for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                times[stage].append(seconds)
            if on_frame is not None:
                on_frame(index)
        for packet in stream.encode(None):
            out.mux(packet)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("output")
    parser.add_argument("--model", default="fcn_resnet50")
    parser.add_argument("--weights", choices=("none", "pretrained"), default="none")
    parser.add_argument("--size", type=int, default=520)
    parser.add_argument("--frames", type=int)
    args = parser.parse_args()
    model = load_model(args.model, args.weights)
    started = time.perf_counter()
    times = run_naive(args.source, args.output, model, size=args.size, frames=args.frames)
    count = len(times["infer"])
    print(f"{count} frames in {time.perf_counter() - started:.1f} s")
    for stage, values in times.items():
        print(f"  {stage:<12}{1000 * float(np.median(values)):9.1f} ms median")


if __name__ == "__main__":
    main()
