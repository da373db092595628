"""The built-in models, as data: spec, downloadable files and published accuracy.

Like torchvision's weight entries, each entry keeps the preprocessing and the
labels next to the files they belong to, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamseg.models.palettes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, VOC_CLASSES
from streamseg.models.spec import Decode, ModelSource, ModelSpec, Normalize, Resize

# The ONNX model zoo moved its files to validated/ in Dec 2023; pin the commit
# whose Git LFS pointers carry the sha256 values below.
_ZOO = "https://media.githubusercontent.com/media/onnx/models/b1eeaa1ac722dcc1cd1a8284bde34393dab61c3d/validated/vision/object_detection_segmentation"


@dataclass(frozen=True)
class Accuracy:
    metric: str  # e.g. "mIoU"
    value: float  # percent
    dataset: str
    reported_by: str


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    spec: ModelSpec
    files: dict[str, ModelSource] = field(default_factory=dict)  # variant -> ONNX download
    torchvision_builder: str | None = None  # for `models export`
    torchvision_weights: str | None = None  # the weights enum member, checksum-pinned by torchvision
    accuracy: tuple[Accuracy, ...] = ()
    gflops: float | None = None  # at the reference input size below
    gflops_input: tuple[int, int] | None = None


_IMAGENET = Normalize(range=1, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def _torchvision_voc_spec(name: str) -> ModelSpec:
    """torchvision's COCO-with-VOC-labels preset, the same for FCN, DeepLabV3 and LRASPP: short side 520, ImageNet."""
    return ModelSpec(
        name=name,
        input_name="input",
        output_name="out",
        normalize=_IMAGENET,
        resize=Resize(mode="short_side", size=520),
        classes=VOC_CLASSES,
        background=0,
    )


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry(
            name="fcn_resnet50",
            description="FCN, ResNet-50 backbone (torchvision), 21 VOC classes",
            spec=_torchvision_voc_spec("fcn_resnet50"),
            files={
                "fp32": ModelSource(
                    url=f"{_ZOO}/fcn/model/fcn-resnet50-12.onnx",
                    size=141193555,
                    sha256="eb5017d1b80372eb0b58552655274698817ba2e774437e2c2d3c0a613d2e99bd",
                ),
                "int8": ModelSource(
                    url=f"{_ZOO}/fcn/model/fcn-resnet50-12-int8.onnx",
                    size=35545058,
                    sha256="67fcba8ebd435c2fb6b297d2e7c084f3c3b9ae6bc7ae41453b748ae4ed8c0331",
                ),
            },
            torchvision_builder="fcn_resnet50",
            torchvision_weights="FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1",
            accuracy=(
                Accuracy("mIoU", 60.5, "COCO val2017, VOC classes", "torchvision"),
                Accuracy("pixel acc", 91.4, "COCO val2017, VOC classes", "torchvision"),
                Accuracy("mIoU", 65.0, "COCO val2017 (zoo notebook), fcn-resnet50-12", "ONNX model zoo"),
                Accuracy("mIoU", 64.7, "COCO val2017 (zoo notebook), fcn-resnet50-12-int8", "ONNX model zoo"),
            ),
            gflops=152.717,
            gflops_input=(520, 520),
        ),
        ZooEntry(
            name="fcn_resnet101",
            description="FCN, ResNet-101 backbone (torchvision), 21 VOC classes",
            spec=_torchvision_voc_spec("fcn_resnet101"),
            files={
                "fp32": ModelSource(
                    url=f"{_ZOO}/fcn/model/fcn-resnet101-11.onnx",
                    size=217069155,
                    sha256="fd63d026cf4b2e54ef2bffb766914ddbffef9bd7a67eba0e67dbf1514bcf539d",
                ),
            },
            torchvision_builder="fcn_resnet101",
            torchvision_weights="FCN_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1",
            accuracy=(
                Accuracy("mIoU", 63.7, "COCO val2017, VOC classes", "torchvision"),
                Accuracy("pixel acc", 91.9, "COCO val2017, VOC classes", "torchvision"),
                Accuracy("mIoU", 66.7, "COCO val2017 (zoo notebook), fcn-resnet101-11", "ONNX model zoo"),
            ),
            gflops=232.738,
            gflops_input=(520, 520),
        ),
        ZooEntry(
            name="lraspp_mobilenet_v3_large",
            description="Lite R-ASPP, MobileNetV3-Large backbone (torchvision), 21 VOC classes: the fastest",
            spec=_torchvision_voc_spec("lraspp_mobilenet_v3_large"),
            torchvision_builder="lraspp_mobilenet_v3_large",
            torchvision_weights="LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1",
            accuracy=(
                Accuracy("mIoU", 57.9, "COCO val2017, VOC classes", "torchvision"),
                Accuracy("pixel acc", 91.2, "COCO val2017, VOC classes", "torchvision"),
            ),
            gflops=2.086,
            gflops_input=(520, 520),
        ),
        ZooEntry(
            name="deeplabv3_mobilenet_v3_large",
            description="DeepLabV3, MobileNetV3-Large backbone (torchvision), 21 VOC classes",
            spec=_torchvision_voc_spec("deeplabv3_mobilenet_v3_large"),
            torchvision_builder="deeplabv3_mobilenet_v3_large",
            torchvision_weights="DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1",
            accuracy=(
                Accuracy("mIoU", 60.3, "COCO val2017, VOC classes", "torchvision"),
                Accuracy("pixel acc", 91.2, "COCO val2017, VOC classes", "torchvision"),
            ),
            gflops=10.452,
            gflops_input=(520, 520),
        ),
        ZooEntry(
            name="duc_resnet101_hdc",
            description="ResNet101-DUC-HDC (ONNX model zoo), 19 Cityscapes classes, 800x800 input",
            spec=ModelSpec(
                name="duc_resnet101_hdc",
                input_name="data",
                output_name="seg_loss",
                normalize=Normalize(range=255, mean=(122.675, 116.669, 104.008)),
                # fixed 800x800 input: frames are scaled to fit and padded with the mean
                resize=Resize(mode="letterbox", size=(800, 800), pad_multiple=8),
                decode=Decode(kind="duc", cell=8, subpixels=4),
                classes=CITYSCAPES_CLASSES,
                palette=CITYSCAPES_PALETTE,
                background=None,
            ),
            files={
                "fp32": ModelSource(
                    url=f"{_ZOO}/duc/model/ResNet101-DUC-12.onnx",
                    size=260671144,
                    sha256="11ebd46b66706e8bb45e74f67a616f0f61029014e99bd8ea7e55deb74a61e9b6",
                ),
                "int8": ModelSource(
                    url=f"{_ZOO}/duc/model/ResNet101-DUC-12-int8.onnx",
                    size=65552143,
                    sha256="08a3c24af5e375d064d7a4bb80b46191adf5f0f302fd4b5bee7f632ebdadbf67",
                ),
            },
            accuracy=(
                Accuracy("mIoU", 81.92, "Cityscapes val", "ONNX model zoo"),
                Accuracy("mIoU", 81.62, "Cityscapes val, ResNet101-DUC-12-int8", "ONNX model zoo"),
            ),
        ),
    )
}
