"""The fully-connected CRF (Krähenbühl & Koltun, 2011) in TensorFlow operations only.

DeepLab's CRF, as ``pydensecrf`` computes it, with no compiled dependency: it runs wherever
TensorFlow runs, inside a compiled ``tf.function`` and inside an exported SavedModel (all its
operations have GPU kernels in TensorFlow; it has not yet been run on a GPU here).

* Mean-field inference: unary ``-log p``; Potts compatibility; a Gaussian kernel on position
  (``pos_w``, ``pos_xy_std``) and a bilateral kernel on position and RGB (``bi_w``, ``bi_xy_std``,
  ``bi_rgb_std``); each kernel normalised symmetrically (``n_i = 1 / sqrt(sum_j k_ij)``, the
  ``NORMALIZE_SYMMETRIC`` of pydensecrf); ``iterations`` steps.
* The position kernel is the exact Gaussian, filtered as two 1-D convolutions (rows, then columns;
  taps out to 4 standard deviations): no lattice to build.  pydensecrf filters it with a 2-D
  permutohedral lattice, an approximation of the same Gaussian; the labels agree on >= 99% of
  pixels (tests/test_crf_tf.py).  The normalisation changes a little with it: ``sum_j k_ij`` is now
  exactly ``2 pi pos_xy_std^2`` (56.5) inside the image, 0.57 of that along an edge and 0.32 in a
  corner, where pydensecrf's lattice sums vary by +-0.2% inside the image with the lattice's grid
  and fall to 0.55 along an edge and 0.28 in a corner (so ``n_i`` differs by < 0.1% inside, 1-6%
  at the border).
* The bilateral kernel (5-D features) is filtered with the permutohedral lattice (Adams, Baek &
  Davis, 2010), built once per image: the lattice vertices are found by hashing their integer
  keys (``tf.unique``; each hash straight from the point's remainder-0 point and ranks, the hash
  being linear); the neighbours along each of the d+1 lattice directions by binary search in the
  sorted hashes (the queries come in almost sorted order, which keeps the search in the cache),
  and only the "minus" neighbour is searched for: the "plus" neighbour is the same link read
  backwards.  Every iteration then runs splat (a sparse x dense product: the transposed points x
  vertices matrix of barycentric weights, with the normalisation and the kernel weight folded in),
  the blur (per lattice direction, (1, 2, 1) along its links: two row gathers and one sum; the
  kernel's scale is a constant, which the symmetric normalisation cancels) and slice (sparse x
  dense).  No Python loop over pixels, any image size.
* TensorFlow's sparse x dense product runs on one thread (about 6 ns per non-zero at 4 classes, 20 at
  21), so splat and slice are split into two independent products (the two halves of the points)
  that TensorFlow's executor runs side by side on two cores; the gathers and sums of
  the blur use every core themselves, and cost in proportion to the classes (2x less than two
  sparse products per direction at 4 classes, the same at 21).
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core._tf import tf
from .params import CRFParams

__all__ = ["PermutohedralLattice", "gaussian_filter", "dense_crf", "dense_crf_bi_weights", "TFDenseCRF"]

# Odd 62-bit multipliers: a vertex key (d small integers) hashes to sum(key * P) in wrapping int64
# arithmetic; the hash is linear, so a neighbour's hash is the vertex's plus a constant.
_HASH = np.random.RandomState(20101).randint(1 << 40, 1 << 62, size=16, dtype=np.int64) | 1

# Splat and slice run in this many independent parts of the points (see ``PermutohedralLattice.filter``).
PARTS = 2


def _c_round(x: tf.Tensor) -> tf.Tensor:
    """C's round(): halves away from zero (tf.round rounds halves to even)."""
    return tf.sign(x) * tf.floor(tf.abs(x) + 0.5)


