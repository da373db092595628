"""The trainable segmentation models, each returning torchvision's ``{"out"[, "aux"]}`` dict.

``fcn_resnet50`` / ``fcn_resnet101`` are torchvision's FCNs,
``deeplabv3_mobilenet_v3_large`` and ``lraspp_mobilenet_v3_large`` its
mobile models (LRASPP has no aux head). With ``weights="pretrained"`` they
start from the COCO-with-VOC-labels weights (checksum-pinned download) and
get new final 1x1 convolutions for the dataset's class count, as in the usual
fine-tuning tutorials.
``fcn_tiny`` is a small FCN for CPUs: a four-stage residual backbone whose
last stage is dilated, so the output stride is 8, with torchvision's FCN
heads on top. It has no pretrained weights; it learns from scratch in minutes
on simple data such as ``streamseg datasets synth``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from streamseg.errors import ConfigError
from streamseg.models.export import build_fcn
from streamseg.models.torch_compat import import_torch, import_torchvision
from streamseg.models.zoo import ZOO


@dataclass(frozen=True)
class TrainableModel:
    name: str
    description: str
    lr: float  # default base learning rate (SGD, batch ~8)
    pretrained: bool  # torchvision weights exist for it
    aux: bool = True  # has an auxiliary head (trained with --aux-weight)


MODELS = {
    m.name: m
    for m in (
        TrainableModel(
            "fcn_tiny", "FCN head on a 4-stage residual net, output stride 8, ~0.9 M parameters", 0.05, False
        ),
        TrainableModel("fcn_resnet50", "torchvision FCN, ResNet-50 backbone", 0.01, True),
        TrainableModel("fcn_resnet101", "torchvision FCN, ResNet-101 backbone", 0.01, True),
        TrainableModel("deeplabv3_mobilenet_v3_large", "torchvision DeepLabV3, MobileNetV3-Large backbone", 0.01, True),
        TrainableModel(
            "lraspp_mobilenet_v3_large",
            "torchvision LR-ASPP, MobileNetV3-Large backbone, no aux head",
            0.01,
            True,
            aux=False,
        ),
    )
}


def build_model(name: str, num_classes: int, *, weights: str = "none", seed: int = 0):
    """Model ``name`` in train mode with ``num_classes`` outputs on both heads; ``weights`` is none|pretrained."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r} (trainable: {', '.join(MODELS)})")
    if weights not in ("none", "pretrained"):
        raise ConfigError(f"weights must be none or pretrained, got {weights!r}")
    if num_classes < 2:
        raise ConfigError(f"num_classes must be at least 2, got {num_classes}")
    torch = import_torch()
    if name == "fcn_tiny":
        if weights == "pretrained":
            raise ConfigError("fcn_tiny has no pretrained weights: use --weights none")
        torch.manual_seed(seed)
        return _fcn_tiny(num_classes).train()
    entry, aux = ZOO[name], MODELS[name].aux
    builder = entry.torchvision_builder
    if builder is None:
        raise ConfigError(f"{name} has no torchvision counterpart to train")
    if weights == "none":
        return build_fcn(builder, None, num_classes=num_classes, seed=seed, aux_loss=aux).train()
    model = build_fcn(builder, entry.torchvision_weights, num_classes=entry.spec.num_classes, aux_loss=aux)
    torch.manual_seed(seed)
    for owner, attr in _last_layers(model):  # new last layers for the new classes
        old = getattr(owner, attr)
        setattr(owner, attr, torch.nn.Conv2d(old.in_channels, num_classes, kernel_size=1))
    return model.train()


def _last_layers(model) -> list[tuple[object, str]]:
    """(module, attribute) of each final 1x1 class convolution: index 4 of FCN/DeepLab heads, LRASPP's two branches."""
    if hasattr(model.classifier, "low_classifier"):  # LRASPP: the two branches' logits are summed
        return [(model.classifier, "low_classifier"), (model.classifier, "high_classifier")]
    heads = [model.classifier] + ([model.aux_classifier] if model.aux_classifier is not None else [])
    return [(head, "4") for head in heads]


def _fcn_tiny(num_classes: int):
    segmentation = import_torchvision().models.segmentation  # imports torch, or says which extra is missing
    from torch import nn

    class Block(nn.Module):
        """Two 3x3 convolutions with a residual connection (projected when the shape changes)."""

        def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=dilation, dilation=dilation, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.project = None
            if stride != 1 or cin != cout:
                self.project = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            identity = x if self.project is None else self.project(x)
            y = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(y)) + identity)

    class Backbone(nn.Module):
        """Strides 2, 4, 8, 8 (dilated); returns the last stage as ``out`` and the third as ``aux``."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU(inplace=True))
            self.layer1 = Block(24, 32, stride=2)
            self.layer2 = Block(32, 64, stride=2)
            self.layer3 = nn.Sequential(Block(64, 128, dilation=2), Block(128, 128, dilation=4))

        def forward(self, x):
            aux = self.layer2(self.layer1(self.stem(x)))
            return OrderedDict(out=self.layer3(aux), aux=aux)

    head = segmentation.fcn.FCNHead
    return segmentation.fcn.FCN(Backbone(), head(128, num_classes), head(64, num_classes))
