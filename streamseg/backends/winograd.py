"""3x3 convolutions as Winograd F(4x4, 3x3) in plain ONNX ops, for ONNX Runtime on the CPU.

ONNX Runtime's CPU convolutions already run near the CPU's FP32 peak (measured in
docs/benchmarks.md), so the way left to make them faster is fewer multiplications. Winograd's minimal
filtering (Lavin & Gray, 2015) computes each 4x4 block of outputs of a 3x3
convolution from a 6x6 block of inputs with 36 multiplications per channel pair
instead of 144, in FP32 throughout; cuDNN and oneDNN use the same algorithm.
Written as ONNX ops the 36 products become one batched MatMul, and the input
and output transforms become a small fixed convolution and a small MatMul.

Dilated convolutions (FCN and DUC run their last stages at dilation 2 and 4)
first split their input into dilation x dilation interleaved grids, on which
the convolution is an ordinary 3x3 one (TensorFlow's space-to-batch trick).

One rewritten graph serves every input size, one image at a time: the shapes its layout moves need
come from the input's shape at run time. Results differ from direct convolution by
rounding only: about 4e-6 of the output's range per layer (tested).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from streamseg.models.onnx_graph import constants

TILE = 4  # outputs per tile side: F(4x4, 3x3)
SPAN = TILE + 2  # inputs per tile side
# Lavin & Gray's F(4, 3) matrices, interpolation points 0, ±1, ±2 and infinity
_BT = np.array(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    np.float64,
)
_G = np.array(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    np.float64,
)
_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float64)
# below this many channel pairs (Cout x Cin) the transforms and the layout moves cost more than the
# products save: FCN's 256x256 and 128x128 convolutions ran slower this way (measured, 2-core Xeon)
MIN_CHANNEL_PRODUCT = 512 * 512
CHANNEL_CHUNK = 512  # input channels transformed at a time (see _winograd_nodes)


def rewrite(
    model: onnx.ModelProto,
    *,
    min_channel_product: int = MIN_CHANNEL_PRODUCT,
    channel_chunk: int = CHANNEL_CHUNK,
) -> tuple[onnx.ModelProto, int]:
    """``model`` with its eligible 3x3 convolutions in Winograd form, for one image of any height and
    width, changed in place (no second copy of the weights); also returns how many were rewritten."""
    _fix_batch(model)
    shapes = _tensor_shapes(model)
    weights = constants(model.graph)
    nodes, added, count = [], [], 0
    for node in model.graph.node:
        plan = _eligible(node, shapes, weights, min_channel_product)
        if plan is None:
            nodes.append(node)
            continue
        sub_nodes, sub_inits = _winograd_nodes(node, weights, *plan, channel_chunk)
        nodes += sub_nodes
        added += sub_inits
        count += 1
    used = {name for node in nodes for name in node.input}
    graph = model.graph
    del graph.node[:]
    graph.node.extend(nodes)
    for index in reversed(range(len(graph.initializer))):  # the replaced 3x3 weights
        if graph.initializer[index].name not in used:
            del graph.initializer[index]
    graph.initializer.extend(added)
    return model, count


def candidates(model: onnx.ModelProto, *, min_channel_product: int = MIN_CHANNEL_PRODUCT) -> int:
    """How many convolutions ``rewrite`` may take, judged from their weights and attributes alone."""
    weights = constants(model.graph)
    return sum(_eligible_conv(node, weights, min_channel_product) is not None for node in model.graph.node)


def _fix_batch(model: onnx.ModelProto) -> None:
    """One image where the batch axis is dynamic (batches then run frame by frame); a static batch axis
    stays as it is (and its convolutions direct: the layout moves assume one image)."""
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4 and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = 1


def _tensor_shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Each tensor's inferred shape, None where an axis is dynamic (height and width, mostly)."""
    # onnx's shape inference serializes the whole model, weights included (130 MB more for FCN):
    # infer on the graph alone, its weights only declared
    graph = model.graph
    declared = [helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)) for init in graph.initializer]
    bare = helper.make_model(
        helper.make_graph(graph.node, graph.name, list(graph.input) + declared, graph.output),
        opset_imports=model.opset_import,
        ir_version=model.ir_version,
    )
    inferred = shape_inference.infer_shapes(bare, data_prop=True)
    shapes = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        if value.type.tensor_type.HasField("shape"):
            dims = value.type.tensor_type.shape.dim
            shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return shapes


