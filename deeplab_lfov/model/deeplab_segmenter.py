"""The DeepLab segmenter: one class that runs any (backbone, head) pair of layer tables, and MSC around it.

``DeepLab(backbone, head)`` builds the variables its tables call for (``Conv``: ``<name>/w`` in HWIO and
``<name>/b``; ``FrozenBatchNorm``: ``<bn>/moving_mean``, ``<bn>/moving_variance``, ``<bn>/gamma``,
``<bn>/beta``, not trainable) and runs the rows with Caffe's semantics (``ops``).  ``MSC(base)`` runs
one net on the input and on its Caffe-``Interp``-shrunk copies (scales 0.75 and 0.5 by default, as
DeepLab-v2's ``DeepLabv2_ResNet101``), brings the smaller logits to the size of the full-scale ones
and fuses them by an element-wise max.  ``deeplab_presets.build_net`` names the paper's nets.

Tensors are NHWC, images mean-subtracted BGR; variables are float32, the convolutions run in
``compute_dtype`` except the head's, kept in float32 (see ``largefov._FLOAT32_LAYERS``).
"""

from __future__ import annotations

import fractions
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..core._tf import tf
from .deeplab_layers import (
    BN_EPSILON,
    Conv,
    FrozenBatchNorm,
    Layer,
    classifier_names,
    conv_layers,
    output_size,
    table_shapes,
)
from .ops import atrous_conv2d, caffe_avg_pool, caffe_interp_size, caffe_max_pool, interp_bilinear

__all__ = ["DeepLab", "MSC", "conv_flops", "constant_filters", "msc_factors", "DEFAULT_MSC_SCALES"]

DEFAULT_MSC_SCALES = (0.5, 0.75)


class _Predictions:
    """Test-time outputs at the input size, shared by ``DeepLab`` and ``MSC``."""

    def upsampled_logits(self, images: tf.Tensor) -> tf.Tensor:
        """Logits resized to the input size with Caffe's Interp (aligned corners)."""
        logits = self(images, training=False)
        return interp_bilinear(logits, tf.shape(images)[1:3])

    def predict_probabilities(self, images: tf.Tensor) -> tf.Tensor:
        """Softmax probabilities at the input size, (N, H, W, num_classes)."""
        return tf.nn.softmax(self.upsampled_logits(images), axis=-1)

    def predict_labels(self, images: tf.Tensor) -> tf.Tensor:
        """Label map at the input size, (N, H, W) int32: argmax of the upsampled logits."""
        return tf.argmax(self.upsampled_logits(images), axis=-1, output_type=tf.int32)


