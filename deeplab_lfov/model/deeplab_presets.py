"""The paper's nets by name (arXiv:1606.00915, Table 3 and Sec. 4), and recognising them from weights.

=============  ===========  =========================================  ==========  ==========================
preset         backbone     head                                       MSC         released as
=============  ===========  =========================================  ==========  ==========================
``largefov``   VGG-16       LargeFOV: pool5a, fc6 rate 12, fc7, fc8    off         DeepLab-LargeFOV (v1)
``aspp-s``     VGG-16       ASPP, 4 x (fc6_i, fc7_i, fc8_i), rates     off         DeepLabv2_VGG16 (ASPP-S)
                            2/4/8/12, summed
``aspp-l``     VGG-16       the same, rates 6/12/18/24                 off         DeepLabv2_VGG16
``resnet101``  ResNet-101   ASPP-L: fc1_voc12_c0..c3 (3x3, rates       on (1,      DeepLabv2_ResNet101
                            6/12/18/24), summed                        0.75, 0.5)
=============  ===========  =========================================  ==========  ==========================

``build_net(name)`` builds one (``DeepLabLargeFOV`` for ``largefov``, else ``DeepLab``, wrapped in
``MSC`` when multi-scale); ``describe_weights`` tells which preset and widths a set of weights holds,
so a checkpoint or caffemodel can be built into the net it came from.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

from ..core._tf import tf
from ..core.constants import NUM_CLASSES
from ..core.errors import DeepLabError
from .deeplab_heads import largefov_head, resnet_aspp_head, vgg_aspp_head
from .deeplab_layers import Layer, classifier_names, conv_layers, table_shapes
from .deeplab_segmenter import MSC, DeepLab
from .largefov import DeepLabLargeFOV
from .resnet101_backbone import resnet101_backbone
from .vgg16_backbone import vgg16_backbone

__all__ = ["Preset", "MODELS", "net_tables", "build_net", "describe_weights", "from_tf1_names", "variable_shapes",
           "classifier_layers", "MAX_NET_VALUES"]


@dataclasses.dataclass(frozen=True)
class Preset:
    """One of the paper's nets: its backbone and head tables, atrous rates, and whether it runs MSC."""

    name: str
    backbone: str  # "vgg16" or "resnet101"
    head: str  # "largefov", "vgg_aspp" or "resnet_aspp"
    rates: Tuple[int, ...]
    msc: bool
    description: str


MODELS: Dict[str, Preset] = {
    "largefov": Preset("largefov", "vgg16", "largefov", (12,), False,
                       "DeepLab-LargeFOV (v1): VGG-16, atrous conv5 (rate 2), avg pool5a, fc6 3x3 rate 12 (1024), "
                       "fc7 (1024), fc8; output stride 8"),
    "aspp-s": Preset("aspp-s", "vgg16", "vgg_aspp", (2, 4, 8, 12), False,
                     "DeepLab-ASPP-S (v2): VGG-16, atrous conv5 (rate 2), four fc6-fc7-fc8 branches from pool5 at "
                     "rates 2/4/8/12, summed; output stride 8"),
    "aspp-l": Preset("aspp-l", "vgg16", "vgg_aspp", (6, 12, 18, 24), False,
                     "DeepLab-ASPP-L (v2, DeepLabv2_VGG16): VGG-16, atrous conv5 (rate 2), four fc6-fc7-fc8 branches "
                     "from pool5 at rates 6/12/18/24, summed; output stride 8"),
    "resnet101": Preset("resnet101", "resnet101", "resnet_aspp", (6, 12, 18, 24), True,
                        "DeepLab-v2 ResNet-101 (DeepLabv2_ResNet101): frozen batch norms, atrous res4 (rate 2) and "
                        "res5 (rate 4), ASPP-L classifiers fc1_voc12_c0..c3 summed; multi-scale inputs 1, 0.75, 0.5 "
                        "fused by max; output stride 8"),
}


def _preset(name: str) -> Preset:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r} ({', '.join(MODELS)})") from None


