"""The fully-connected CRF (Krähenbühl & Koltun, 2011) in TensorFlow operations only.

DeepLab's CRF, as ``pydensecrf`` computes it, with no compiled dependency: it runs wherever
TensorFlow runs (CPU, GPU), inside a compiled ``tf.function`` and inside an exported SavedModel.

* Mean-field inference: unary ``-log p``; Potts compatibility; a Gaussian kernel on position
  (``pos_w``, ``pos_xy_std``) and a bilateral kernel on position and RGB (``bi_w``, ``bi_xy_std``,
  ``bi_rgb_std``); each kernel normalised symmetrically (``n_i = 1 / sqrt(sum_j k_ij)``, the
  ``NORMALIZE_SYMMETRIC`` of pydensecrf); ``iterations`` steps.
* High-dimensional Gaussian filtering with the permutohedral lattice (Adams, Baek & Davis, 2010):
  built once per image (lattice vertices found by hashing their integer keys; barycentric weights;
  the two neighbours of every vertex along each of the d+1 lattice directions), then every
  iteration splats (a sparse matrix product), blurs (gathers) and slices (the transposed product).
  No Python loop over pixels, any image size.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..core._tf import tf
from .params import CRFParams

__all__ = ["PermutohedralLattice", "dense_crf", "TFDenseCRF"]

# Odd 62-bit multipliers: a vertex key (d small integers) hashes to sum(key * P) in wrapping int64
# arithmetic; the hash is linear, so a neighbour's hash is the vertex's plus a constant.
_HASH = np.random.RandomState(20101).randint(1 << 40, 1 << 62, size=16, dtype=np.int64) | 1


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
        inv_std = math.sqrt(2.0 / 3.0) * (d + 1)
        scale = tf.constant([inv_std / math.sqrt((i + 1) * (i + 2)) for i in range(d)], tf.float32)
        c = tf.cast(features, tf.float32) * scale  # (N, d)
        suffix = tf.concat([tf.cumsum(c, axis=1, reverse=True), tf.zeros([n, 1])], axis=1)  # S_0 .. S_d
        steps = tf.range(d + 1, dtype=tf.float32)
        elevated = suffix - steps * tf.concat([tf.zeros([n, 1]), c], axis=1)  # (N, d+1)

        # The closest remainder-0 point, and the simplex the point is in (ranks of the differences).
        rounded = _c_round(elevated / (d + 1))
        rem0 = rounded * (d + 1)
        total = tf.cast(tf.reduce_sum(rounded, axis=1, keepdims=True), tf.int32)
        diff = elevated - rem0
        i_idx = tf.range(d + 1)[:, None]
        j_idx = tf.range(d + 1)[None, :]
        di, dj = diff[:, :, None], diff[:, None, :]
        rank = tf.reduce_sum(tf.cast(((j_idx > i_idx) & (di < dj)) | ((j_idx < i_idx) & (dj >= di)), tf.int32), axis=2)
        rank = rank + total
        rem0 = tf.where(rank < 0, rem0 + (d + 1), tf.where(rank > d, rem0 - (d + 1), rem0))
        rank = tf.where(rank < 0, rank + (d + 1), tf.where(rank > d, rank - (d + 1), rank))

        # Barycentric coordinates (p.10 of Adams et al. 2010).
        v = (elevated - rem0) / (d + 1)
        bary = tf.reduce_sum(tf.one_hot(d - rank, d + 2) * v[..., None]
                             - tf.one_hot(d - rank + 1, d + 2) * v[..., None], axis=1)  # (N, d+2)
        bary = tf.concat([bary[:, :1] + 1.0 + bary[:, d + 1:], bary[:, 1:d + 1]], axis=1)  # (N, d+1)

        # The d+1 vertices of each point's simplex: key = rem0 + canonical[remainder][rank].
        remainder = tf.range(d + 1)[None, :, None]  # (1, d+1, 1)
        ranks = rank[:, None, :d]  # (N, 1, d)
        canonical = tf.where(ranks <= d - remainder, remainder, remainder - (d + 1))
        keys = tf.cast(rem0[:, None, :d], tf.int64) + tf.cast(canonical, tf.int64)  # (N, d+1, d)
        multipliers = tf.constant(_HASH[:d])
        hashes = tf.reduce_sum(keys * multipliers, axis=2)  # (N, d+1), wrapping int64
        unique, vertex = tf.unique(tf.reshape(hashes, [-1]))
        self.num_vertices = tf.shape(unique)[0]

        # Splat and slice as one sparse (points x vertices) matrix of barycentric weights, with one more
        # vertex column that nothing splats to: the zero row that missing neighbours point at.
        # (Unordered: the sparse x dense product accumulates over the entries in any order.)
        points = tf.repeat(tf.range(n, dtype=tf.int64), d + 1)
        indices = tf.stack([points, tf.cast(vertex, tf.int64)], axis=1)
        self.slice_matrix = tf.SparseTensor(indices, tf.reshape(bary, [-1]),
                                            tf.cast(tf.stack([n, self.num_vertices + 1]), tf.int64))

        # Neighbours along each lattice direction j: key - 1 + (d+1) e_j and key + 1 - (d+1) e_j
        # (for j = d, key -/+ 1 on every stored coordinate); missing ones point at a zero row.
        order = tf.argsort(unique)
        sorted_hashes = tf.gather(unique, order)
        ones = tf.reduce_sum(multipliers)
        self.neighbours = []
        for j in range(d + 1):
            step = multipliers[j] * (d + 1) if j < d else tf.constant(0, tf.int64)
            pair = []
            for query in (unique - ones + step, unique + ones - step):
                pos = tf.minimum(tf.searchsorted(sorted_hashes, query), self.num_vertices - 1)
                found = tf.equal(tf.gather(sorted_hashes, pos), query)
                index = tf.where(found, tf.gather(order, pos), self.num_vertices)
                pair.append(tf.concat([index, [self.num_vertices]], axis=0))  # the zero row stays zero
            self.neighbours.append(pair)

    def filter(self, values: tf.Tensor) -> tf.Tensor:
        """(N, C) -> (N, C): splat, blur along every lattice direction, slice."""
        lattice = tf.sparse.sparse_dense_matmul(self.slice_matrix, values, adjoint_a=True)  # (M + 1, C)
        for n1, n2 in self.neighbours:
            lattice = lattice + 0.5 * (tf.gather(lattice, n1) + tf.gather(lattice, n2))
        return tf.sparse.sparse_dense_matmul(self.slice_matrix, lattice)


def _pixel_features(height: tf.Tensor, width: tf.Tensor, rgb: tf.Tensor, xy_std: float, rgb_std: float = 0.0):
    ys, xs = tf.meshgrid(tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij")
    position = tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1])], axis=1) / xy_std
    if not rgb_std:
        return position
    return tf.concat([position, tf.reshape(tf.cast(rgb, tf.float32), [-1, 3]) / rgb_std], axis=1)


def dense_crf(rgb: tf.Tensor, probabilities: tf.Tensor, params: Optional[CRFParams] = None) -> tf.Tensor:
    """(H, W, C) probabilities after mean-field inference, for an (H, W, 3) RGB image."""
    params = params or CRFParams()
    shape = tf.shape(probabilities)
    height, width, classes = shape[0], shape[1], shape[2]
    unary = -tf.math.log(tf.clip_by_value(tf.reshape(probabilities, [-1, classes]), 1e-8, 1.0))
    kernels = []
    for weight, features in ((params.pos_w, _pixel_features(height, width, rgb, params.pos_xy_std)),
                             (params.bi_w, _pixel_features(height, width, rgb, params.bi_xy_std, params.bi_rgb_std))):
        if weight:
            lattice = PermutohedralLattice(features)
            norm = tf.math.rsqrt(lattice.filter(tf.ones([height * width, 1])) + 1e-20)
            kernels.append((weight, lattice, norm))
    q = tf.nn.softmax(-unary, axis=-1)
    for _ in range(params.iterations):
        energy = -unary
        for weight, lattice, norm in kernels:
            energy += weight * norm * lattice.filter(norm * q)
        q = tf.nn.softmax(energy, axis=-1)
    return tf.reshape(q, shape)


class TFDenseCRF:
    """The TensorFlow CRF behind ``--crf_backend tf``: same call as ``crf.DenseCRF``, compiled once for
    any image size."""

    def __init__(self, params: Optional[CRFParams] = None):
        self.params = params = params or CRFParams()
        self._run = tf.function(lambda rgb, probs: dense_crf(rgb, probs, params),
                                input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                                 tf.TensorSpec([None, None, None], tf.float32)])

    def __call__(self, rgb: np.ndarray, probs: np.ndarray) -> np.ndarray:
        if rgb.shape[:2] != probs.shape[:2]:
            raise ValueError(f"image {rgb.shape[:2]} and probabilities {probs.shape[:2]} differ in size")
        return self._run(tf.constant(rgb, tf.uint8), tf.constant(probs, tf.float32)).numpy()
