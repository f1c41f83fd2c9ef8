"""The operations of DeepLab's Caffe nets, with Caffe's semantics, shared by every model of the family.

* max pooling in *ceil* mode with explicit padding (Caffe's output size, not TF 'SAME': for even
  input sizes the two differ in size and in where the windows sit);
* average pooling that divides by the window area including the zero padding;
* ``Interp``-style bilinear resizing with aligned corners;
* atrous (dilated) convolution that also trains on CPUs whose kernels lack a dilated gradient, and
  strided convolution with Caffe's explicit padding;
* the compute dtype of ``--precision``.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..core._tf import tf
from ..core.errors import DeepLabError

__all__ = ["DTYPES", "compute_dtype_for", "caffe_pool_output_size", "caffe_max_pool", "caffe_avg_pool",
           "interp_bilinear", "caffe_interp_size", "atrous_conv2d", "conv_output_size",
           "native_atrous_gradients"]

# --precision -> compute dtype
DTYPES = {"fp32": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}


def compute_dtype_for(precision: str) -> tf.DType:
    """The compute dtype of a ``--precision`` flag; float16 only where a GPU runs it."""
    if precision not in DTYPES:
        raise ValueError(f"unknown precision {precision!r} ({', '.join(DTYPES)})")
    if precision == "fp16" and not tf.config.list_physical_devices("GPU"):
        raise DeepLabError("--precision fp16 needs a GPU (TensorFlow's CPU kernels lack float16 dilated "
                           "convolutions); use fp32, the fastest on CPUs, or bf16")
    return DTYPES[precision]


def caffe_pool_output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe's pooling output size: ceil mode, but the last window must start inside the input."""
    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _caffe_pool_padding(size, kernel: int, stride: int, pad: int):
    """(before, after) padding that makes a VALID pool give Caffe's windows; ``size`` may be a tensor."""
    if isinstance(size, int):
        out = caffe_pool_output_size(size, kernel, stride, pad)
        return pad, (out - 1) * stride + kernel - size - pad
    out = (size + 2 * pad - kernel + stride - 1) // stride + 1  # ceil for non-negative numerators
    out = tf.where((out - 1) * stride >= size + pad, out - 1, out) if pad else out
    return pad, (out - 1) * stride + kernel - size - pad


def _spatial_dims(x: tf.Tensor):
    static = x.shape[1:3]
    dynamic = tf.shape(x)[1:3]
    return [static[i] if static[i] is not None else dynamic[i] for i in range(2)]


def caffe_max_pool(x: tf.Tensor, kernel: int, stride: int, pad: int) -> tf.Tensor:
    """Caffe MAX pooling: windows clipped to the input (padding never wins the max).

    Where TF's 'SAME' places the windows as Caffe does (a 3x3/2 pad-1 pool on an odd side, every
    3x3/1 pad-1 pool) it is used: no copy, oneDNN's kernel.  Elsewhere a static size pads with
    -inf and pools 'VALID' (as before; differentiable everywhere).  A side unknown until run time
    (the ``Predictor``'s and the SavedModel's graphs) only matters through ``side % stride``, so the
    graph holds one pooling per residue and runs the one that applies: 'SAME' where it agrees, else
    a pooling with Caffe's explicit padding, which reads the input in place (no ``tf.pad`` copy).
    All of them take the max over the same valid pixels: the result is the same, bit for bit.
    """
    h, w = _spatial_dims(x)
    static = isinstance(h, int) and isinstance(w, int)
    if not static and kernel >= stride:  # (windows that skip pixels are padded as below)
        return _max_pool_by_residue(x, h, w, kernel, stride, pad)
    (top, bottom), (left, right) = (_caffe_pool_padding(h, kernel, stride, pad),
                                    _caffe_pool_padding(w, kernel, stride, pad))
    if static and (top, bottom, left, right) == _same_padding(h, kernel, stride) + _same_padding(w, kernel, stride):
        # TF's own padding already places the windows as Caffe does (odd sizes): no copy.
        return tf.nn.max_pool2d(x, kernel, stride, "SAME")
    x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]], constant_values=-np.inf)
    return tf.nn.max_pool2d(x, kernel, stride, "VALID")


