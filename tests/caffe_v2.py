"""Test helper: random DeepLab-v2 caffemodels and an independent numpy forward pass with Caffe semantics.

Covers the two released DeepLab-v2 nets of arXiv:1606.00915:

* ``DeepLabv2_VGG16`` with ASPP (``"aspp-l"``: rates 6/12/18/24, ``"aspp-s"``: rates 2/4/8/12);
* ``DeepLabv2_ResNet101`` with ASPP-L, optionally with its multi-scale inputs (MSC).

Nothing here uses TensorFlow: blobs are generated with numpy, serialized with the project's private
``NetParameter`` message, and the forward pass is written out layer by layer (convolution as a loop
over kernel taps with an einsum per tap, Caffe's ceil-mode max pooling, BatchNorm in
``use_global_stats`` mode, Scale, Eltwise, and the DeepLab ``Interp`` layer).  It is slow but small
inputs (33x33, 40x48) run in well under a second at reduced widths.

Layer-name conventions (caffemodel names, in file order) and where they were read
-------------------------------------------------------------------------------
ResNet-101 (``misc/deploy.prototxt`` of DrSleep/tensorflow-deeplab-resnet, and
``models/deeplab/cocostuff/config/deeplabv2_resnet101/{train,test}.prototxt`` of nightrome/cocostuff10k,
a copy of the DeepLab-v2 release with ``${EXP}`` in place of ``voc12``):

* ``conv1`` (7x7/2, pad 3, no bias) -> ``bn_conv1`` (BatchNorm) -> ``scale_conv1`` (Scale) -> ReLU ->
  ``pool1`` (MAX 3x3/2, pad 1, Caffe ceil mode);
* blocks ``res2{a,b,c}``, ``res3{a,b1,b2,b3}``, ``res4{a,b1..b22}``, ``res5{a,b,c}``; in each block, in
  this order: ``res<blk>_branch1`` (projection shortcut, ``a`` blocks only), then ``res<blk>_branch2a``
  (1x1), ``_branch2b`` (3x3), ``_branch2c`` (1x1); each conv is followed by ``bn<blk>_<branch>`` and
  ``scale<blk>_<branch>``; ReLU after 2a, 2b and after the Eltwise SUM whose top is ``res<blk>``;
* stride 2 only in ``res3a_branch1`` and ``res3a_branch2a`` (the 1x1s, MSRA layout); ``res4*_branch2b``
  dilation 2 / pad 2, ``res5*_branch2b`` dilation 4 / pad 4; no other conv strides or dilations;
* classifier ``fc1_voc12_c0..c3`` (3x3, bias, dilation = pad = 6/12/18/24) summed into ``fc1_voc12``;
* BatchNorm has three blobs (mean, variance, moving-average factor); the effective statistics are
  ``blob / factor`` (``factor == 0`` -> zeros), eps is not set in any prototxt so Caffe's default
  ``1e-5`` applies (``BatchNormParameter.eps``, ``src/caffe/proto/caffe.proto`` of maweifei/deeplab-ver2,
  a copy of deeplab-public-ver2); Scale has two blobs (gamma, beta);
* MSC (cocostuff10k train/test.prototxt): ``data_res05`` = Interp(shrink_factor 2) and ``data_res075`` =
  Interp(shrink_factor 4, zoom_factor 3) of ``data``; the whole backbone is repeated with suffixes
  ``_res05`` and ``_res075`` on every layer and top name (parameters shared by ``param { name }``), and
  ``fc1_voc12_res05_c*``/``fc1_voc12_res075_c*``; ``fc1_voc12_res05_interp`` = Interp(zoom 2),
  ``fc1_voc12_res075_interp`` = Interp(shrink 3, zoom 4); ``fc_fusion`` = Eltwise MAX of ``fc1_voc12``,
  ``fc1_voc12_res075_interp``, ``fc1_voc12_res05_interp``; test adds ``fc1_interp`` = Interp(zoom 8).
  File order: resolution 1, resolution 1/2 (``_res05``), resolution 3/4 (``_res075``), then the three
  classifiers in the same order.  The released MSC caffemodel stores the shared copies too
  (kazuto1011/deeplab-pytorch ``convert.py`` skips layers named ``*res075*``/``*res05*``).

VGG-16 ASPP (``models/deeplab/cocostuff/config/deeplabv2_vgg16/{train,test}.prototxt`` of
nightrome/cocostuff10k, ASPP-L): ``conv1_1 .. conv5_3`` (3x3 pad 1, ``conv5_*`` dilation 2 pad 2),
``pool1..pool3`` MAX 3x3/2 pad 1, ``pool4`` and ``pool5`` MAX 3x3/1 pad 1, *no* ``pool5a`` (unlike
LargeFOV); four branches from ``pool5``, in file order ``fc6_i`` (3x3, 1024, dilation = pad = rate),
``fc7_i`` (1x1, 1024), ``fc8_voc12_i`` (1x1, classes), i = 1..4, with ReLU + Dropout(0.5) after fc6_i and
fc7_i; ``fc8_voc12`` = Eltwise SUM; test adds ``fc8_interp`` = Interp(zoom 8).  ASPP-S uses the same
layout with rates 2/4/8/12 (paper, Sec. 4.1; its prototxt was not found in the searched sources).

``Interp`` (``src/caffe/layers/interp_layer.cpp`` + ``src/caffe/util/interp.cpp`` of
maweifei/deeplab-ver2): output size ``(in - 1) // shrink + 1`` then ``out + (out - 1) * (zoom - 1)``;
bilinear with aligned corners (ratio ``(in - 1) / (out - 1)``, computed in float32).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from deeplab_lfov.model import caffe_import as _caffe_import

read_caffemodel = _caffe_import.read_caffemodel

__all__ = [
    "ASPP_RATES", "RESNET101_BLOCKS", "RESNET_ASPP_RATES", "MSC_SUFFIXES",
    "aspp_vgg16_blobs", "resnet101_blobs", "resnet101_block_names", "caffemodel_bytes",
    "layer_type", "reference_forward", "conv2d", "max_pool", "batch_norm", "scale", "interp",
    "conv_out_size", "pool_out_size", "interp_out_size", "resnet101_out_size", "vgg16_out_size",
    "drsleep_tf1_weights", "read_caffemodel",
]

ASPP_RATES = {"aspp-s": (2, 4, 8, 12), "aspp-l": (6, 12, 18, 24)}
RESNET_ASPP_RATES = (6, 12, 18, 24)
RESNET101_BLOCKS = (3, 4, 23, 3)          # res2, res3, res4, res5
MSC_SUFFIXES = ("_res05", "_res075")      # file order in the released train/test prototxt
CAFFE_BN_EPS = 1e-5                       # BatchNormParameter.eps default; no DeepLab prototxt sets it

Blobs = Dict[str, List[np.ndarray]]


# ----------------------------------------------------------------------------- names and shapes
def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def resnet101_block_names(stage: int, count: int) -> List[str]:
    """MSRA block names: ``res2a, res2b, res2c`` when a stage has 3 blocks, else ``a, b1, b2, ...``."""
    if count <= 3:
        return [f"res{stage}{'abc'[i]}" for i in range(count)]
    return [f"res{stage}a"] + [f"res{stage}b{i}" for i in range(1, count)]


def _vgg16_convs(width: float) -> List[Tuple[str, int, int]]:
    """(name, in, out) of the 13 VGG-16 convolutions."""
    plan = [("conv1", 64, 2), ("conv2", 128, 2), ("conv3", 256, 3), ("conv4", 512, 3), ("conv5", 512, 3)]
    out, c_in = [], 3
    for prefix, c, n in plan:
        c = _scaled(c, width)
        for i in range(1, n + 1):
            out.append((f"{prefix}_{i}", c_in, c))
            c_in = c
    return out


# ----------------------------------------------------------------------------- random blobs
def _he(rng, out_c, in_c, k, gain=1.0):
    std = gain * math.sqrt(2.0 / (in_c * k * k))
    return rng.normal(0.0, std, size=(out_c, in_c, k, k)).astype(np.float32)


def _bias(rng, n, scale=0.1):
    return rng.uniform(-scale, scale, size=(n,)).astype(np.float32)


def aspp_vgg16_blobs(variant: str, width: float = 1.0, num_classes: int = 21, seed: int = 0) -> Blobs:
    """Random blobs of DeepLabv2_VGG16 ASPP (``"aspp-s"`` or ``"aspp-l"``) in Caffe layout and file order.

    Conv weights are ``[out, in, kh, kw]`` float32, biases ``[out]``.  The VGG and fc6/fc7 widths are
    multiplied by ``width`` (at least 1 channel); the four ``fc8_voc12_i`` have ``num_classes`` outputs.
    The layer names do not depend on ``variant`` (only the rates used by :func:`reference_forward` do).
    """
    if variant not in ASPP_RATES:
        raise ValueError(f"variant must be one of {sorted(ASPP_RATES)}, not {variant!r}")
    rng = np.random.RandomState(seed)
    blobs: Blobs = OrderedDict()
    c_in = 3
    for name, ci, co in _vgg16_convs(width):
        # The first layer sees mean-subtracted pixels (|x| ~ 100): scale it down so activations stay O(1-10).
        blobs[name] = [_he(rng, co, ci, 3, gain=0.02 if name == "conv1_1" else 1.0), _bias(rng, co)]
        c_in = co
    fc = _scaled(1024, width)
    for i in range(1, 5):
        blobs[f"fc6_{i}"] = [_he(rng, fc, c_in, 3), _bias(rng, fc)]
        blobs[f"fc7_{i}"] = [_he(rng, fc, fc, 1), _bias(rng, fc)]
        blobs[f"fc8_voc12_{i}"] = [_he(rng, num_classes, fc, 1, gain=0.5), _bias(rng, num_classes)]
    return blobs


def _bn_scale_blobs(rng, c, residual_end=False):
    """BatchNorm blobs (mean*f, var*f, [f]) and Scale blobs (gamma, beta) with plausible values."""
    factor = np.float32(rng.uniform(0.5, 2.0))
    mean = rng.normal(0.0, 0.5, size=(c,))
    var = rng.uniform(0.5, 2.0, size=(c,))
    bn = [(mean * factor).astype(np.float32), (var * factor).astype(np.float32),
          np.array([factor], dtype=np.float32)]
    # Small gamma on the last BN of a residual branch keeps the 33-block sum from blowing up.
    gamma = rng.uniform(0.05, 0.25, size=(c,)) if residual_end else rng.uniform(0.5, 1.5, size=(c,))
    sc = [gamma.astype(np.float32), rng.normal(0.0, 0.1, size=(c,)).astype(np.float32)]
    return bn, sc


def resnet101_blobs(width: float = 1.0, num_classes: int = 21, seed: int = 0, *, msc_copies: bool = False) -> Blobs:
    """Random blobs of DeepLabv2_ResNet101 (ASPP-L) with the released layer names in file order.

    Convolutions have one blob (no bias) except ``fc1_voc12_c0..c3`` (3x3 with bias).  Each ``bn*``
    layer has three blobs ``[mean * f, variance * f, [f]]`` with a random moving-average factor
    ``f`` in [0.5, 2] (variances positive); each ``scale*`` layer has ``[gamma, beta]``.  Channel
    widths are multiplied by ``width`` (``1/16`` gives a 4-channel ``conv1``); block counts are the
    real ones.  With ``msc_copies`` the ``_res05`` and ``_res075`` layers of the MSC caffemodel are
    added too, as copies of the shared arrays, in the released file order.
    """
    rng = np.random.RandomState(seed)
    base: Blobs = OrderedDict()

    def conv_bn(name, bn_name, scale_name, co, ci, k, residual_end=False):
        gain = 0.02 if name == "conv1" else 1.0
        base[name] = [_he(rng, co, ci, k, gain=gain)]
        bn, sc = _bn_scale_blobs(rng, co, residual_end)
        base[bn_name], base[scale_name] = bn, sc

    c1 = _scaled(64, width)
    conv_bn("conv1", "bn_conv1", "scale_conv1", c1, 3, 7)
    c_in = c1
    for stage, count in zip((2, 3, 4, 5), RESNET101_BLOCKS):
        mid = _scaled(64 * 2 ** (stage - 2), width)
        out = _scaled(256 * 2 ** (stage - 2), width)
        for blk in resnet101_block_names(stage, count):
            tag = blk[3:]  # "2a", "4b17", ...
            if blk.endswith("a"):
                conv_bn(f"{blk}_branch1", f"bn{tag}_branch1", f"scale{tag}_branch1", out, c_in, 1, True)
            conv_bn(f"{blk}_branch2a", f"bn{tag}_branch2a", f"scale{tag}_branch2a", mid, c_in, 1)
            conv_bn(f"{blk}_branch2b", f"bn{tag}_branch2b", f"scale{tag}_branch2b", mid, mid, 3)
            conv_bn(f"{blk}_branch2c", f"bn{tag}_branch2c", f"scale{tag}_branch2c", out, mid, 1, True)
            c_in = out
    classifier: Blobs = OrderedDict()
    for i in range(len(RESNET_ASPP_RATES)):
        classifier[f"fc1_voc12_c{i}"] = [_he(rng, num_classes, c_in, 3, gain=0.1), _bias(rng, num_classes)]
    if not msc_copies:
        base.update(classifier)
        return base
    out_blobs: Blobs = OrderedDict(base)
    for suffix in MSC_SUFFIXES:
        for name, arrs in base.items():
            out_blobs[name + suffix] = [a.copy() for a in arrs]
    out_blobs.update(classifier)
    for suffix in MSC_SUFFIXES:
        for name, arrs in classifier.items():
            out_blobs[name.replace("fc1_voc12", "fc1_voc12" + suffix)] = [a.copy() for a in arrs]
    return out_blobs


# ----------------------------------------------------------------------------- caffemodel writing
def layer_type(name: str) -> str:
    """The Caffe type of a DeepLab-v2 weight layer, from its name."""
    if name.startswith("bn"):
        return "BatchNorm"
    if name.startswith("scale"):
        return "Scale"
    return "Convolution"


def caffemodel_bytes(blobs: Blobs, layer_types: Optional[Dict[str, str]] = None, net_name: str = "deeplab_v2") -> bytes:
    """Serialize ``{layer: [arrays]}`` as a current-layout ``NetParameter`` (``layer`` field, shaped blobs).

    Types come from ``layer_types`` where given, otherwise from :func:`layer_type` (``bn*`` ->
    BatchNorm, ``scale*`` -> Scale, everything else Convolution).
    """
    layer_types = layer_types or {}
    net = _caffe_import._NetParameter(name=net_name)
    for name, arrs in blobs.items():
        layer = net.layer.add(name=name, type=layer_types.get(name, layer_type(name)))
        for arr in arrs:
            arr = np.asarray(arr, dtype=np.float32)
            blob = layer.blobs.add()
            blob.shape.dim.extend(int(d) for d in arr.shape)
            flat = arr.reshape(-1)
            blob.data.extend(flat.tolist() if flat.size < 10 else flat)
    return net.SerializeToString()


# ----------------------------------------------------------------------------- Caffe size formulas
def conv_out_size(size: int, kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> int:
    """Caffe ``ConvolutionLayer``: ``(in + 2 pad - (dilation (k - 1) + 1)) // stride + 1``."""
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