class PermutohedralLattice:
    """The lattice of N points with d-dimensional (already scaled) features; filters N x C values.

    ``filter(values)`` approximates ``out_i = sum_j exp(-|f_i - f_j|^2 / 2) values_j`` up to a constant
    factor (which symmetric normalisation cancels).
    """

    def __init__(self, features: tf.Tensor):
        d = int(features.shape[-1])
        n = tf.shape(features)[0]
        self.d = d
        self._norm: Optional[tf.Tensor] = None
        inv_std = math.sqrt(2.0 / 3.0) * (d + 1)
        scale = tf.constant([inv_std / math.sqrt((i + 1) * (i + 2)) for i in range(d)], tf.float32)
        c = tf.cast(features, tf.float32) * scale  # (N, d)
        suffix = tf.concat([tf.cumsum(c, axis=1, reverse=True), tf.zeros([n, 1])], axis=1)  # S_0 .. S_d
        steps = tf.range(d + 1, dtype=tf.float32)
        elevated = suffix - steps * tf.concat([tf.zeros([n, 1]), c], axis=1)  # (N, d+1)

        # The closest remainder-0 point, and the simplex the point is in (ranks of the differences).
        # Loops over the d+1 coordinates keep every intermediate at (N, d+2) or smaller.
        rounded = _c_round(elevated / (d + 1))
        rem0 = rounded * (d + 1)
        total = tf.cast(tf.reduce_sum(rounded, axis=1), tf.int32)
        diff = elevated - rem0
        ranks = []
        for i in range(d + 1):
            count = total
            for j in range(d + 1):
                if j > i:
                    count += tf.cast(diff[:, i] < diff[:, j], tf.int32)
                elif j < i:
                    count += tf.cast(diff[:, j] >= diff[:, i], tf.int32)
            ranks.append(count)
        rank = tf.stack(ranks, axis=1)  # (N, d+1)
        rem0 = tf.where(rank < 0, rem0 + (d + 1), tf.where(rank > d, rem0 - (d + 1), rem0))
        rank = tf.where(rank < 0, rank + (d + 1), tf.where(rank > d, rank - (d + 1), rank))

        # Barycentric coordinates (p.10 of Adams et al. 2010).
        v = (elevated - rem0) / (d + 1)
        bary = tf.add_n([(tf.one_hot(d - rank[:, i], d + 2) - tf.one_hot(d - rank[:, i] + 1, d + 2)) * v[:, i:i + 1]
                         for i in range(d + 1)])  # (N, d+2)
        bary = tf.concat([bary[:, :1] + 1.0 + bary[:, d + 1:], bary[:, 1:d + 1]], axis=1)  # (N, d+1)

        # The d+1 vertices of each point's simplex: key_k = rem0 + canonical[k][rank], where
        # canonical[k] is k on the coordinates of rank <= d - k and k - (d+1) on the others.  Their hashes
        # straight from the (linear) hash: sum(rem0 * P) + k sum(P) - (d+1) sum(P over rank > d - k).
        multipliers = tf.constant(_HASH[:d])
        ones = tf.reduce_sum(multipliers)
        base = tf.reduce_sum(tf.cast(rem0[:, :d], tf.int64) * multipliers, axis=1)
        hashes = tf.stack([base + k * ones - (d + 1) * tf.reduce_sum(
            tf.where(rank[:, :d] > d - k, multipliers, tf.zeros_like(multipliers)), axis=1) for k in range(d + 1)],
            axis=1)  # (N, d+1), wrapping int64
        unique, vertex = tf.unique(tf.reshape(hashes, [-1]))  # vertices numbered in the pixels' order
        self.num_vertices = m = tf.shape(unique)[0]

        # Splat and slice: sparse (points x vertices) matrices of barycentric weights, one per part of
        # the points (rows in order: part p holds the points bounds[p] .. bounds[p + 1] - 1; the bounds
        # are multiples of 16, so that the parts of a (N, C) tensor are views, not copies).
        points = tf.repeat(tf.range(n, dtype=tf.int64), d + 1)
        vertex = tf.cast(vertex, tf.int64)
        weights = tf.reshape(bary, [-1])
        bounds = [0] + [(n * p) // PARTS // 16 * 16 for p in range(1, PARTS)] + [n]
        self.num_points = n
        self.point_bounds = bounds
        self.slice_parts: List[tf.SparseTensor] = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            a, b = lo * (d + 1), hi * (d + 1)
            self.slice_parts.append(tf.SparseTensor(tf.stack([points[a:b] - tf.cast(lo, tf.int64), vertex[a:b]], axis=1),
                                                    weights[a:b], tf.cast(tf.stack([hi - lo, m + 1]), tf.int64)))

        # The blur along lattice direction j links a vertex with key k to k - 1 + (d+1) e_j (for j = d:
        # k - 1 on every stored coordinate); the same link read backwards is the other neighbour,
        # k + 1 - (d+1) e_j.  Binary search for those keys in the sorted hashes: searching for the
        # neighbours of the vertices in sorted order keeps the queries (nearly) sorted too.  Only the
        # "minus" neighbour is searched for; the "plus" neighbours are the same links read backwards.
        # A missing neighbour is the vertex m: the lattice's values carry a row m of zeros (the splat
        # writes none there, and the blur keeps it zero), so the blur is two row gathers and a sum.
        order = tf.argsort(unique)
        sorted_hashes = tf.gather(unique, order)
        back_to_vertices = tf.math.invert_permutation(order)
        self.blur_neighbours: List[Tuple[tf.Tensor, tf.Tensor]] = []  # per direction: minus, plus, (m + 1,) int32
        nowhere = tf.fill(m[None] + 1, m)
        for j in range(d + 1):
            step = multipliers[j] * (d + 1) if j < d else tf.constant(0, tf.int64)
            query = sorted_hashes - ones + step
            pos = tf.minimum(tf.searchsorted(sorted_hashes, query, out_type=tf.int32), m - 1)
            neighbour = tf.where(tf.equal(tf.gather(sorted_hashes, pos), query), tf.gather(order, pos), m)
            minus = tf.concat([tf.gather(neighbour, back_to_vertices), m[None]], axis=0)
            here = tf.where(minus[:m] < m)[:, 0]
            plus = tf.tensor_scatter_nd_update(nowhere, tf.gather(minus, here)[:, None], tf.cast(here, tf.int32))
            self.blur_neighbours.append((minus, plus))

    def filter(self, values: tf.Tensor) -> tf.Tensor:
        """(N, C) -> (N, C): splat, blur along every lattice direction, slice."""
        return self._filter(self.slice_parts, self.slice_parts, values)

    def normalized_filter(self, weight: float = 1.0):
        """The function ``values -> weight * n * filter(n * values)`` with ``n = 1 / sqrt(filter(1))``
        (pydensecrf's ``NORMALIZE_SYMMETRIC``); ``n`` and ``weight`` are folded into the splat and
        slice weights once, so a call makes no extra pass over its (N, C) values."""
        if self._norm is None:  # one filter pass per lattice, whatever the number of weights
            self._norm = tf.math.rsqrt(self.filter(tf.ones([self.num_points, 1])) + 1e-20)[:, 0]
        norm = self._norm
        bounds = self.point_bounds
        splat, slice_ = [], []
        for part, lo, hi in zip(self.slice_parts, bounds[:-1], bounds[1:]):
            scaled = part.values * tf.gather(norm[lo:hi], part.indices[:, 0])
            splat.append(tf.SparseTensor(part.indices, scaled, part.dense_shape))
            slice_.append(tf.SparseTensor(part.indices, weight * scaled, part.dense_shape))
        return lambda values: self._filter(splat, slice_, values)

    def _filter(self, splat: List[tf.SparseTensor], slice_: List[tf.SparseTensor], values: tf.Tensor) -> tf.Tensor:
        """Splat and slice are independent sparse x dense products over the parts of the points, which
        TensorFlow runs side by side; the blur gathers each vertex's two neighbours per direction."""
        bounds = self.point_bounds
        lattice = tf.add_n([tf.sparse.sparse_dense_matmul(part, values[lo:hi], adjoint_a=True)
                            for part, lo, hi in zip(splat, bounds[:-1], bounds[1:])])  # (M + 1, C): row M is 0
        for minus, plus in self.blur_neighbours:  # (1, 2, 1) along the direction
            lattice = tf.add_n([lattice, lattice, tf.gather(lattice, minus), tf.gather(lattice, plus)])
        return tf.concat([tf.sparse.sparse_dense_matmul(part, lattice) for part in slice_], axis=0)


def _gaussian_taps(std: float) -> np.ndarray:
    """The 1-D Gaussian exp(-x^2 / 2 std^2) at integer x, out to 4 standard deviations."""
    radius = max(int(math.ceil(4.0 * std)), 1)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    return np.exp(-0.5 * (x / std) ** 2).astype(np.float32)


def gaussian_filter(values: tf.Tensor, std: float) -> tf.Tensor:
    """(H, W, C) -> (H, W, C): ``out_p = sum_q exp(-|p - q|^2 / 2 std^2) values_q`` over the image's
    pixels q (exact, up to the 4-standard-deviation cut: a weight below 3.4e-4), as a depthwise
    convolution along the rows and one along the columns (zero outside the image)."""
    taps = _gaussian_taps(std)
    channels = tf.shape(values)[-1]
    row = tf.tile(tf.constant(taps)[None, :, None, None], tf.stack([1, 1, channels, 1]))
    column = tf.tile(tf.constant(taps)[:, None, None, None], tf.stack([1, 1, channels, 1]))
    out = tf.nn.depthwise_conv2d(values[None], row, [1, 1, 1, 1], "SAME")
    return tf.nn.depthwise_conv2d(out, column, [1, 1, 1, 1], "SAME")[0]


def _pixel_features(height: tf.Tensor, width: tf.Tensor, rgb: tf.Tensor, xy_std: float, rgb_std: float = 0.0):
    ys, xs = tf.meshgrid(tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij")
    position = tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1])], axis=1) / xy_std
    if not rgb_std:
        return position
    return tf.concat([position, tf.reshape(tf.cast(rgb, tf.float32), [-1, 3]) / rgb_std], axis=1)