def _same_padding(size: int, kernel: int, stride: int):
    """(before, after) padding of TF's 'SAME' for a static size."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pool_padding_of_residue(residue: int, kernel: int, stride: int, pad: int):
    """((Caffe's before, after), (SAME's before, after)) padding of a side ``q * stride + residue``, any ``q``.

    Caffe: ``out - 1 = q + ceil((residue + 2 pad - kernel) / stride)``, one less if that window would
    start at ``size + pad`` or later; ``after = (out - 1) stride + kernel - size - pad``: ``q`` cancels.
    SAME (``kernel >= stride``): ``total = (ceil(size / stride) - 1) stride + kernel - size``, likewise.
    """
    steps = -(-(residue + 2 * pad - kernel) // stride)  # (out - 1) - q
    if pad and steps * stride >= residue + pad:
        steps -= 1
    total = ((residue > 0) - 1) * stride + kernel - residue
    return (pad, steps * stride + kernel - residue - pad), (total // 2, total - total // 2)


def _max_pool_by_residue(x: tf.Tensor, h, w, kernel: int, stride: int, pad: int) -> tf.Tensor:
    """``caffe_max_pool`` of a tensor whose sides are known only at run time, ``kernel >= stride`` (see there)."""
    rows = [_pool_padding_of_residue(r, kernel, stride, pad) for r in range(stride)]

    def pool(row_pads, col_pads):
        (caffe_rows, same_rows), (caffe_cols, same_cols) = row_pads, col_pads
        if caffe_rows == same_rows and caffe_cols == same_cols:
            return lambda: tf.nn.max_pool2d(x, kernel, stride, "SAME")
        return lambda: tf.nn.max_pool2d(x, kernel, stride, [[0, 0], list(caffe_rows), list(caffe_cols), [0, 0]])

    branches = [pool(rows[i], rows[j]) for i in range(stride) for j in range(stride)]
    if len(branches) == 1:  # stride 1: one padding for every size
        return branches[0]()
    static_h, static_w = x.shape[1], x.shape[2]
    out = tf.switch_case(tf.cast(h % stride * stride + w % stride, tf.int32), branches)
    out.set_shape([x.shape[0], None if static_h is None else caffe_pool_output_size(static_h, kernel, stride, pad),
                   None if static_w is None else caffe_pool_output_size(static_w, kernel, stride, pad), x.shape[3]])
    return out


def caffe_avg_pool(x: tf.Tensor, kernel: int, stride: int, pad: int) -> tf.Tensor:
    """Caffe AVE pooling: the sum over valid pixels divided by the window area counted up to
    ``size + pad`` (so zero padding counts: a corner of a 3x3/pad-1 pool is divided by 9)."""
    h, w = _spatial_dims(x)
    (top, bottom), (left, right) = (_caffe_pool_padding(h, kernel, stride, pad),
                                    _caffe_pool_padding(w, kernel, stride, pad))
    x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    mean = tf.nn.avg_pool2d(x, kernel, stride, "VALID")  # sum / kernel**2
    # Windows that reach past size + pad are divided by less than kernel**2 in Caffe.
    # With stride 1 (the only AVE pool of this net) that never happens, so skip the rescale.
    if stride == 1 or (isinstance(bottom, int) and bottom <= pad and right <= pad):
        return mean
    rows = _window_area(h, kernel, stride, pad)
    cols = _window_area(w, kernel, stride, pad)
    scale = float(kernel * kernel) / (rows[:, None] * cols[None, :])
    return mean * tf.cast(scale, x.dtype)[None, :, :, None]


def _window_area(size, kernel: int, stride: int, pad: int) -> tf.Tensor:
    _, after = _caffe_pool_padding(size, kernel, stride, pad)
    out = (size + pad + after - kernel) // stride + 1
    start = tf.range(out) * stride - pad
    end = tf.minimum(start + kernel, size + pad)
    return tf.cast(end - start, tf.float32)


def interp_bilinear(x: tf.Tensor, size) -> tf.Tensor:
    """Bilinear resize with aligned corners, as Caffe's ``Interp`` layer (and DeepLab) does."""
    return tf.raw_ops.ResizeBilinear(images=x, size=size, align_corners=True, half_pixel_centers=False)


_NATIVE_ATROUS_GRADIENTS: Optional[bool] = None