class DeepLab(_Predictions, tf.Module):
    """A DeepLab net from a backbone table and a head table (see ``deeplab_layers``).

    Args:
      backbone: rows of the feature extractor (``vgg16_backbone``, ``resnet101_backbone``).
      head: rows of the classifier (``largefov_head``, ``vgg_aspp_head``, ``resnet_aspp_head``); its
        convolutions stay float32 under mixed precision.
      model_name: the preset name it was built as (``"aspp-l"``), or anything for a custom pair.
      seed: of the random initialisation (He-normal filters, zero biases, classifier N(0, 0.01), batch
        norms the identity: mean 0, variance 1, gamma 1, beta 0).
      compute_dtype: dtype of the convolutions (``tf.bfloat16``, ``tf.float16``); variables stay float32.
      bn_epsilon: Caffe's BatchNorm eps (1e-5, the default of every DeepLab-v2 prototxt).

    Attributes: ``model_name``, ``num_classes``, ``msc`` (False), ``table`` (backbone + head),
    ``classifier_layers`` (the conv names whose outputs are the logits), ``convs`` (conv name ->
    ``Conv``), ``batch_norms`` (bn name -> ``FrozenBatchNorm``); each conv and batch norm is also an
    attribute under its Caffe name (``model.conv1_1.w``, tracked as ``model/conv1_1/w`` in object
    checkpoints).
    """

    msc = False

    def __init__(self, backbone: Sequence[Layer], head: Sequence[Layer], *, model_name: str = "custom",
                 seed: Optional[int] = 0, compute_dtype=tf.float32, bn_epsilon: float = BN_EPSILON,
                 name: str = "deeplab"):
        super().__init__(name=name)
        self.model_name = model_name
        self.table = tuple(backbone) + tuple(head)
        shapes = table_shapes(self.table)  # checks the table
        self.num_classes = int(shapes[self.table[-1].name][2])
        self.classifier_layers = classifier_names(self.table)
        self.compute_dtype = tf.as_dtype(compute_dtype)
        self.float32_layers = {layer.name for layer in conv_layers(head)}
        rng = np.random.RandomState(seed)
        self.convs: Dict[str, Conv] = {}
        self.batch_norms: Dict[str, FrozenBatchNorm] = {}
        previous, last_use = "data", {}
        for index, layer in enumerate(self.table):
            bottoms = layer.bottoms or (previous,)
            for bottom in bottoms:
                last_use[bottom] = index
            if layer.kind == "conv":
                conv = Conv(layer, shapes[bottoms[0]][2], rng, classifier=layer.name in self.classifier_layers)
                setattr(self, layer.name, conv)  # tracked as model/conv1_1/w in object checkpoints
                self.convs[layer.name] = conv
                if layer.batch_norm:
                    bn = FrozenBatchNorm(layer.batch_norm, layer.filters, bn_epsilon)
                    setattr(self, layer.batch_norm, bn)
                    self.batch_norms[layer.batch_norm] = bn
            previous = layer.name
        # After row i, the tops nobody reads any more are dropped (eager ResNet-101 keeps ~3 maps, not 340).
        self._release = tuple(tuple(top for top, last in last_use.items() if last == i) for i in range(len(self.table)))

    # ----------------------------------------------------------------------------------- weights
    def named_variables(self, *, trainable_only: bool = False) -> Dict[str, tf.Variable]:
        """Variables under their Caffe/TF1 names, in layer order: ``{"conv1/w": var, "bn_conv1/moving_mean":
        var, ...}`` (a conv's ``w``, ``b``, then its batch norm's four); ``trainable_only`` leaves the frozen
        batch norms out (the list an optimizer takes)."""
        out = {}
        for layer in conv_layers(self.table):
            out.update(self.convs[layer.name].named_variables(layer.name))
            if layer.batch_norm and not trainable_only:
                out.update(self.batch_norms[layer.batch_norm].named_variables(layer.batch_norm))
        return out

    def count_params(self, *, trainable_only: bool = False) -> int:
        """Parameters, frozen batch-norm statistics and affine included unless ``trainable_only``."""
        return int(sum(np.prod(v.shape) for v in self.named_variables(trainable_only=trainable_only).values()))

    def logits_size(self, height: int, width: int) -> Tuple[int, int]:
        """Spatial size of the logits for an input of ``height`` x ``width`` (Caffe's formulas)."""
        return output_size(self.table, height, width)

    # ----------------------------------------------------------------------------------- forward
    def __call__(self, images: tf.Tensor, training: bool = False, *,
                 endpoints: Optional[Dict[str, tf.Tensor]] = None,
                 filters: Optional[Mapping[str, tf.Tensor]] = None) -> tf.Tensor:
        """Logits (N, h, w, num_classes) of mean-subtracted BGR ``images`` (N, H, W, 3).

        ``training`` turns dropout on (batch norms stay frozen).  Pass a dict as ``endpoints`` to
        receive every row's output by its Caffe top name (used by the parity tests).  ``filters``
        (conv name -> filter) are used instead of those convolutions' variables: the inference graphs
        of ``constant_filters``.
        """
        tops = {"data": tf.cast(images, self.compute_dtype)}
        previous = "data"
        for layer, release in zip(self.table, self._release):
            inputs = [tops[b] for b in (layer.bottoms or (previous,))]
            for top in release:
                del tops[top]
            x = self._run(layer, inputs, training, filters)
            tops[layer.name] = x
            if endpoints is not None:
                endpoints[layer.name] = x
            previous = layer.name
        return tf.cast(tops[previous], tf.float32)

    def _run(self, layer: Layer, inputs: List[tf.Tensor], training: bool,
             filters: Optional[Mapping[str, tf.Tensor]] = None) -> tf.Tensor:
        x = inputs[0]
        if layer.kind == "conv":
            conv = self.convs[layer.name]
            dtype = tf.float32 if layer.name in self.float32_layers else self.compute_dtype
            x = tf.cast(x, dtype)
            w = filters[layer.name] if filters and layer.name in filters else conv.w
            x = atrous_conv2d(x, tf.cast(w, dtype), layer.dilation, stride=layer.stride, pad=layer.pad,
                              differentiable=training)
            if layer.bias:
                x = tf.nn.bias_add(x, tf.cast(conv.b, dtype))
            if layer.batch_norm:
                x = self.batch_norms[layer.batch_norm](x)
        elif layer.kind == "max_pool":
            return caffe_max_pool(x, layer.kernel, layer.stride, layer.pad)
        elif layer.kind == "avg_pool":
            return caffe_avg_pool(x, layer.kernel, layer.stride, layer.pad)
        elif layer.kind == "dropout":
            return tf.nn.dropout(x, rate=layer.rate) if training and layer.rate > 0 else x
        elif layer.kind == "sum":
            x = tf.add_n([tf.cast(t, x.dtype) for t in inputs]) if len(inputs) > 1 else x
        elif layer.kind == "max":
            for other in inputs[1:]:
                x = tf.maximum(x, tf.cast(other, x.dtype))
        else:  # pragma: no cover - table_shapes checked the kinds
            raise ValueError(f"unknown layer kind {layer.kind!r}")
        return tf.nn.relu(x) if layer.relu else x


