"""Write ONNX files for the zoo models, with their spec embedded as metadata.

The torchvision models (FCN, DeepLabV3, LRASPP) go through ``torch.onnx``
(dynamic batch, H and W; BatchNorm folded into the convolutions). The DUC model is published only as ONNX;
for offline work a small stand-in with the same input/output contract is built with onnx's
helpers instead.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np

from streamseg.errors import ConfigError, DownloadError, ModelError
from streamseg.models import SPEC_METADATA_KEY, ZOO
from streamseg.models.out_only import out_only
from streamseg.models.spec import ModelSpec
from streamseg.models.torch_compat import import_torch, import_torchvision

log = logging.getLogger(__name__)

OPSET = 18
WEIGHTS = ("none", "pretrained")


def embed_spec(path: str | Path, spec: ModelSpec) -> None:
    """Store ``spec`` in the ONNX metadata, so ``--model PATH.onnx`` needs nothing else."""
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != SPEC_METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=SPEC_METADATA_KEY, value=spec.to_json())
    onnx.save(model, str(path))


def export(name: str, output: str | Path, *, weights: str = "none", seed: int = 0, labels: bool = False) -> Path:
    """Export zoo model ``name`` to ``output``; ``weights`` is ``none`` (random) or ``pretrained``.

    ``labels``: also output uint8 labels, the argmax over the classes (``streamseg.models.argmax``).
    """
    if name not in ZOO:
        raise ModelError(f"unknown model {name!r} (built-in: {', '.join(ZOO)})")
    if weights not in WEIGHTS:
        raise ConfigError(f"weights: must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    entry = ZOO[name]
    output = Path(output)
    if not output.parent.is_dir():
        raise ConfigError(f"output folder does not exist: {output.parent}")
    if entry.torchvision_builder is None:
        if weights == "pretrained":
            raise ModelError(f"{name} is published as ONNX only: run `streamseg models fetch {name}`")
        write_duc_standin(output, entry.spec, seed=seed)
    else:
        module = build_fcn(
            entry.torchvision_builder,
            entry.torchvision_weights if weights == "pretrained" else None,
            num_classes=entry.spec.num_classes,
            seed=seed,
        )
        export_torch_module(module, output)
    if labels:
        from streamseg.models.argmax import add_labels_output

        add_labels_output(output, entry.spec.output_name)
    embed_spec(output, entry.spec)
    return output


def build_fcn(builder: str, weights: str | None, *, num_classes: int, seed: int = 0, aux_loss: bool = False):
    """A torchvision segmentation model (FCN, DeepLabV3, LRASPP) in eval mode: pretrained or seeded random.

    Pretrained weights are torchvision's checksum-checked download. LRASPP has
    no aux head; ``aux_loss=False`` is what its builder accepts.
    """
    torch = import_torch()
    tv = import_torchvision()
    make = getattr(tv.models.segmentation, builder)
    if weights is None:
        torch.manual_seed(seed)
        return make(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux_loss).eval()
    enum_name, member = weights.split(".")
    weights_enum = getattr(getattr(tv.models.segmentation, enum_name), member)
    try:
        return make(weights=weights_enum, aux_loss=aux_loss).eval()
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a bad hash is a RuntimeError
        raise DownloadError(f"cannot get {weights} weights: {err} (offline? use --weights none)") from None


def export_torch_module(
    module,
    output: Path,
    *,
    input_name: str = "input",
    output_name: str = "out",
    sample_size: tuple[int, int] = (520, 520),
) -> None:
    """Export a torchvision segmentation model (a dict with ``out``) to ONNX with dynamic batch, height and width."""
    torch = import_torch()
    wrapped = out_only(module)
    sample = torch.randn(2, 3, *sample_size)  # a batch of 2: a sample of 1 would fix the batch axis at 1
    axes = {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # exporter progress and deprecation chatter
        # The TorchScript exporter first: ~10x faster than dynamo on a 2-core CPU (5 s against 80 s for LR-ASPP),
        # which is most of a newcomer's first minute. BatchNorm is fused first (as dynamo's export folds it) so
        # the weights keep their module names (the torch backend loads them by name). Dynamo where that fails.
        try:
            from torch.fx.experimental.optimization import fuse

            torch.onnx.export(
                fuse(wrapped),
                (sample,),
                str(output),
                dynamo=False,
                opset_version=OPSET,
                input_names=[input_name],
                output_names=[output_name],
                dynamic_axes={input_name: axes, output_name: axes},
            )
            return
        except Exception as err:  # noqa: BLE001 - fx tracing and the TorchScript exporter raise many kinds
            log.info("TorchScript ONNX export failed (%s); using the dynamo exporter", err)
        dims = {
            i: torch.export.Dim(name, min=1 if i == 0 else 32, max=64 if i == 0 else 4096) for i, name in axes.items()
        }
        program = torch.onnx.export(
            wrapped,
            (sample,),
            dynamo=True,
            opset_version=OPSET,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_shapes={"x": dims},
            verbose=False,
        )
    program.save(str(output), external_data=False)


def write_duc_standin(output: Path, spec: ModelSpec, *, seed: int = 0) -> None:
    """A small random network with the zoo DUC contract: ``data`` [1,3,800,800] -> ``seg_loss`` [1,C,h*w*r*r].

    Three stride-2 convolutions reach the DUC cell (8 px); a 1x1 convolution
    gives C*r*r channels, reshaped as the zoo's DUC layer lays them out.
    It runs far faster than the real ResNet-101 and says nothing about accuracy.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    h, w = spec.resize.fixed_size
    r, classes = spec.decode.subpixels, spec.num_classes
    widths = [3, 16, 32, 64]
    nodes, inits, previous = [], [], spec.input_name
    for i in range(3):
        weight = rng.normal(0, np.sqrt(2 / (9 * widths[i])), (widths[i + 1], widths[i], 3, 3)).astype(np.float32)
        bias = rng.normal(0, 0.1, widths[i + 1]).astype(np.float32)
        inits += [numpy_helper.from_array(weight, f"conv{i}.w"), numpy_helper.from_array(bias, f"conv{i}.b")]
        nodes.append(
            helper.make_node(
                "Conv",
                [previous, f"conv{i}.w", f"conv{i}.b"],
                [f"c{i}"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
            )
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        previous = f"r{i}"
    head = rng.normal(0, np.sqrt(2 / widths[-1]), (classes * r * r, widths[-1], 1, 1)).astype(np.float32)
    inits += [
        numpy_helper.from_array(head, "duc.w"),
        numpy_helper.from_array(np.array([1, classes, -1], np.int64), "duc.shape"),
    ]
    nodes.append(helper.make_node("Conv", [previous, "duc.w"], ["duc"], kernel_shape=[1, 1]))
    nodes.append(helper.make_node("Reshape", ["duc", "duc.shape"], [spec.output_name]))
    cells = (h // spec.decode.cell) * (w // spec.decode.cell) * r * r
    graph = helper.make_graph(
        nodes,
        "duc_resnet101_hdc_standin",
        [helper.make_tensor_value_info(spec.input_name, TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info(spec.output_name, TensorProto.FLOAT, [1, classes, cells])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="streamseg", ir_version=9
    )  # readable by older ONNX Runtime releases too
    onnx.checker.check_model(model)
    onnx.save(model, str(output))