def pool_out_size(size: int, kernel: int, stride: int, pad: int = 0) -> int:
    """Caffe ``PoolingLayer`` (ceil mode, last window must start inside the image or its left pad)."""
    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def interp_out_size(size: int, shrink: int = 1, zoom: int = 1) -> int:
    """DeepLab ``InterpLayer`` with pad_beg = pad_end = 0: shrink first, then zoom."""
    out = (size - 1) // shrink + 1
    return out + (out - 1) * (zoom - 1)


def resnet101_out_size(size: int) -> int:
    """Spatial size of ``res5c``/``fc1_voc12`` for an input side of ``size`` (output stride 8)."""
    s = conv_out_size(size, 7, 2, 3)       # conv1
    s = pool_out_size(s, 3, 2, 1)          # pool1
    return conv_out_size(s, 1, 2, 0)       # res3a (1x1 stride 2); everything else keeps the size


def vgg16_out_size(size: int) -> int:
    """Spatial size of ``fc8_voc12`` of DeepLab-v2 VGG-16 (pool1..3 stride 2, pool4/5 stride 1)."""
    for _ in range(3):
        size = pool_out_size(size, 3, 2, 1)
    return size


# ----------------------------------------------------------------------------- layers (NCHW, float64)
def conv2d(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None, *, stride: int = 1, pad: int = 0,
           dilation: int = 1) -> np.ndarray:
    """Caffe convolution (cross-correlation, zero padding) as a sum over kernel taps."""
    n, c, h, wd = x.shape
    o, ci, kh, kw = w.shape
    if ci != c:
        raise ValueError(f"conv weight expects {ci} input channels, the input has {c}")
    ho = conv_out_size(h, kh, stride, pad, dilation)
    wo = conv_out_size(wd, kw, stride, pad, dilation)
    if ho <= 0 or wo <= 0:
        raise ValueError(f"input {h}x{wd} too small for a {kh}x{kw} kernel (dilation {dilation}, pad {pad})")
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), dtype=np.float64)
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    w = np.asarray(w, dtype=np.float64)
    out = np.zeros((n, o, ho, wo), dtype=np.float64)
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dilation, kx * dilation
            patch = xp[:, :, y0:y0 + (ho - 1) * stride + 1:stride, x0:x0 + (wo - 1) * stride + 1:stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, ky, kx], optimize=True)
    if b is not None:
        out += np.asarray(b, dtype=np.float64).reshape(1, -1, 1, 1)
    return out