def native_atrous_gradients() -> bool:
    """Whether this machine's kernels differentiate dilated convolutions directly.

    cuDNN and oneDNN do; TensorFlow's plain Eigen CPU kernels (x86 CPUs without AVX-512, where
    TensorFlow leaves oneDNN off) reject ``Conv2DBackpropInput`` with dilations > 1.  Probed once
    with a tiny eager convolution.
    """
    global _NATIVE_ATROUS_GRADIENTS
    if _NATIVE_ATROUS_GRADIENTS is None:
        if tf.config.list_physical_devices("GPU"):
            _NATIVE_ATROUS_GRADIENTS = True
        else:
            try:
                with tf.init_scope(), tf.device("/cpu:0"):  # eagerly, even while a tf.function traces
                    tf.raw_ops.Conv2DBackpropFilter(input=tf.ones([1, 4, 4, 1]), filter_sizes=[3, 3, 1, 1],
                                                    out_backprop=tf.ones([1, 4, 4, 1]), strides=[1, 1, 1, 1],
                                                    padding="SAME", dilations=[1, 2, 2, 1])
                _NATIVE_ATROUS_GRADIENTS = True
            except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
                _NATIVE_ATROUS_GRADIENTS = False
    return _NATIVE_ATROUS_GRADIENTS


def _atrous_by_taps(x: tf.Tensor, w: tf.Tensor, rate: int) -> tf.Tensor:
    """A dilated 'SAME' convolution as a sum of 1x1 convolutions of shifted inputs, one per filter tap.

    Taps that fall entirely into the padding (a shift at least the input size, e.g. fc6's rate 12 on
    small crops) are skipped when the size is static.  Forward and backward are plain matrix products.
    """
    k = int(w.shape[0])
    half, pad = k // 2, rate * (k // 2)
    height, width = _spatial_dims(x)
    padded = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    out = None
    for i in range(k):
        for j in range(k):
            dy, dx = (i - half) * rate, (j - half) * rate
            if (isinstance(height, int) and abs(dy) >= height) or (isinstance(width, int) and abs(dx) >= width):
                continue
            shifted = padded[:, pad + dy:pad + dy + height, pad + dx:pad + dx + width, :]
            term = tf.nn.conv2d(shifted, w[i:i + 1, j:j + 1], strides=1, padding="VALID")
            out = term if out is None else out + term
    return out


def atrous_conv2d(x: tf.Tensor, w: tf.Tensor, rate: int, *, stride: int = 1, pad: Optional[int] = None,
                  differentiable: bool = False) -> tf.Tensor:
    """Caffe's convolution: dilation ``rate``, ``stride``, zero padding ``pad`` on every side.

    ``pad=None`` (or ``rate * (k - 1) / 2``) with stride 1 is the 'same' convolution of every atrous
    layer; other paddings and strides (ResNet's 7x7/2 ``conv1`` with pad 3, its strided 1x1s) pad
    explicitly as Caffe does, so even input sizes keep Caffe's windows (TF's 'SAME' would pad 2
    before and 3 after a 7x7/2 on an even side, Caffe pads 3 and 3).

    The native dilated kernel is used wherever it exists.  Where gradients are needed and the
    machine has no dilated backward kernel (TensorFlow's Eigen CPU kernels), the same products
    are summed another way: through space-to-batch for rate 2, and tap by tap for larger rates,
    where space-to-batch makes thousands of tiny images whose backward pass is very slow (measured
    on fc6 at 41x41: 3.1 s space-to-batch, 0.6 s by taps).
    """
    k = int(w.shape[0])
    if stride == 1 and k % 2 == 1 and (pad is None or pad == rate * (k - 1) // 2):
        if rate > 1 and differentiable and not native_atrous_gradients():
            if rate > 2:
                return _atrous_by_taps(x, w, rate)
            return tf.nn.convolution(x, w, strides=1, padding="SAME", dilations=rate)
        return tf.nn.conv2d(x, w, strides=1, padding="SAME", dilations=rate)
    if stride > 1 and rate > 1:
        raise ValueError("a convolution cannot be both strided and dilated (TensorFlow and DeepLab have none)")
    pad = rate * (k - 1) // 2 if pad is None else int(pad)
    if rate > 1:  # no such layer in DeepLab; pad, then a VALID dilated convolution
        x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        return tf.nn.convolution(x, w, strides=1, padding="VALID", dilations=rate)
    padding = "VALID" if pad == 0 else [[0, 0], [pad, pad], [pad, pad], [0, 0]]
    return tf.nn.conv2d(x, w, strides=stride, padding=padding)


def conv_output_size(size: int, kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> int:
    """Caffe's convolution output size: ``(size + 2 pad - (dilation (kernel - 1) + 1)) // stride + 1``."""
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


def caffe_interp_size(size, shrink: int = 1, zoom: int = 1):
    """The output side of Caffe's ``Interp`` with ``shrink_factor`` then ``zoom_factor``: ``(size - 1) // shrink``
    ``* zoom + 1`` (DeepLab-v2's MSC inputs: shrink 2 for scale 0.5, shrink 4 zoom 3 for 0.75); ints or tensors."""
    return (size - 1) // shrink * zoom + 1