def net_tables(name: str, num_classes: int = NUM_CLASSES, *, width_multiplier: float = 1.0,
               widths: Optional[Mapping[str, int]] = None, dropout_rate: float = 0.5,
               rates: Optional[Sequence[int]] = None) -> Tuple[Tuple[Layer, ...], Tuple[Layer, ...]]:
    """``(backbone, head)`` tables of preset ``name`` (``rates`` overrides its atrous rates)."""
    preset = _preset(name)
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be positive, got {width_multiplier}")
    rates = tuple(rates or preset.rates)
    if preset.backbone == "resnet101":
        return resnet101_backbone(width_multiplier, widths), resnet_aspp_head(num_classes, rates)
    backbone = vgg16_backbone(width_multiplier, widths, pool5a=preset.head == "largefov")
    if preset.head == "largefov":
        (rate,) = rates
        return backbone, largefov_head(num_classes, width_multiplier, widths, dropout_rate=dropout_rate, rate=rate)
    return backbone, vgg_aspp_head(num_classes, rates, width_multiplier, widths, dropout_rate=dropout_rate)


# The largest DeepLab net is ResNet-101 (44 M values with its batch norms); weights that describe a net
# several times larger are not a DeepLab's, and building one would allocate before any check.
MAX_NET_VALUES = 200_000_000


def classifier_layers(name: str) -> Tuple[str, ...]:
    """The conv layers of preset ``name`` that form its classifier (what ``--not_restore_last`` leaves out)."""
    backbone, head = net_tables(name)
    return classifier_names(backbone + head)


def variable_shapes(name: str, num_classes: int = NUM_CLASSES, *,
                    widths: Optional[Mapping[str, int]] = None) -> Dict[str, Tuple[int, ...]]:
    """``{variable name: shape}`` of preset ``name`` with these widths, computed from its tables alone
    (nothing is allocated): what a set of untrusted weights must match before a net is built for it."""
    backbone, head = net_tables(name, num_classes, widths=widths)
    table = backbone + head
    channels = table_shapes(table)
    out: Dict[str, Tuple[int, ...]] = {}
    previous = "data"
    for layer in table:
        if layer.kind == "conv":
            cin = channels[(layer.bottoms or (previous,))[0]][2]
            out[f"{layer.name}/w"] = (layer.kernel, layer.kernel, cin, layer.filters)
            if layer.bias:
                out[f"{layer.name}/b"] = (layer.filters,)
            if layer.batch_norm:
                for variable in ("moving_mean", "moving_variance", "gamma", "beta"):
                    out[f"{layer.batch_norm}/{variable}"] = (layer.filters,)
        previous = layer.name
    return out


def build_net(name: str, num_classes: int = NUM_CLASSES, *, width_multiplier: float = 1.0,
              widths: Optional[Mapping[str, int]] = None, msc: Optional[bool] = None, seed: Optional[int] = 0,
              dropout_rate: float = 0.5, compute_dtype=tf.float32) -> Union[DeepLab, MSC]:
    """The net of preset ``name`` (``MODELS``), randomly initialised.

    Args:
      name: ``"largefov"``, ``"aspp-s"``, ``"aspp-l"`` or ``"resnet101"``.
      num_classes: outputs of the classifier(s).
      width_multiplier: scales every width but the classifiers' (1.0 = the published net).
      widths: explicit output widths per conv name, overriding the multiplier (see ``describe_weights``).
      msc: multi-scale inputs; ``None`` takes the preset's (on for ``resnet101`` only).
      seed, dropout_rate, compute_dtype: as ``DeepLabLargeFOV``'s.

    Returns a ``DeepLab`` (``DeepLabLargeFOV`` for ``largefov``), or ``MSC`` around it.

    Example:
      >>> net = build_net("resnet101", 21, width_multiplier=1 / 16)     # MSC(DeepLab)
      >>> net(tf.zeros([1, 65, 65, 3])).shape                           # (1, 9, 9, 21)
    """
    preset = _preset(name)
    if preset.name == "largefov":
        base = DeepLabLargeFOV(num_classes, width_multiplier, widths=widths, seed=seed, dropout_rate=dropout_rate,
                               compute_dtype=compute_dtype)
    else:
        backbone, head = net_tables(name, num_classes, width_multiplier=width_multiplier, widths=widths,
                                    dropout_rate=dropout_rate)
        base = DeepLab(backbone, head, model_name=name, seed=seed, compute_dtype=compute_dtype,
                       name="deeplab_" + name.replace("-", "_"))
    return MSC(base) if (preset.msc if msc is None else msc) else base