def _eligible(node, shapes, weights, min_channel_product: int) -> tuple[int] | None:
    """(dilation,) if ``node`` is a convolution ``_eligible_conv`` takes, on one image."""
    plan = _eligible_conv(node, weights, min_channel_product)
    if plan is None or len(shapes.get(node.input[0], [])) != 4:
        return None
    if shapes[node.input[0]][0] != 1:  # the layout moves below assume one image
        return None
    return plan


def _eligible_conv(node, weights, min_channel_product: int) -> tuple[int] | None:
    """(dilation,) if ``node`` is a 3x3, stride-1, ungrouped, 'same'-padded FP32 convolution
    with constant weights and enough channels to pay for the transforms; else None."""
    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in weights:
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    weight = weights[node.input[1]]
    if weight.data_type != onnx.TensorProto.FLOAT or list(weight.dims[2:]) != [3, 3]:
        return None
    if attrs.get("group", 1) != 1 or list(attrs.get("strides", [1, 1])) != [1, 1]:
        return None
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    dilation = list(attrs.get("dilations", [1, 1]))
    if dilation[0] != dilation[1] or list(attrs.get("pads", [0, 0, 0, 0])) != [dilation[0]] * 4:
        return None
    if len(node.input) > 2 and node.input[2] and node.input[2] not in weights:
        return None
    if weight.dims[0] * weight.dims[1] < min_channel_product:
        return None
    return (dilation[0],)