def dense_crf(rgb: tf.Tensor, probabilities: tf.Tensor, params: Optional[CRFParams] = None,
              multiplicity: Optional[tf.Tensor] = None) -> tf.Tensor:
    """(H, W, C) probabilities after mean-field inference, for an (H, W, 3) RGB image.

    ``multiplicity`` (C,): how many classes each channel stands for (``crf.classes``: the absent
    classes of a label map in one channel); the result is then each channel's per-class probability.
    """
    params = params or CRFParams()
    return _mean_field_runs(rgb, probabilities, params, (params.bi_w,), multiplicity)[0]


def dense_crf_bi_weights(rgb: tf.Tensor, probabilities: tf.Tensor, params: CRFParams,
                         bi_ws: Sequence[float]) -> tf.Tensor:
    """(len(bi_ws), H, W, C): ``dense_crf`` with each bilateral weight of ``bi_ws`` in place of ``params.bi_w``,
    sharing one lattice and its normalisation (``util/crf_search.py``'s grid tries several weights per pair of
    standard deviations); each result is the one ``dense_crf`` gives for that weight."""
    return tf.stack(_mean_field_runs(rgb, probabilities, params, tuple(bi_ws)))


def _mean_field_runs(rgb: tf.Tensor, probabilities: tf.Tensor, params: CRFParams, bi_ws: Tuple[float, ...],
                     multiplicity: Optional[tf.Tensor] = None) -> List[tf.Tensor]:
    """The (H, W, C) result of mean-field inference for each bilateral weight of ``bi_ws``: the unary, the
    position kernel and the bilateral lattice are built once."""
    shape = tf.shape(probabilities)
    height, width, classes = shape[0], shape[1], shape[2]
    log_p = tf.math.log(tf.clip_by_value(tf.reshape(probabilities, [-1, classes]), 1e-8, 1.0))  # -unary, (N, C)
    if multiplicity is None:
        normalise = functools.partial(tf.nn.softmax, axis=-1)
    else:  # q_c = exp(a_c) / sum_k m_k exp(a_k)
        multiplicity = tf.cast(multiplicity, tf.float32)

        def normalise(a):
            e = tf.exp(a - tf.reduce_max(a, axis=-1, keepdims=True))
            return e * tf.math.reciprocal(tf.reduce_sum(e * multiplicity, axis=-1, keepdims=True))

    messages = []  # functions q (N, C) -> the kernel's weighted, normalised filter of q
    if params.pos_w:
        std = float(params.pos_xy_std)
        pos_norm = tf.math.rsqrt(gaussian_filter(tf.ones([height, width, 1]), std) + 1e-20)
        pos_out = params.pos_w * pos_norm

        def position(q):
            return tf.reshape(pos_out * gaussian_filter(pos_norm * tf.reshape(q, shape), std), [-1, classes])
        messages.append(position)
    lattice = None
    if any(bi_ws):
        lattice = PermutohedralLattice(_pixel_features(height, width, rgb, params.bi_xy_std, params.bi_rgb_std))
    results: List[tf.Tensor] = []
    for bi_w in bi_ws:
        # one setting after the other, each alone on the cores as dense_crf's single setting: the same numbers
        with tf.control_dependencies(results[-1:]):
            setting = messages + ([lattice.normalized_filter(bi_w)] if bi_w else [])
            q = normalise(tf.identity(log_p))
            for _ in range(params.iterations):
                q = normalise(tf.add_n([log_p] + [message(q) for message in setting]))
            results.append(tf.reshape(q, shape))
    return results


