"""The training loop: SGD with momentum and weight decay, poly LR with warm-up, aux loss, AMP on a GPU.

Each epoch reshuffles with the generator seeded ``seed + epoch`` and reseeds
torch the same way, so a run resumed from ``last.pt`` repeats, step for step,
what the uninterrupted run would have done. After every epoch the model is
scored on the val split (mIoU, as ``streamseg eval`` computes it); the best
epoch's weights go to ``best.pt`` and, at the end, to ``model.onnx``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamseg.datasets.folders import IGNORE_INDEX, SegmentationFolder, read_classes
from streamseg.errors import ConfigError, SinkError
from streamseg.evaluation.metrics import ConfusionMatrix, SegmentationMetrics
from streamseg.models.palettes import voc_palette
from streamseg.models.torch_compat import import_torch
from streamseg.training import checkpoints
from streamseg.training.data import EvalSet, TrainSet
from streamseg.training.models import MODELS, build_model

log = logging.getLogger(__name__)

POLY_POWER = 0.9


@dataclass(frozen=True)
class TrainOptions:
    model: str
    data: Path
    output: Path
    format: str = "voc"
    num_classes: int | None = None  # default: the dataset's classes
    epochs: int = 30
    batch: int = 8
    lr: float | None = None  # default: the model's
    momentum: float = 0.9
    weight_decay: float = 1e-4
    aux_weight: float = 0.5
    warmup: int = 50  # iterations of linear warm-up
    base_size: int | None = None  # default: short side of the first training image
    crop_size: int | None = None  # default: min(base_size, 480)
    scale_range: tuple[float, float] = (0.5, 2.0)
    weights: str | None = None  # none | pretrained; default: pretrained where the model has it
    resume: Path | None = None
    device: str = "auto"
    workers: int = 0
    seed: int = 0
    export: bool = True
    train_split: str = "train"
    val_split: str = "val"
    progress: bool | None = None  # None: a bar on terminals only


@dataclass
class TrainResult:
    output: Path
    best_miou: float
    best_epoch: int
    epochs: int
    onnx: Path | None
    history: list[dict] = field(default_factory=list)


def train(opts: TrainOptions) -> TrainResult:
    torch = import_torch()
    _check(opts)
    device = _device(torch, opts.device)
    train_folder = SegmentationFolder(opts.data, opts.format, opts.train_split)
    val_folder = SegmentationFolder(opts.data, opts.format, opts.val_split)
    classes, palette = _classes(opts, train_folder)
    k = len(classes)
    base = opts.base_size or min(train_folder[0].image.shape[:2])
    crop = opts.crop_size or min(base, 480)
    meta = {
        "model": opts.model,
        "num_classes": k,
        "classes": list(classes),
        "palette": [list(c) for c in palette],
        "base_size": base,
        "crop_size": crop,
        "format": opts.format,
    }
    try:
        opts.output.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SinkError(f"cannot create {opts.output}: {err.strerror or err}") from None

    weights = opts.weights or ("pretrained" if MODELS[opts.model].pretrained else "none")
    model = build_model(opts.model, k, weights=weights, seed=opts.seed).to(device)
    lr = opts.lr or MODELS[opts.model].lr
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=opts.momentum, weight_decay=opts.weight_decay)
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    start, iteration, best_miou, best_epoch = 0, 0, -1.0, 0
    if opts.resume:
        state = checkpoints.load_resume(opts.resume, model=opts.model, num_classes=k)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start, iteration = state["epoch"], state["iteration"]
        if (opts.output / checkpoints.BEST).exists():  # else the first epoch here makes a best.pt
            best_miou, best_epoch = state["best_miou"], state["best_epoch"]
        if start >= opts.epochs:
            raise ConfigError(f"{opts.resume} has already trained {start} epochs: pass --epochs > {start}")
        log.info("resuming %s at epoch %d (iteration %d)", opts.model, start + 1, iteration)

    trainset = TrainSet(train_folder, num_classes=k, base_size=base, crop_size=crop, scale_range=opts.scale_range)
    evalset = EvalSet(val_folder, num_classes=k, base_size=base)
    steps = len(trainset) // opts.batch or 1
    total = steps * opts.epochs
    criterion = torch.nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    history = _read_history(opts.output, start) if opts.resume else []
    bar = _bar(total, iteration, opts.progress)
    try:
        for epoch in range(start, opts.epochs):
            began = time.monotonic()
            torch.manual_seed(opts.seed + epoch)
            loader = torch.utils.data.DataLoader(
                trainset,
                batch_size=opts.batch,
                shuffle=True,
                drop_last=len(trainset) >= opts.batch,
                num_workers=opts.workers,
                generator=torch.Generator().manual_seed(opts.seed + epoch),
                pin_memory=device.type == "cuda",
            )
            bar.set_description(f"epoch {epoch + 1}/{opts.epochs}")
            model.train()
            losses = []
            for images, masks in loader:
                for group in optimizer.param_groups:
                    group["lr"] = _poly_lr(lr, iteration, total, opts.warmup)
                images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                    outputs = model(images)
                    loss = criterion(outputs["out"], masks)
                    if "aux" in outputs and opts.aux_weight:
                        loss = loss + opts.aux_weight * criterion(outputs["aux"], masks)
                if not torch.isfinite(loss):
                    raise ConfigError(f"loss became {loss.item()} at iteration {iteration}: lower --lr")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                iteration += 1
                losses.append(loss.item())
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", lr=f"{optimizer.param_groups[0]['lr']:.4f}")
                bar.update(1)
            metrics = evaluate(model, evalset, k, device)
            improved = metrics.miou > best_miou or not (opts.output / checkpoints.BEST).exists()
            if improved:
                best_miou, best_epoch = metrics.miou, epoch + 1
                checkpoints.save(opts.output / checkpoints.BEST, model.state_dict())
            checkpoints.save(opts.output / checkpoints.LAST, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "epoch": epoch + 1, "iteration": iteration, "best_miou": best_miou, "best_epoch": best_epoch,
                "meta": meta})  # fmt: skip
            record = {
                "epoch": epoch + 1,
                "iteration": iteration,
                "loss": float(np.mean(losses)),
                "val_miou": metrics.miou,
                "val_pixel_accuracy": metrics.pixel_accuracy,
                "seconds": round(time.monotonic() - began, 1),
            }
            history.append(record)
            _write_history(opts.output, history)
            bar.write(
                f"epoch {epoch + 1}/{opts.epochs}: loss {record['loss']:.3f}, val mIoU {metrics.miou:.3f}, "
                f"pixel acc {metrics.pixel_accuracy:.3f}{' (best)' if improved else ''}, {record['seconds']} s",
                file=sys.stderr,
            )
    finally:
        bar.close()

    onnx = None
    if opts.export:
        model.load_state_dict(checkpoints.load_weights(opts.output / checkpoints.BEST))
        spec = checkpoints.model_spec(f"{opts.model}_{Path(opts.data).resolve().name}", classes, palette, base)
        onnx = checkpoints.export_onnx(model, opts.output / checkpoints.ONNX, spec)
    return TrainResult(opts.output, best_miou, best_epoch, opts.epochs, onnx, history)


def evaluate(model, evalset: EvalSet, num_classes: int, device=None) -> SegmentationMetrics:
    """mIoU etc. on ``evalset``, predicting as ``streamseg run`` does: argmax, then nearest resize to the mask."""
    torch = import_torch()
    import cv2

    device = device or torch.device("cpu")
    matrix = ConfusionMatrix(num_classes)
    model.eval()
    with torch.no_grad():
        for i in range(len(evalset)):
            image, mask = evalset[i]
            scores = model(image[None].to(device))["out"][0]
            labels = scores.argmax(0).to(torch.uint8).cpu().numpy()
            if labels.shape != tuple(mask.shape):
                labels = cv2.resize(labels, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST)
            matrix.update(labels, mask.numpy())
    return matrix.compute()


def _check(opts: TrainOptions) -> None:
    if opts.model not in MODELS:
        raise ConfigError(f"unknown model {opts.model!r} (trainable: {', '.join(MODELS)})")
    for name in ("epochs", "batch"):
        if getattr(opts, name) < 1:
            raise ConfigError(f"--{name} must be at least 1, got {getattr(opts, name)}")
    if opts.lr is not None and opts.lr <= 0:
        raise ConfigError(f"--lr must be > 0, got {opts.lr}")
    low, high = opts.scale_range
    if not 0 < low <= high:
        raise ConfigError(f"scale range must be 0 < low <= high, got {low}..{high}")
    if opts.crop_size is not None and opts.crop_size < 32 or opts.base_size is not None and opts.base_size < 32:
        raise ConfigError("--crop-size and --base-size must be at least 32")


def _device(torch, name: str):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA GPU is available to torch")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device must be auto, cpu or cuda[:N], got {name!r}") from None


def _classes(opts: TrainOptions, folder: SegmentationFolder) -> tuple[tuple[str, ...], tuple]:
    """The dataset's classes, cut or padded (``class_N``) to --num-classes."""
    classes, palette = read_classes(opts.data, opts.format)
    k = opts.num_classes or len(classes)
    if k < 2 or k > 255:
        raise ConfigError(f"--num-classes must be 2..255, got {k}")
    if k < len(classes):
        log.warning("training %d of the dataset's %d classes; labels >= %d are ignored", k, len(classes), k)
    extra = voc_palette(k)[len(classes) :]
    names = tuple(classes[:k]) + tuple(f"class_{i}" for i in range(len(classes), k))
    return names, tuple(palette[:k]) + extra


def _poly_lr(base: float, iteration: int, total: int, warmup: int) -> float:
    factor = (1 - min(iteration, total - 1) / total) ** POLY_POWER
    if iteration < warmup:
        factor *= (iteration + 1) / warmup
    return base * factor


def _bar(total: int, done: int, progress: bool | None):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=done,
        unit="it",
        disable=None if progress is None else not progress,
        dynamic_ncols=True,
        smoothing=0.05,
    )


def _write_history(folder: Path, history: list[dict]) -> None:
    (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))


def _read_history(folder: Path, epochs: int) -> list[dict]:
    path = folder / "history.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["epoch"] <= epochs]