def msc_factors(scale: float) -> Tuple[int, int]:
    """Caffe ``Interp`` ``(shrink_factor, zoom_factor)`` of an MSC scale: 0.5 -> (2, 1), 0.75 -> (4, 3)."""
    frac = fractions.Fraction(scale).limit_denominator(16)
    if frac <= 0 or frac == 1 or abs(float(frac) - scale) > 1e-6:
        raise ValueError(f"MSC scale {scale} must be a positive ratio of small integers other than 1 (0.5, 0.75)")
    return frac.denominator, frac.numerator


def _suffix(scale: float) -> str:
    """Caffe's tower suffix: 0.5 -> ``_res05``, 0.75 -> ``_res075``."""
    return "_res" + f"{scale:g}".replace(".", "")


def _static_or_dynamic_hw(x: tf.Tensor):
    static, dynamic = x.shape[1:3], tf.shape(x)[1:3]
    return [static[i] if static[i] is not None else dynamic[i] for i in range(2)]


def _size_arg(h, w):
    if isinstance(h, int) and isinstance(w, int):
        return [h, w]
    return tf.stack([tf.cast(h, tf.int32), tf.cast(w, tf.int32)])


class MSC(_Predictions, tf.Module):
    """Multi-scale inputs (DeepLab-v2, Sec. 3.3): one net, its weights shared, run at several input scales.

    The input is shrunk with Caffe's ``Interp`` (aligned corners; scale 0.5 = ``shrink_factor`` 2, side
    ``(h - 1) // 2 + 1``; 0.75 = shrink 4 zoom 3, side ``(h - 1) // 4 * 3 + 1``), the net runs on each
    copy, each smaller logit map is Interp'd (aligned corners) to the size of the full-scale logits and
    the maps are fused by an element-wise max (``fc_fusion``).  Where Caffe's factor rule would not land
    exactly on the full-scale size (e.g. 40x48), the maps are resized to that size anyway; where it
    does (33, 321, 513) this is Caffe's computation.

    ``__call__`` returns the fused logits; ``loss_logits`` the four maps DeepLab-v2 trains with.
    Attributes and weights are the base net's (``model_name``, ``num_classes``, ``table``, ``convs``,
    ``named_variables`` ...), so a checkpoint of the single-scale net loads into it and vice versa.

    Example:
      >>> net = MSC(DeepLab(resnet101_backbone(1 / 16), resnet_aspp_head(21)))
      >>> net(tf.zeros([1, 33, 33, 3])).shape            # (1, 5, 5, 21), fused
      >>> [l.shape[1] for l in net.loss_logits(tf.zeros([1, 33, 33, 3]))]   # [5, 5, 5, 3]
    """

    msc = True

    def __init__(self, base: DeepLab, scales: Sequence[float] = DEFAULT_MSC_SCALES, *, name: str = "msc"):
        super().__init__(name=name)
        self.base = base
        # Largest first: the order of DeepLab-v2's losses (1, 0.75 interpolated, 0.5 at its own size).
        self.scales = tuple(sorted((float(s) for s in scales), reverse=True))
        self._factors = tuple(msc_factors(s) for s in self.scales)
        if len(set(self.scales)) != len(self.scales):
            raise ValueError(f"MSC scales repeat: {tuple(scales)}")

    # The base net's attributes.
    model_name = property(lambda self: self.base.model_name)
    num_classes = property(lambda self: self.base.num_classes)
    table = property(lambda self: self.base.table)
    convs = property(lambda self: self.base.convs)
    batch_norms = property(lambda self: self.base.batch_norms)
    classifier_layers = property(lambda self: self.base.classifier_layers)
    compute_dtype = property(lambda self: self.base.compute_dtype)
    float32_layers = property(lambda self: self.base.float32_layers)

    def __getattr__(self, name: str):
        # Only reached when normal lookup fails: a conv or batch norm of the base net (``net.conv1.w``).
        base = self.__dict__.get("base")
        if base is not None and (name in base.convs or name in base.batch_norms):
            return getattr(base, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def named_variables(self, *, trainable_only: bool = False) -> Dict[str, tf.Variable]:
        return self.base.named_variables(trainable_only=trainable_only)

    def count_params(self, *, trainable_only: bool = False) -> int:
        return self.base.count_params(trainable_only=trainable_only)

    def scale_sizes(self, height: int, width: int) -> List[Tuple[int, int]]:
        """Input sizes of the shrunk copies, in ``scales`` order (largest first)."""
        return [(caffe_interp_size(height, s, z), caffe_interp_size(width, s, z)) for s, z in self._factors]

    def logits_size(self, height: int, width: int) -> Tuple[int, int]:
        """Size of the fused logits: the full-scale net's."""
        return self.base.logits_size(height, width)

    def loss_names(self) -> List[str]:
        """Caffe's names of the ``loss_logits`` maps: ``fc_fusion``, ``fc1_voc12``, ``fc1_voc12_res075_interp``,
        ``fc1_voc12_res05``."""
        top = self.base.table[-1].name
        return ["fc_fusion", top] + [top + _suffix(s) + ("" if z == 1 else "_interp")
                                     for s, (_, z) in zip(self.scales, self._factors)]

    def loss_logits_sizes(self, height: int, width: int) -> List[Tuple[int, int]]:
        """Spatial sizes of the ``loss_logits`` maps for an input of ``height`` x ``width`` (the label
        maps are shrunk to these)."""
        full = self.base.logits_size(height, width)
        return [full, full] + [full if z != 1 else self.base.logits_size(h, w)
                               for (h, w), (_, z) in zip(self.scale_sizes(height, width), self._factors)]

    # ----------------------------------------------------------------------------------- forward
    def _towers(self, images: tf.Tensor, training: bool, endpoints: Optional[Dict[str, tf.Tensor]],
                filters: Optional[Mapping[str, tf.Tensor]] = None):
        """(fused, full-scale logits, [(tower logits, tower logits resized to full scale)] in scales order)."""
        full = self.base(images, training, endpoints=endpoints, filters=filters)
        height, width = _static_or_dynamic_hw(images)
        target = _size_arg(*_static_or_dynamic_hw(full))
        top = self.base.table[-1].name
        towers = []
        for scale, (shrink, zoom) in zip(self.scales, self._factors):
            suffix = _suffix(scale)
            scaled = interp_bilinear(images, _size_arg(caffe_interp_size(height, shrink, zoom),
                                                       caffe_interp_size(width, shrink, zoom)))
            inner = {} if endpoints is not None else None
            logits = self.base(scaled, training, endpoints=inner, filters=filters)
            resized = interp_bilinear(logits, target)
            towers.append((logits, resized))
            if endpoints is not None:
                endpoints["data" + suffix] = scaled
                endpoints.update({name + suffix: value for name, value in inner.items()})
                endpoints[top + suffix + "_interp"] = resized
        fused = full
        for _, resized in towers:
            fused = tf.maximum(fused, resized)
        if endpoints is not None:
            endpoints["fc_fusion"] = fused
        return fused, full, towers

    def __call__(self, images: tf.Tensor, training: bool = False, *,
                 endpoints: Optional[Dict[str, tf.Tensor]] = None,
                 filters: Optional[Mapping[str, tf.Tensor]] = None) -> tf.Tensor:
        """The fused logits (N, h, w, num_classes), at the full-scale net's size.

        ``endpoints`` receives the full-scale net's tops under their names, each tower's with its
        suffix (``res5c_res05``, ``fc1_voc12_res075``), ``data_res05``, ``fc1_voc12_res05_interp`` ...
        and ``fc_fusion``; ``filters`` as the base net's.
        """
        return self._towers(images, training, endpoints, filters)[0]

    def loss_logits(self, images: tf.Tensor, training: bool = True) -> List[tf.Tensor]:
        """The maps DeepLab-v2's MSC trains on, each with its own softmax loss (ignore label 255), in order:
        ``[fused, scale 1, scale 0.75 resized to scale 1, scale 0.5 at its own size]``.

        A tower whose scale shrinks the labels exactly (0.5: Caffe's ``label_shrink16``) keeps its size;
        the others (0.75) are the resized maps, compared with the labels shrunk to the full-scale size
        (the released train prototxt: "0.75 doesn't shrink labels exactly, instead we interpolate score
        map").  ``loss_logits_sizes`` gives the sizes without running the net.
        """
        fused, full, towers = self._towers(images, training, None)
        return [fused, full] + [resized if zoom != 1 else logits
                                for (logits, resized), (_, zoom) in zip(towers, self._factors)]


def constant_filters(model, *, min_kernel: int = 3) -> Dict[str, tf.Tensor]:
    """The filters of ``model``'s convolutions with a kernel of at least ``min_kernel``, as constants that
    hold their values now: pass them as ``model(images, filters=...)`` inside a ``tf.function`` for
    inference with weights that will not change (``Predictor(constant_filters=True)``).

    Called while a ``tf.function`` traces, the constants are part of its graph, so TensorFlow's oneDNN
    kernels know the filter will not change and repack it once into the layout they compute fastest
    (blocked by output channels) instead of reading TensorFlow's HWIO layout on every call.  Measured
    on 2 cores with AVX-512 (``bench/torch_peer.py``): LargeFOV's ``Predictor.labels`` 4% faster at
    321x321 and 6% at 513x513, most of it in the layers whose filters are large and whose maps are small
    (conv4_2 to fc6).  The logits are bit for bit those of the variables for 3x3 and larger kernels
    (tested, with oneDNN and with TensorFlow's Eigen kernels); 1x1 convolutions keep their variables:
    repacked, oneDNN sums fc7's products in another order (logits ~1e-6 relative apart).

    The price, measured: TensorFlow holds a graph constant about seven times over once the graph has
    run (a 75 MB constant in a one-conv function: +530 MB resident), so LargeFOV's 78 MB of 3x3 filters
    cost ~600 MB more resident (+1 GB at the peak of the first call, which takes ~2 s longer).
    The values are read once, when the graph is traced: a graph traced before the weights change keeps
    the old ones.
    """
    out = {}
    with tf.init_scope():  # read the values eagerly, even while a tf.function traces
        values = {name: conv.w.numpy() for name, conv in model.convs.items() if int(conv.w.shape[0]) >= min_kernel}
    for name, value in values.items():
        out[name] = tf.constant(value, name=f"{name}_w_constant")
    return out


def conv_flops(model, height: int, width: int) -> float:
    """Forward FLOPs (2 x multiply-adds) of the convolutions for one ``height`` x ``width`` image
    (under MSC, of the three towers together); batch norms, sums, pools and resizes are not counted."""
    if getattr(model, "msc", False):
        return conv_flops(model.base, height, width) + sum(
            conv_flops(model.base, h, w) for h, w in model.scale_sizes(height, width))
    shapes = table_shapes(model.table, height, width)
    total, previous = 0.0, "data"
    for layer in model.table:
        if layer.kind == "conv":
            h, w, _ = shapes[layer.name]
            cin = shapes[(layer.bottoms or (previous,))[0]][2]
            total += 2.0 * h * w * layer.kernel ** 2 * cin * layer.filters
        previous = layer.name
    return total