def max_pool(x: np.ndarray, kernel: int, stride: int, pad: int = 0) -> np.ndarray:
    """Caffe MAX pooling: ceil-mode output size; padded cells never win (windows are clipped)."""
    n, c, h, w = x.shape
    ho, wo = pool_out_size(h, kernel, stride, pad), pool_out_size(w, kernel, stride, pad)
    out = np.empty((n, c, ho, wo), dtype=np.float64)
    for i in range(ho):
        y0 = i * stride - pad
        y1, y0 = min(y0 + kernel, h), max(y0, 0)
        for j in range(wo):
            x0 = j * stride - pad
            x1, x0 = min(x0 + kernel, w), max(x0, 0)
            out[:, :, i, j] = x[:, :, y0:y1, x0:x1].max(axis=(2, 3))
    return out


def batch_norm(x: np.ndarray, mean: np.ndarray, var: np.ndarray, factor, eps: float = CAFFE_BN_EPS) -> np.ndarray:
    """Caffe ``BatchNorm`` with ``use_global_stats``: statistics divided by the factor blob (0 -> 0)."""
    f = float(np.asarray(factor, dtype=np.float64).reshape(-1)[0])
    s = 0.0 if f == 0 else 1.0 / f
    m = np.asarray(mean, dtype=np.float64).reshape(1, -1, 1, 1) * s
    v = np.asarray(var, dtype=np.float64).reshape(1, -1, 1, 1) * s
    return (x - m) / np.sqrt(v + eps)