def _shape(value) -> Tuple[int, ...]:
    return tuple(int(d) for d in getattr(value, "shape", value))


def _classifier_key(name: str, shapes: Mapping[str, Tuple[int, ...]]) -> Optional[str]:
    """``<name>/w``, or the one key naming it for another dataset (``fc8_pascal``, ``fc8_coco_1``)."""
    if f"{name}/w" in shapes:
        return f"{name}/w"
    if name == "fc8_voc12":  # LargeFOV: any fc8* layer, as the classic converters accepted
        pattern = re.compile(r"fc8[A-Za-z0-9_]*/w")
    else:
        pattern = re.compile(re.escape(name).replace("voc12", "[A-Za-z0-9]+") + "/w")
    keys = [k for k in shapes if pattern.fullmatch(k)]
    if len(keys) > 1:
        raise DeepLabError(f"several classifier layers in the weights could be {name}: {', '.join(sorted(keys))}")
    return keys[0] if keys else None


def describe_weights(shapes: Mapping[str, object], *, source: str = "weights") -> Tuple[str, Dict[str, int], Optional[int]]:
    """``(preset name, widths, num_classes)`` of a set of weights under this package's names.

    ``shapes`` maps names (``conv1/w``, ``bn_conv1/moving_mean`` ...) to arrays or bare shapes (as
    ``weights.checkpoint_shapes`` gives).  The family is recognised from the names: ResNet-101 from
    ``res2a_branch2a`` (with ``fc1_voc12_c0..c3``), VGG-16 ASPP from ``fc6_1..fc6_4``, LargeFOV from
    ``fc6`` (its ``pool5a`` has no weights) or VGG convolutions alone.  ASPP-S and ASPP-L have
    identical variables and shapes (only their rates differ), so ASPP weights are reported as
    ``"aspp-l"``, the released ``DeepLabv2_VGG16``; build ``"aspp-s"`` explicitly when you know better.

    ``widths`` gives the output width of every conv but the classifiers, for ``build_net(widths=...)``.
    The classifiers may be absent (initialisation weights, ``--not_restore_last``): ``num_classes`` is then
    ``None``.  Raises ``DeepLabError`` (starting with ``source``, the file) when no DeepLab net is
    recognised or the classifiers disagree.
    """
    shapes = {k: _shape(v) for k, v in shapes.items()}
    if "res2a_branch2a/w" in shapes or "fc1_voc12_c0/w" in shapes:
        name = "resnet101"
    elif "fc6_1/w" in shapes:
        name = "aspp-l"
    elif "fc6/w" in shapes or "conv1_1/w" in shapes:
        name = "largefov"
    else:
        raise DeepLabError(f"{source}: holds no DeepLab-LargeFOV layers (conv1_1 ... fc8_voc12) nor those of "
                           f"another DeepLab net known here (fc6_1 ..., res2a_branch2a ...; models: {', '.join(MODELS)})")
    backbone, head = net_tables(name)
    table = backbone + head
    classifiers = classifier_names(table)
    widths = {}
    for layer in conv_layers(table):
        shape = shapes.get(f"{layer.name}/w", ())
        if layer.name not in classifiers and len(shape) == 4:
            widths[layer.name] = shape[-1]
    classes = set()
    for layer in classifiers:
        key = _classifier_key(layer, shapes)
        if key is not None and len(shapes[key]) == 4:
            classes.add(shapes[key][-1])
    if len(classes) > 1:
        raise DeepLabError(f"{source}: the classifiers {', '.join(classifiers)} disagree on the number of classes: "
                           f"{sorted(classes)}")
    return name, widths, (classes.pop() if classes else None)


def from_tf1_names(weights: Mapping[str, object]) -> Dict[str, object]:
    """TF1 ports' names to this package's: ``<conv>/weights`` -> ``<conv>/w``, ``<conv>/biases`` -> ``<conv>/b``
    (DrSleep/tensorflow-deeplab-resnet, slim); batch-norm names (``<bn>/moving_mean``, ``moving_variance``,
    ``gamma``, ``beta``) are the same in both, and other names pass unchanged."""
    out = {}
    for key, value in weights.items():
        new = re.sub(r"/weights$", "/w", key)
        new = re.sub(r"/biases$", "/b", new)
        if new in out:
            raise DeepLabError(f"two variables map to {new}: {key} and another")
        out[new] = value
    return out
