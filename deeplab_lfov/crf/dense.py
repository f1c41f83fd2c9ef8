"""Fully-connected CRF post-processing (Krähenbühl & Koltun, 2011), as DeepLab uses it.

The unary term is ``-log`` of the network's upsampled softmax probabilities; the pairwise terms
are an appearance (bilateral) kernel on position and RGB colour and a smoothness (Gaussian)
kernel on position.  Defaults are DeepLab-LargeFOV's published settings, with DeepLab's own
parameter names: ``bi_w=4, bi_xy_std=121, bi_rgb_std=5, pos_w=3, pos_xy_std=3`` and 10
mean-field iterations.

Two backends compute it: ``tf`` (the default, ``crf_tf``: TensorFlow operations only, on any
device, inside exported models) and ``pydensecrf`` (the optional compiled package ``pydensecrf2``,
imported as ``pydensecrf``, kept as the reference).  ``make_crf`` picks one.  This module imports
no TensorFlow, so CRF worker processes of the ``pydensecrf`` backend start in a fraction of a second.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..core.errors import DeepLabError
from .params import CRFParams

__all__ = ["DenseCRF", "check_backend", "CRF_PACKAGE", "CRF_BACKENDS", "make_crf", "init_worker", "crf_labels"]

CRF_PACKAGE = "pydensecrf2"
CRF_BACKENDS = ("tf", "pydensecrf")


def check_backend(backend: str) -> None:
    """Fail at once, before any work, if ``--crf_backend``'s package is missing (the one early check)."""
    if backend not in CRF_BACKENDS:
        raise DeepLabError(f"--crf_backend: unknown backend {backend!r} ({', '.join(CRF_BACKENDS)})")
    if backend == "pydensecrf":
        _import_backend()


def _import_backend():
    try:
        import pydensecrf.densecrf as densecrf
    except ImportError:
        raise DeepLabError(f"--crf_backend pydensecrf needs the package {CRF_PACKAGE}, which is not installed: "
                           f"pip install {CRF_PACKAGE} (or use --crf_backend tf, the default)") from None
    return densecrf


class DenseCRF:
    """Refines (H, W, C) probabilities of an (H, W, 3) RGB uint8 image; returns probabilities.

    ``backend`` is the ``pydensecrf.densecrf`` module (injectable for tests).
    """

    def __init__(self, params: Optional[CRFParams] = None, backend=None):
        self.params = params or CRFParams()
        self.backend = backend if backend is not None else _import_backend()

    def __call__(self, rgb: np.ndarray, probs: np.ndarray, multiplicity: Optional[np.ndarray] = None) -> np.ndarray:
        """``multiplicity`` (C,): how many classes each channel stands for (``crf.classes``); pydensecrf
        gets it as ``-log m`` in the unary (its Q is then a channel's total) and a diagonal compatibility
        ``-w / m`` (so each message is the filter of one class's probability, as Potts ``w`` gives)."""
        height, width, num_classes = probs.shape
        if rgb.shape[:2] != (height, width):
            raise ValueError(f"image {rgb.shape[:2]} and probabilities {probs.shape[:2]} differ in size")
        p = self.params
        crf = self.backend.DenseCRF2D(width, height, num_classes)
        unary = -np.log(np.clip(probs, 1e-8, 1.0)).transpose(2, 0, 1).reshape(num_classes, -1)
        pos_compat, bi_compat = p.pos_w, p.bi_w
        if multiplicity is not None:
            m = np.asarray(multiplicity, np.float32)
            unary = unary - np.log(m)[:, None]
            pos_compat, bi_compat = (-p.pos_w / m).astype(np.float32), (-p.bi_w / m).astype(np.float32)
        crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
        crf.addPairwiseGaussian(sxy=p.pos_xy_std, compat=pos_compat)
        crf.addPairwiseBilateral(sxy=p.bi_xy_std, srgb=p.bi_rgb_std,
                                 rgbim=np.array(rgb, dtype=np.uint8, order="C"), compat=bi_compat)
        q = np.asarray(crf.inference(p.iterations), dtype=np.float32)
        q = q.reshape(num_classes, height, width).transpose(1, 2, 0)
        q = q / np.maximum(q.sum(axis=-1, keepdims=True), 1e-12)
        return q if multiplicity is None else q / m


def make_crf(params: Optional[CRFParams] = None, backend: str = "tf"):
    """The CRF of ``--crf_backend``: a callable (rgb (H, W, 3) uint8, probs (H, W, C)) -> probs."""
    params = params or CRFParams()
    if backend == "tf":
        from .tf_crf import TFDenseCRF
        return TFDenseCRF(params)
    if backend == "pydensecrf":
        return DenseCRF(params)
    raise DeepLabError(f"--crf_backend: unknown backend {backend!r} ({', '.join(CRF_BACKENDS)})")


# Worker-process side of parallel evaluation (the pydensecrf backend runs one image per process).
_worker_crf = None


def init_worker(params: CRFParams, backend: str = "pydensecrf") -> None:
    """Process-pool initializer (and the in-process CRF): build the CRF once."""
    global _worker_crf
    _worker_crf = make_crf(params, backend)


def crf_labels(rgb: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The CRF's label map of one image (in a worker set up by ``init_worker``)."""
    return np.argmax(_worker_crf(rgb, probs), axis=-1).astype(np.uint8)
