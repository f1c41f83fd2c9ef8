"""The rows of a DeepLab net as data, and the two weight holders every net is built from.

A net is a tuple of ``Layer`` rows in Caffe's order with Caffe's names: a backbone table
(``vgg16_backbone``, ``resnet101_backbone``) followed by a head table (``deeplab_heads``).  A row
reads the row above unless it names its ``bottoms``; its output (its Caffe *top*) carries its own
name, with Caffe's in-place layers folded in (a conv row's top is after its BatchNorm, Scale and
ReLU, as Caffe's in-place tops are).  Rows:

* ``conv``: ``filters``, ``kernel``, ``stride``, ``pad``, ``dilation``, ``bias``, optionally the
  ``batch_norm``/``scale`` Caffe layers applied to it, then ``relu``;
* ``max_pool`` / ``avg_pool``: Caffe's pooling (``kernel``, ``stride``, ``pad``, ceil mode);
* ``dropout``: ``rate`` (training only);
* ``sum`` / ``max``: Caffe's ``Eltwise`` over ``bottoms``, then ``relu`` (a ResNet block's ``res2a``,
  ASPP's ``fc8_voc12``).

``table_shapes`` walks a table with Caffe's size formulas, so sizes, parameters and FLOPs are
computed from the same data the net runs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..core._tf import tf
from .ops import caffe_pool_output_size, conv_output_size

__all__ = ["Layer", "conv", "pool", "conv_layers", "table_shapes", "output_size", "classifier_names",
           "scaled_width", "BN_EPSILON", "Conv", "FrozenBatchNorm"]

# Caffe's BatchNormParameter.eps default; no DeepLab-v2 prototxt sets another.
BN_EPSILON = 1e-5

LAYER_KINDS = ("conv", "max_pool", "avg_pool", "dropout", "sum", "max")


@dataclasses.dataclass(frozen=True)
class Layer:
    """One row of a layer table, with the fields of Caffe's layer parameters."""

    name: str
    kind: str  # "conv", "max_pool", "avg_pool", "dropout", "sum" or "max" (Eltwise)
    filters: int = 0
    kernel: int = 3
    stride: int = 1
    pad: int = 0
    dilation: int = 1
    relu: bool = True
    rate: float = 0.0  # dropout rate
    bottoms: Tuple[str, ...] = ()  # the tops it reads ("data" is the input); () = the row above
    bias: bool = True  # convolutions followed by BatchNorm have none
    batch_norm: str = ""  # the Caffe BatchNorm layer after the conv ("bn2a_branch1"), "" for none
    scale: str = ""  # the Caffe Scale layer after that BatchNorm ("scale2a_branch1")


def conv(name: str, filters: int, *, kernel: int = 3, stride: int = 1, dilation: int = 1, pad: Optional[int] = None,
         relu: bool = True, bottoms: Sequence[str] = (), bias: bool = True, batch_norm: bool = False) -> Layer:
    """A convolution row; ``pad`` defaults to 'same' (``dilation * (kernel - 1) / 2``, as every DeepLab conv
    but ResNet's strided ones); ``batch_norm`` names its BatchNorm/Scale layers the MSRA way
    (``res2a_branch1`` -> ``bn2a_branch1``/``scale2a_branch1``, ``conv1`` -> ``bn_conv1``/``scale_conv1``)."""
    if pad is None:
        pad = dilation * (kernel - 1) // 2
    bn = sc = ""
    if batch_norm:
        tag = name[len("res"):] if name.startswith("res") else "_" + name
        bn, sc = "bn" + tag, "scale" + tag
    return Layer(name, "conv", filters=filters, kernel=kernel, stride=stride, pad=pad, dilation=dilation, relu=relu,
                 bottoms=tuple(bottoms), bias=bias, batch_norm=bn, scale=sc)


def pool(name: str, kind: str, stride: int, *, kernel: int = 3, pad: int = 1) -> Layer:
    return Layer(name, kind, kernel=kernel, stride=stride, pad=pad)


def scaled_width(name: str, full: int, width_multiplier: float, widths: Optional[Mapping[str, int]]) -> int:
    """The width of conv ``name``: ``widths[name]`` if given, else ``full * width_multiplier`` (at least 1)."""
    if widths and name in widths:
        return int(widths[name])
    return max(1, int(round(full * width_multiplier)))


def conv_layers(table: Iterable[Layer]) -> Tuple[Layer, ...]:
    """The layers that own weights, in order."""
    return tuple(layer for layer in table if layer.kind == "conv")


def classifier_names(table: Sequence[Layer]) -> Tuple[str, ...]:
    """The convolutions whose outputs are the logits: the last row, or the bottoms of a final Eltwise."""
    last = table[-1]
    return tuple(last.bottoms) if last.kind in ("sum", "max") else (last.name,)


def _inputs(layer: Layer, previous: str) -> Tuple[str, ...]:
    return layer.bottoms or (previous,)