def scale(x: np.ndarray, gamma: np.ndarray, beta: Optional[np.ndarray] = None) -> np.ndarray:
    """Caffe ``Scale`` over axis 1 with ``bias_term``."""
    y = x * np.asarray(gamma, dtype=np.float64).reshape(1, -1, 1, 1)
    if beta is not None:
        y = y + np.asarray(beta, dtype=np.float64).reshape(1, -1, 1, 1)
    return y


def _relu(x):
    return np.maximum(x, 0.0)


def _interp_axis(n_in: int, n_out: int):
    """Source index, next-index step and weight per output position (caffe_cpu_interp2)."""
    ratio = np.float32((n_in - 1) / (n_out - 1)) if n_out > 1 else np.float32(0.0)
    pos = ratio * np.arange(n_out, dtype=np.float32)          # float32 like the Caffe kernel
    idx = pos.astype(np.int64)
    step = (idx < n_in - 1).astype(np.int64)
    lam = (pos - idx.astype(np.float32)).astype(np.float64)
    return idx, step, lam


def interp(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """DeepLab ``Interp``: bilinear resize of NCHW to ``height x width`` with aligned corners."""
    h, w = x.shape[2:]
    if (h, w) == (height, width):
        return np.array(x, dtype=np.float64)
    iy, sy, ly = _interp_axis(h, height)
    ix, sx, lx = _interp_axis(w, width)
    x = np.asarray(x, dtype=np.float64)
    top = x[:, :, iy, :]
    bot = x[:, :, iy + sy, :]
    ly = ly.reshape(1, 1, -1, 1)
    rows = (1.0 - ly) * top + ly * bot                        # n, c, height, w
    lx = lx.reshape(1, 1, 1, -1)
    return (1.0 - lx) * rows[:, :, :, ix] + lx * rows[:, :, :, ix + sx]


def _interp_factors(x, shrink=1, zoom=1):
    h, w = x.shape[2:]
    return interp(x, interp_out_size(h, shrink, zoom), interp_out_size(w, shrink, zoom))


# ----------------------------------------------------------------------------- nets
def _get(blobs: Blobs, name: str) -> List[np.ndarray]:
    try:
        return blobs[name]
    except KeyError:
        raise KeyError(f"blob set has no layer {name!r}") from None


def _conv_bn(blobs, x, conv, bn, sc, *, stride=1, pad=0, dilation=1, relu=True, eps=CAFFE_BN_EPS):
    y = conv2d(x, _get(blobs, conv)[0], None, stride=stride, pad=pad, dilation=dilation)
    m, v, f = _get(blobs, bn)[:3]
    g, b = _get(blobs, sc)[:2]
    y = scale(batch_norm(y, m, v, f, eps), g, b)
    return _relu(y) if relu else y


def _resnet_single(blobs, data, eps, suffix, out):
    """One resolution of DeepLabv2_ResNet101; writes Caffe tops (with ``suffix``) into ``out``."""
    x = _conv_bn(blobs, data, "conv1", "bn_conv1", "scale_conv1", stride=2, pad=3, eps=eps)
    out["conv1" + suffix] = x
    x = max_pool(x, 3, 2, 1)
    out["pool1" + suffix] = x
    for stage, count in zip((2, 3, 4, 5), RESNET101_BLOCKS):
        dilation = {4: 2, 5: 4}.get(stage, 1)
        for blk in resnet101_block_names(stage, count):
            tag = blk[3:]
            stride = 2 if blk == "res3a" else 1
            if blk.endswith("a"):
                shortcut = _conv_bn(blobs, x, f"{blk}_branch1", f"bn{tag}_branch1", f"scale{tag}_branch1",
                                    stride=stride, relu=False, eps=eps)
                out[f"{blk}_branch1{suffix}"] = shortcut
            else:
                shortcut = x
            y = _conv_bn(blobs, x, f"{blk}_branch2a", f"bn{tag}_branch2a", f"scale{tag}_branch2a",
                         stride=stride, eps=eps)
            out[f"{blk}_branch2a{suffix}"] = y
            y = _conv_bn(blobs, y, f"{blk}_branch2b", f"bn{tag}_branch2b", f"scale{tag}_branch2b",
                         pad=dilation, dilation=dilation, eps=eps)
            out[f"{blk}_branch2b{suffix}"] = y
            y = _conv_bn(blobs, y, f"{blk}_branch2c", f"bn{tag}_branch2c", f"scale{tag}_branch2c",
                         relu=False, eps=eps)
            out[f"{blk}_branch2c{suffix}"] = y
            x = _relu(shortcut + y)
            out[blk + suffix] = x
    total = None
    for i, rate in enumerate(RESNET_ASPP_RATES):
        w, b = _get(blobs, f"fc1_voc12_c{i}")[:2]
        y = conv2d(x, w, b, pad=rate, dilation=rate)
        out[f"fc1_voc12{suffix}_c{i}"] = y
        total = y if total is None else total + y
    out["fc1_voc12" + suffix] = total
    return total


def _vgg_aspp(blobs, data, rates, out):
    x = data
    for name, _, _ in _vgg16_convs(1.0):
        dilation = 2 if name.startswith("conv5") else 1
        w, b = _get(blobs, name)[:2]
        x = _relu(conv2d(x, w, b, pad=dilation, dilation=dilation))
        out[name] = x
        if name.endswith("_2") and name[:5] in ("conv1", "conv2") or name.endswith("_3"):
            k = int(name[4])
            x = max_pool(x, 3, 2 if k <= 3 else 1, 1)
            out[f"pool{k}"] = x
    pool5 = x
    total = None
    for i, rate in enumerate(rates, start=1):
        w, b = _get(blobs, f"fc6_{i}")[:2]
        y = _relu(conv2d(pool5, w, b, pad=rate, dilation=rate))       # Dropout is the identity at test time
        out[f"fc6_{i}"] = y
        w, b = _get(blobs, f"fc7_{i}")[:2]
        y = _relu(conv2d(y, w, b))
        out[f"fc7_{i}"] = y
        w, b = _get(blobs, f"fc8_voc12_{i}")[:2]
        y = conv2d(y, w, b)
        out[f"fc8_voc12_{i}"] = y
        total = y if total is None else total + y
    out["fc8_voc12"] = total
    out["fc8_interp"] = _interp_factors(total, zoom=8)
    return total


def reference_forward(net: str, blobs: Blobs, image_nchw: np.ndarray, *, bn_eps: float = CAFFE_BN_EPS,
                      msc: bool = False) -> Dict[str, np.ndarray]:
    """Forward pass of a DeepLab-v2 test net with Caffe semantics; returns float64 arrays by Caffe top name.

    ``net`` is ``"resnet101"``, ``"aspp-l"`` or ``"aspp-s"`` (VGG-16).  ``image_nchw`` is the
    mean-subtracted BGR input.  In-place layers (BN, Scale, ReLU) are folded into their tops, so e.g.
    ``res2c`` is the value after ``res2c_relu`` and ``res4b3_branch2b`` the value after its BN, Scale and
    ReLU.  ResNet tops: ``conv1``, ``pool1``, every ``res<blk>`` and ``res<blk>_branch{1,2a,2b,2c}``,
    ``fc1_voc12_c0..c3``, ``fc1_voc12``; with ``msc`` also ``data_res05``, ``data_res075``, the same tops
    with ``_res05``/``_res075`` suffixes (classifier tops ``fc1_voc12_res05_c0`` ...),
    ``fc1_voc12_res05_interp``, ``fc1_voc12_res075_interp``, ``fc_fusion`` (pixel-wise max) and
    ``fc1_interp`` (zoom 8).  The MSC tops must have equal sizes, as Caffe's Eltwise requires: a
    ``ValueError`` is raised otherwise (e.g. for 40x48; 33x33, 321x321 and 513x513 are fine).
    VGG tops: ``conv*_*``, ``pool1..pool5``, ``fc6_i``, ``fc7_i``, ``fc8_voc12_i``, ``fc8_voc12``,
    ``fc8_interp``.
    """
    data = np.asarray(image_nchw, dtype=np.float64)
    if data.ndim != 4 or data.shape[1] != 3:
        raise ValueError(f"image must be NCHW with 3 channels, got shape {data.shape}")
    out: Dict[str, np.ndarray] = OrderedDict()
    if net in ASPP_RATES:
        if msc:
            raise ValueError("the released DeepLab-v2 VGG-16 nets have no multi-scale inputs")
        _vgg_aspp(blobs, data, ASPP_RATES[net], out)
        return out
    if net != "resnet101":
        raise ValueError(f"net must be 'resnet101', 'aspp-l' or 'aspp-s', not {net!r}")
    if not msc:
        _resnet_single(blobs, data, bn_eps, "", out)
        return out
    # MSC: Interp the data first (data_res05 then data_res075, as in the prototxt), then the three towers.
    out["data_res05"] = _interp_factors(data, shrink=2)
    out["data_res075"] = _interp_factors(data, shrink=4, zoom=3)
    full = _resnet_single(blobs, data, bn_eps, "", out)
    half = _resnet_single(blobs, out["data_res05"], bn_eps, "_res05", out)
    three_q = _resnet_single(blobs, out["data_res075"], bn_eps, "_res075", out)
    out["fc1_voc12_res05_interp"] = _interp_factors(half, zoom=2)
    out["fc1_voc12_res075_interp"] = _interp_factors(three_q, shrink=3, zoom=4)
    parts = [full, out["fc1_voc12_res075_interp"], out["fc1_voc12_res05_interp"]]
    shapes = {p.shape for p in parts}
    if len(shapes) != 1:
        raise ValueError(f"MSC outputs differ in size {[p.shape[2:] for p in parts]} for input "
                         f"{data.shape[2:]}: Caffe's Eltwise MAX would refuse this input size")
    out["fc_fusion"] = np.maximum(np.maximum(parts[0], parts[1]), parts[2])
    out["fc1_interp"] = _interp_factors(out["fc_fusion"], zoom=8)
    return out


# ----------------------------------------------------------------------------- DrSleep's TF1 names
def drsleep_tf1_weights(blobs: Blobs) -> Dict[str, np.ndarray]:
    """The ResNet blobs under DrSleep/tensorflow-deeplab-resnet checkpoint names and layouts.

    Convolutions: ``<conv>/weights`` (HWIO) and ``<conv>/biases``; each BatchNorm + Scale pair becomes
    the ``slim.batch_norm`` variables of scope ``bn...``: ``moving_mean``, ``moving_variance`` (already
    divided by the factor blob, as kaffe's ``BatchNormPreprocessor`` does), ``gamma``, ``beta``.
    Layers with MSC suffixes are skipped (the TF graphs share variables by reuse).
    """
    out: Dict[str, np.ndarray] = OrderedDict()
    for name, arrs in blobs.items():
        if name.endswith(MSC_SUFFIXES) or "_res05_" in name or "_res075_" in name:
            continue
        kind = layer_type(name)
        if kind == "Convolution":
            out[f"{name}/weights"] = np.ascontiguousarray(arrs[0].transpose(2, 3, 1, 0))
            if len(arrs) > 1:
                out[f"{name}/biases"] = arrs[1].reshape(-1)
        elif kind == "BatchNorm":
            f = float(arrs[2].reshape(-1)[0])
            s = 0.0 if f == 0 else 1.0 / f
            out[f"{name}/moving_mean"] = (arrs[0] * s).astype(np.float32)
            out[f"{name}/moving_variance"] = (arrs[1] * s).astype(np.float32)
        else:  # Scale: scale_conv1 -> bn_conv1, scale2a_branch1 -> bn2a_branch1
            bn = "bn_" + name[len("scale_"):] if name.startswith("scale_") else "bn" + name[len("scale"):]
            out[f"{bn}/gamma"] = arrs[0]
            out[f"{bn}/beta"] = arrs[1]
    return out


def _shape_table(blobs: Blobs) -> List[Tuple[str, Sequence[Tuple[int, ...]]]]:
    """(name, blob shapes) in order; handy when debugging an importer."""
    return [(k, [tuple(a.shape) for a in v]) for k, v in blobs.items()]
