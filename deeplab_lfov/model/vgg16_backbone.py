"""The VGG-16 backbone of DeepLab-LargeFOV and DeepLab-ASPP (v1 and v2), as a layer table.

``conv1_1 .. conv5_3`` (3x3, pad 1; ``conv5_*`` atrous with rate 2), ``pool1..pool3`` MAX 3x3/2 pad 1
and ``pool4``/``pool5`` MAX 3x3/1 pad 1 (output stride 8).  LargeFOV adds ``pool5a``, an AVE 3x3/1
pad 1; DeepLab-v2's ASPP nets do not (its ``DeepLabv2_VGG16`` prototxt goes from ``pool5`` straight to
the four ``fc6_i``).
"""

from __future__ import annotations

from typing import Mapping, Optional, Tuple

from .deeplab_layers import Layer, conv, pool, scaled_width

__all__ = ["VGG16_WIDTHS", "vgg16_backbone"]

# Full widths of each block; ``width_multiplier`` scales them.
VGG16_WIDTHS = {"conv1": 64, "conv2": 128, "conv3": 256, "conv4": 512, "conv5": 512}


def vgg16_backbone(width_multiplier: float = 1.0, widths: Optional[Mapping[str, int]] = None, *,
                   pool5a: bool = False) -> Tuple[Layer, ...]:
    """The VGG-16 rows up to ``pool5`` (or ``pool5a`` when ``pool5a``, LargeFOV's).

    ``widths``: explicit filters per conv name (``{"conv1_1": 8, ...}``), overriding the multiplier.
    """
    table = []
    for block, (convs, pool_stride) in enumerate([(2, 2), (2, 2), (3, 2), (3, 1), (3, 1)], start=1):
        for i in range(1, convs + 1):
            name = f"conv{block}_{i}"
            table.append(conv(name, scaled_width(name, VGG16_WIDTHS[f"conv{block}"], width_multiplier, widths),
                              dilation=2 if block == 5 else 1))
        table.append(pool(f"pool{block}", "max_pool", pool_stride))
    if pool5a:
        table.append(pool("pool5a", "avg_pool", 1))
    return tuple(table)