def table_shapes(table: Sequence[Layer], height: Optional[int] = None, width: Optional[int] = None,
                 in_channels: int = 3) -> Dict[str, Tuple[Optional[int], Optional[int], int]]:
    """``{top: (height, width, channels)}`` of every row (and ``"data"``) for an input of ``height`` x ``width``.

    Sizes follow Caffe's formulas (ceil-mode pooling, floor-mode convolution); with no size only the
    channels are computed.  Also checks the table: unique names, bottoms that exist above, Eltwise
    inputs of equal channels (a ``ValueError`` otherwise).
    """
    shapes: Dict[str, Tuple[Optional[int], Optional[int], int]] = {"data": (height, width, in_channels)}
    previous = "data"
    for layer in table:
        if layer.kind not in LAYER_KINDS:
            raise ValueError(f"layer {layer.name!r}: unknown kind {layer.kind!r}")
        if layer.name in shapes:
            raise ValueError(f"layer name {layer.name!r} appears twice in the table")
        missing = [b for b in _inputs(layer, previous) if b not in shapes]
        if missing:
            raise ValueError(f"layer {layer.name!r} reads {missing[0]!r}, which no layer above produces")
        h, w, c = shapes[_inputs(layer, previous)[0]]
        if layer.kind == "conv":
            if h is not None:
                h, w = (conv_output_size(s, layer.kernel, layer.stride, layer.pad, layer.dilation) for s in (h, w))
            c = layer.filters
        elif layer.kind in ("max_pool", "avg_pool"):
            if h is not None:
                h, w = (caffe_pool_output_size(s, layer.kernel, layer.stride, layer.pad) for s in (h, w))
        elif layer.kind in ("sum", "max"):
            others = {shapes[b] for b in layer.bottoms}
            if not layer.bottoms or len({s[2] for s in others}) != 1 or (h is not None and len(others) != 1):
                raise ValueError(f"Eltwise {layer.name!r} needs inputs of one shape, got "
                                 f"{[shapes[b] for b in layer.bottoms]}")
        if h is not None and (h < 1 or w < 1):
            raise ValueError(f"input {height}x{width} is too small: layer {layer.name!r} would be {h}x{w}")
        shapes[layer.name] = (h, w, c)
        previous = layer.name
    return shapes


def output_size(table: Sequence[Layer], height: int, width: int) -> Tuple[int, int]:
    """Spatial size of the last row's output (the logits) for an input of ``height`` x ``width``."""
    h, w, _ = table_shapes(table, height, width)[table[-1].name]
    return h, w


class Conv(tf.Module):
    """Weights of one convolution: ``w`` in HWIO, and ``b`` unless the layer has no bias."""

    def __init__(self, layer: Layer, in_channels: int, rng: np.random.RandomState, *, classifier: bool = False):
        super().__init__(name=layer.name)
        shape = (layer.kernel, layer.kernel, in_channels, layer.filters)
        if classifier:
            std = 0.01  # DeepLab's classifier initialisation (Caffe 'gaussian', std 0.01)
        else:
            std = math.sqrt(2.0 / (layer.kernel * layer.kernel * in_channels))  # He et al.
        self.w = tf.Variable(rng.normal(0.0, std, size=shape).astype(np.float32), name="w", dtype=tf.float32)
        if layer.bias:
            self.b = tf.Variable(np.zeros([layer.filters], np.float32), name="b", dtype=tf.float32)

    def named_variables(self, name: str) -> Dict[str, tf.Variable]:
        out = {f"{name}/w": self.w}
        if hasattr(self, "b"):
            out[f"{name}/b"] = self.b
        return out


class FrozenBatchNorm(tf.Module):
    """Caffe's ``BatchNorm`` (``use_global_stats``) followed by its ``Scale``: one affine map per channel.

    The four tensors keep their Caffe/TF1 names (``<bn>/moving_mean``, ``<bn>/moving_variance``,
    ``<bn>/gamma``, ``<bn>/beta``, as DrSleep's TF1 port and slim's ``batch_norm`` name them), so Caffe
    blobs and TF1 checkpoints map one to one; the map ``x * gamma / sqrt(var + eps) + (beta - mean *
    gamma / sqrt(var + eps))`` is computed from them at each call.

    Frozen, and not trainable: DeepLab-v2 fine-tunes ResNet-101 with 1 to 10 images per GPU (batch
    10, 321x321 crops), far too few for useful batch statistics, so its prototxts set
    ``use_global_stats: true`` and ``lr_mult: 0`` on every BatchNorm and Scale, keeping the statistics
    and affine parameters learned on ImageNet (and MS-COCO).  The variables are created with
    ``trainable=False`` and training never changes them.
    """

    def __init__(self, name: str, channels: int, epsilon: float = BN_EPSILON):
        super().__init__(name=name)
        self.epsilon = float(epsilon)
        self.moving_mean = tf.Variable(np.zeros([channels], np.float32), trainable=False, name="moving_mean")
        self.moving_variance = tf.Variable(np.ones([channels], np.float32), trainable=False, name="moving_variance")
        self.gamma = tf.Variable(np.ones([channels], np.float32), trainable=False, name="gamma")
        self.beta = tf.Variable(np.zeros([channels], np.float32), trainable=False, name="beta")

    def named_variables(self, name: str) -> Dict[str, tf.Variable]:
        return {f"{name}/moving_mean": self.moving_mean, f"{name}/moving_variance": self.moving_variance,
                f"{name}/gamma": self.gamma, f"{name}/beta": self.beta}

    def affine(self, dtype=tf.float32) -> Tuple[tf.Tensor, tf.Tensor]:
        """``(scale, shift)`` per channel, computed in float32 and cast to ``dtype``."""
        scale = self.gamma * tf.math.rsqrt(self.moving_variance + self.epsilon)
        shift = self.beta - self.moving_mean * scale
        return tf.cast(scale, dtype), tf.cast(shift, dtype)

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        scale, shift = self.affine(x.dtype)
        return x * scale + shift
