"""DeepLab's classifier heads, as layer tables to put after a backbone.

* ``largefov_head``: DeepLab-LargeFOV's ``fc6`` (3x3, 1024, rate 12) + ReLU + dropout, ``fc7`` (1x1,
  1024) + ReLU + dropout, ``fc8_voc12`` (1x1, classes);
* ``vgg_aspp_head``: DeepLab-v2 VGG-16's atrous spatial pyramid pooling: four such branches from
  ``pool5``, ``fc6_i`` (rate ``rates[i]``), ``fc7_i``, ``fc8_voc12_i``, summed into ``fc8_voc12``
  (ASPP-L rates 6/12/18/24, ASPP-S 2/4/8/12);
* ``resnet_aspp_head``: DeepLab-v2 ResNet-101's ASPP-L: four 3x3 classifiers ``fc1_voc12_c0..c3``
  (rates 6/12/18/24, with bias) from ``res5c``, summed into ``fc1_voc12``.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence, Tuple

from .deeplab_layers import Layer, conv, scaled_width

__all__ = ["FC_WIDTH", "largefov_head", "vgg_aspp_head", "resnet_aspp_head"]

FC_WIDTH = 1024  # fc6 and fc7 of DeepLab's VGG-16 nets (the classification net's 4096, subsampled)


def _check(num_classes: int, rates: Sequence[int]) -> None:
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if not rates or any(int(r) < 1 for r in rates):
        raise ValueError(f"rates must be positive, got {tuple(rates)}")


def largefov_head(num_classes: int, width_multiplier: float = 1.0, widths: Optional[Mapping[str, int]] = None, *,
                  dropout_rate: float = 0.5, rate: int = 12) -> Tuple[Layer, ...]:
    """``fc6`` (rate ``rate``), ``drop6``, ``fc7``, ``drop7``, ``fc8_voc12``, reading the row above."""
    _check(num_classes, (rate,))
    return (
        conv("fc6", scaled_width("fc6", FC_WIDTH, width_multiplier, widths), dilation=rate),
        Layer("drop6", "dropout", rate=dropout_rate),
        conv("fc7", scaled_width("fc7", FC_WIDTH, width_multiplier, widths), kernel=1),
        Layer("drop7", "dropout", rate=dropout_rate),
        conv("fc8_voc12", num_classes, kernel=1, relu=False),
    )


def vgg_aspp_head(num_classes: int, rates: Sequence[int] = (6, 12, 18, 24), width_multiplier: float = 1.0,
                  widths: Optional[Mapping[str, int]] = None, *, dropout_rate: float = 0.5,
                  bottom: str = "pool5") -> Tuple[Layer, ...]:
    """The branches ``fc6_i, drop6_i, fc7_i, drop7_i, fc8_voc12_i`` (i = 1..len(rates)) and their sum ``fc8_voc12``."""
    _check(num_classes, rates)
    rows = []
    for i, rate in enumerate(rates, start=1):
        rows += [
            conv(f"fc6_{i}", scaled_width(f"fc6_{i}", FC_WIDTH, width_multiplier, widths), dilation=int(rate),
                 bottoms=(bottom,)),
            Layer(f"drop6_{i}", "dropout", rate=dropout_rate),
            conv(f"fc7_{i}", scaled_width(f"fc7_{i}", FC_WIDTH, width_multiplier, widths), kernel=1),
            Layer(f"drop7_{i}", "dropout", rate=dropout_rate),
            conv(f"fc8_voc12_{i}", num_classes, kernel=1, relu=False),
        ]
    rows.append(Layer("fc8_voc12", "sum", relu=False, bottoms=tuple(f"fc8_voc12_{i}" for i in range(1, len(rates) + 1))))
    return tuple(rows)


def resnet_aspp_head(num_classes: int, rates: Sequence[int] = (6, 12, 18, 24), *,
                     bottom: str = "res5c") -> Tuple[Layer, ...]:
    """``fc1_voc12_c0..c3`` (3x3, rate ``rates[i]``, bias, no ReLU) from ``bottom``, summed into ``fc1_voc12``."""
    _check(num_classes, rates)
    rows = [conv(f"fc1_voc12_c{i}", num_classes, dilation=int(rate), relu=False, bottoms=(bottom,))
            for i, rate in enumerate(rates)]
    rows.append(Layer("fc1_voc12", "sum", relu=False, bottoms=tuple(r.name for r in rows)))
    return tuple(rows)
