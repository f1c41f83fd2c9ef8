"""The ResNet-101 backbone of DeepLab-v2 (``DeepLabv2_ResNet101``), as a layer table, MSRA's Caffe layout.

``conv1`` 7x7/2 pad 3 (no bias) + ``bn_conv1``/``scale_conv1`` + ReLU, ``pool1`` MAX 3x3/2 pad 1 (Caffe
ceil mode), then bottleneck blocks ``res2{a,b,c}``, ``res3{a,b1..b3}``, ``res4{a,b1..b22}``,
``res5{a,b,c}``.  A block is ``_branch2a`` (1x1), ``_branch2b`` (3x3), ``_branch2c`` (1x1), each with its
``bn``/``scale`` pair and a ReLU after 2a and 2b; a projection shortcut ``_branch1`` (1x1) in the ``a``
blocks only; an Eltwise SUM + ReLU named after the block.  Output stride 8: only ``res3a``'s 1x1s have
stride 2 (the MSRA layout strides the 1x1, not the 3x3), ``res4``'s 3x3s are atrous with rate 2 and
``res5``'s with rate 4 where the classification net had strides (321 -> 41, 513 -> 65).
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Tuple

from .deeplab_layers import Layer, conv, pool, scaled_width

__all__ = ["RESNET101_BLOCKS", "resnet101_block_names", "resnet101_backbone"]

RESNET101_BLOCKS = (3, 4, 23, 3)  # blocks of res2, res3, res4, res5
_DILATION = {2: 1, 3: 1, 4: 2, 5: 4}


def resnet101_block_names(stage: int, count: int) -> List[str]:
    """MSRA's block names: ``res2a, res2b, res2c`` for a stage of 3 blocks, else ``a, b1, b2, ...``."""
    if count <= 3:
        return [f"res{stage}{'abc'[i]}" for i in range(count)]
    return [f"res{stage}a"] + [f"res{stage}b{i}" for i in range(1, count)]


def resnet101_backbone(width_multiplier: float = 1.0, widths: Optional[Mapping[str, int]] = None) -> Tuple[Layer, ...]:
    """The ResNet-101 rows up to ``res5c`` (2048 channels at full width).

    ``width_multiplier`` scales every width (64, 64/256, 128/512, 256/1024, 512/2048); ``widths`` gives
    explicit filters per conv name, overriding it (a block's ``_branch1``/``_branch2c`` and the block
    before must agree, as the sums need).
    """
    def width(name: str, full: int) -> int:
        return scaled_width(name, full, width_multiplier, widths)

    table = [conv("conv1", width("conv1", 64), kernel=7, stride=2, pad=3, bias=False, batch_norm=True),
             pool("pool1", "max_pool", 2)]
    previous = "pool1"
    for stage, count in zip((2, 3, 4, 5), RESNET101_BLOCKS):
        mid, out = 64 * 2 ** (stage - 2), 256 * 2 ** (stage - 2)
        for index, block in enumerate(resnet101_block_names(stage, count)):
            stride = 2 if block == "res3a" else 1
            shortcut = previous
            if index == 0:
                shortcut = f"{block}_branch1"
                table.append(conv(shortcut, width(shortcut, out), kernel=1, stride=stride, relu=False,
                                  bottoms=(previous,), bias=False, batch_norm=True))
            table += [
                conv(f"{block}_branch2a", width(f"{block}_branch2a", mid), kernel=1, stride=stride,
                     bottoms=(previous,), bias=False, batch_norm=True),
                conv(f"{block}_branch2b", width(f"{block}_branch2b", mid), dilation=_DILATION[stage], bias=False,
                     batch_norm=True),
                conv(f"{block}_branch2c", width(f"{block}_branch2c", out), kernel=1, relu=False, bias=False,
                     batch_norm=True),
                Layer(block, "sum", bottoms=(shortcut, f"{block}_branch2c")),
            ]
            previous = block
    return tuple(table)