def _winograd_nodes(node, weights, dilation: int, channel_chunk: int):
    """The ops replacing ``node``: space-to-batch by dilation, input transform, 36 GEMMs,
    output transform, back to the image layout, crop, bias.

    Nothing in them depends on the input's height and width but a few integer ops on its shape: one
    rewritten graph serves every input size, so sources of several sizes share one session and one
    copy of the transformed filters (per-size graphs cost a session each: 1.9x the memory for three).
    """
    w = numpy_helper.to_array(weights[node.input[1]])
    out_channels, channels = w.shape[:2]
    d = dilation
    groups = d * d  # grids on which the convolution is undilated
    k2 = SPAN * SPAN
    name = (node.name or node.output[0]) + "_winograd"
    inits: list[onnx.TensorProto] = []

    def const(suffix: str, value) -> str:
        array = np.asarray(value)
        array = array.astype(np.int64 if array.dtype.kind in "iu" else np.float32)
        inits.append(numpy_helper.from_array(array, f"{name}_const_{suffix}"))
        return inits[-1].name

    def op(op_type: str, inputs: list[str], suffix: str, **attrs) -> str:
        out = f"{name}_{suffix}"
        nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    nodes: list[onnx.NodeProto] = []
    transformed = (_G.astype(np.float32) @ w.reshape(-1, 3, 3) @ _G.T.astype(np.float32)).reshape(-1, k2)
    filters = np.ascontiguousarray(transformed.T).reshape(k2, out_channels, channels)  # G w G^T per point
    input_transform = const("BT", np.einsum("ia,jb->ijab", _BT, _BT).reshape(k2, 1, SPAN, SPAN))
    output_transform = const("AT", np.einsum("pi,qj->pqij", _AT, _AT).reshape(TILE * TILE, k2))

    x = node.input[0]
    size = op("Gather", [op("Shape", [x], "shape"), const("hw_axes", [2, 3])], "size")  # (height, width)
    if d > 1:
        # ceil(h / d) rows per grid, in whole tiles, plus the halo: d x that in all, the first d rows of
        # which are the conv's own padding; the rest pads the last tile (integer ops on the shape)
        per_grid = op("Div", [op("Add", [size, const("d_less_1", d - 1)], "up_d"), const("d", d)], "per_grid")
        tiles = op("Div", [op("Add", [per_grid, const("tile_less_1", TILE - 1)], "up_tile"), const("tile", TILE)], "t")
        grid = op("Add", [op("Mul", [tiles, const("tile_rows", TILE)], "tile_rows"), const("halo", 2)], "grid")
        end = op("Sub", [op("Mul", [grid, const("d_rows", d)], "rows"), op("Add", [size, const("d_", d)], "hd")], "end")
        pads = op("Concat", [const("pads_start", [0, 0, d, d, 0, 0]), end], "pads", axis=0)
        x = op("Pad", [x, pads], "pad")
    # input channels in chunks, each transformed and multiplied before the next: the transformed
    # input is 2.25x the input, and a whole 2048-channel one would make ORT's arena hold it all
    starts = list(range(0, channels, channel_chunk))
    sizes = [min(channel_chunk, channels - start) for start in starts]
    chunks = [x] if len(sizes) == 1 else [f"{name}_chunk{i}" for i in range(len(sizes))]
    if len(sizes) > 1:
        nodes.append(helper.make_node("Split", [x, const("chunk_sizes", sizes)], chunks, name=f"{name}_split", axis=1))
    products, tile_grid = [], ""
    for i, (start, count, chunk) in enumerate(zip(starts, sizes, chunks)):
        # Reshape's 0 keeps the input's axis: the spatial axes pass through whatever their size
        if d > 1:  # each channel's rows and columns into d x d interleaved grids: planes (c, dy, dx)
            chunk = op("Reshape", [chunk, const(f"channels{i}", [count, 1, 0, 0])], f"channels{i}")
            chunk = op("SpaceToDepth", [chunk], f"phases{i}", blocksize=d)
        planes = op("Reshape", [chunk, const(f"planes{i}", [count * groups, 1, 0, 0])], f"planes{i}")
        # stride 4 over 6x6 windows: 1 row and column of padding before, and up to 4 after, fill the last
        # tile whatever the size (the Conv takes them for free; extra zero rows make no extra tile)
        v = op(
            "Conv",
            [planes, input_transform],
            f"input_transform{i}",
            strides=[TILE, TILE],
            pads=[0, 0, 0, 0] if d > 1 else [1, 1, TILE, TILE],
        )  # (c g, k2, th, tw)
        if i == 0:
            tile_grid = op("Gather", [op("Shape", [v], "v_shape"), const("tile_axes", [2, 3])], "tile_grid")
        v = op("Reshape", [v, const(f"v_shape{i}", [count, groups, k2, -1])], f"v{i}")
        v = op("Transpose", [v], f"v_by_point{i}", perm=[2, 0, 1, 3])  # (k2, c, g, tiles)
        v = op("Reshape", [v, const(f"v_matrix{i}", [k2, count, -1])], f"v_matrix{i}")
        u = const(f"U{i}", filters[:, :, start : start + count])
        products.append(op("MatMul", [u, v], f"products{i}"))  # (k2, co, g tiles)
    m = products[0] if len(products) == 1 else op("Sum", products, "products")
    m = op("Reshape", [m, const("m_matrix", [k2, -1])], "m_matrix")
    y = op("MatMul", [output_transform, m], "output_transform")  # ((py, px), co g tiles)
    # channels (py, px, co, dy, dx): DepthToSpace puts each 4x4 block in place on its grid, then,
    # one output channel per image, interleaves the d x d grids; both far faster than a Transpose
    blocks = op("Concat", [const("y_channels", [1, TILE * TILE * out_channels * groups]), tile_grid], "blocks", axis=0)
    y = op("Reshape", [y, blocks], "y_blocks")
    y = op("DepthToSpace", [y], "y_grids", blocksize=TILE, mode="DCR")
    if d > 1:
        y = op("Reshape", [y, const("y_grids_by_channel", [out_channels, groups, 0, 0])], "y_grids_by_channel")
        y = op("DepthToSpace", [y], "y_interleaved", blocksize=d, mode="DCR")
        y = op("Reshape", [y, const("y_image", [1, out_channels, 0, 0])], "y_image")
    crop = op("Slice", [y, const("crop_start", [0, 0]), size, const("crop_axes", [2, 3])], "crop")
    if len(node.input) > 2 and node.input[2]:
        bias = numpy_helper.to_array(weights[node.input[2]]).reshape(1, out_channels, 1, 1)
        nodes.append(helper.make_node("Add", [crop, const("bias", bias)], [node.output[0]], name=f"{name}_bias"))
    else:
        nodes.append(helper.make_node("Identity", [crop], [node.output[0]], name=f"{name}_out"))
    return nodes, inits