_COMPILED: Dict[tuple, Callable] = {}
_COMPILED_LOCK = threading.Lock()
_IMAGE_SPECS = [tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([None, None, None], tf.float32)]  # rgb, probs


def _compiled(params: CRFParams, with_multiplicity: bool = False) -> Callable:
    """The compiled ``dense_crf`` for ``params``, one per setting per process: every ``TFDenseCRF`` of the
    same setting (evaluate and crf_refine build one per run) shares it, so only the first one traces."""
    key = (params, with_multiplicity)
    with _COMPILED_LOCK:
        if key not in _COMPILED:
            if with_multiplicity:
                _COMPILED[key] = tf.function(lambda rgb, probs, m: dense_crf(rgb, probs, params, m),
                                             input_signature=_IMAGE_SPECS + [tf.TensorSpec([None], tf.float32)])
            else:
                _COMPILED[key] = tf.function(lambda rgb, probs: dense_crf(rgb, probs, params),
                                             input_signature=_IMAGE_SPECS)
        return _COMPILED[key]


def _check_sizes(rgb: np.ndarray, probs: np.ndarray) -> None:
    if rgb.shape[:2] != probs.shape[:2]:
        raise ValueError(f"image {rgb.shape[:2]} and probabilities {probs.shape[:2]} differ in size")


class TFDenseCRF:
    """The TensorFlow CRF behind ``--crf_backend tf``: same call as ``crf.DenseCRF``, compiled once for
    any image size; safe to call from several threads at once."""

    def __init__(self, params: Optional[CRFParams] = None):
        self.params = params = params or CRFParams()
        self._run = _compiled(params)
        self._run_shared = _compiled(params, with_multiplicity=True)
        self._runs_bi_weights: Dict[Tuple[float, ...], Callable] = {}  # this object's only: freed with it

    def __call__(self, rgb: np.ndarray, probs: np.ndarray, multiplicity: Optional[np.ndarray] = None) -> np.ndarray:
        """``multiplicity``: see ``dense_crf`` (``crf.classes``)."""
        _check_sizes(rgb, probs)
        if multiplicity is None:
            return self._run(tf.constant(rgb, tf.uint8), tf.constant(probs, tf.float32)).numpy()
        return self._run_shared(tf.constant(rgb, tf.uint8), tf.constant(probs, tf.float32),
                                tf.constant(multiplicity, tf.float32)).numpy()

    def for_bi_weights(self, rgb: np.ndarray, probs: np.ndarray, bi_ws: Sequence[float]) -> np.ndarray:
        """(len(bi_ws), H, W, C): the CRF of this setting with each bilateral weight of ``bi_ws`` in place of
        its own, on one lattice (``dense_crf_bi_weights``)."""
        _check_sizes(rgb, probs)
        bi_ws = tuple(float(w) for w in bi_ws)
        if bi_ws not in self._runs_bi_weights:  # kept by this object (crf_search: one per pair of stds)
            params = self.params
            self._runs_bi_weights[bi_ws] = tf.function(
                lambda rgb, probs: dense_crf_bi_weights(rgb, probs, params, bi_ws), input_signature=_IMAGE_SPECS)
        return self._runs_bi_weights[bi_ws](tf.constant(rgb, tf.uint8), tf.constant(probs, tf.float32)).numpy()
