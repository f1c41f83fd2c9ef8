"""Dense-CRF refinement of existing labels or probabilities: what ``util/crf_refine.py`` runs.

Inputs are label PNGs (pseudo labels: a hard label becomes a unary with confidence ``gt_prob``,
the rest spread evenly over the other classes; ``ignore_label`` pixels get a flat unary, so the
CRF decides them from the image; the classes absent from the map share one channel, see
``crf.classes``) or ``.npy`` probabilities saved by ``inference.py --outputs probs``.  Each input
is refined with its image in a worker: a process with the pydensecrf backend (this module imports
no TensorFlow, so they start in a fraction of a second), a thread of this process with the
TensorFlow backend (its operations release the GIL: two images in flight keep both cores busy
where one image's CRF alone leaves them idle part of the time).
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..core.errors import DeepLabError
from ..data.images import MAX_IMAGE_PIXELS, read_image, read_label
from ..data.inputs import IMAGE_EXTENSIONS
from .classes import reduce_label_unary, unary_from_labels
from .dense import make_crf
from .params import CRFParams

__all__ = ["unary_from_labels", "refine_sources", "refine_one", "init_worker"]


def refine_sources(input_dir: str, image_dir: str, output_dir: str) -> List[Tuple[str, Optional[str], str]]:
    """(input, image or None if missing, output) for every .png/.npy under ``input_dir``, sorted."""
    out = []
    for root, _, files in os.walk(input_dir):
        for name in files:
            stem, ext = os.path.splitext(name)
            if ext.lower() not in (".png", ".npy"):
                continue
            rel = os.path.relpath(os.path.join(root, stem), input_dir)
            image = next((os.path.join(image_dir, rel + e) for e in IMAGE_EXTENSIONS + tuple(x.upper() for x in
                          IMAGE_EXTENSIONS) if os.path.isfile(os.path.join(image_dir, rel + e))), None)
            out.append((os.path.join(root, name), image, os.path.join(output_dir, rel + ".png")))
    if not out:
        raise DeepLabError(f"{input_dir}: no label PNGs or .npy probabilities in this folder")
    return sorted(out)


_worker: Optional[tuple] = None


def read_probabilities(path: str, num_classes: int, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """(H, W, num_classes) float32 probabilities from a ``.npy`` file (``inference.py --outputs probs``).

    The file is untrusted: it must be a regular file (a FIFO is never opened for a blocking read), its
    header is read and checked first (a float array of the right shape, at most ``max_pixels`` pixels,
    whose declared size the file holds), and only then is the data read; NaN or Inf values are refused.
    """
    from ..data.reading import open_regular
    with open_regular(path, "probabilities") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise DeepLabError(f"{path}: the file is empty, not probabilities (.npy)", "cannot read input")
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except (ValueError, EOFError, SyntaxError, TypeError) as e:
            raise DeepLabError(f"{path}: not a .npy array file ({e})", "cannot read input") from None
        if dtype.fields is not None or dtype.kind == "V":
            raise DeepLabError(f"{path}: holds structured values ({dtype}), not probabilities", "wrong type")
        if dtype.kind != "f":
            raise DeepLabError(f"{path}: holds {dtype} values, not floating-point probabilities", "wrong type")
        if len(shape) != 3 or shape[-1] != num_classes:
            raise DeepLabError(f"{path}: probabilities of shape {shape}, expected (H, W, {num_classes})", "wrong shape")
        if shape[0] * shape[1] > max_pixels:
            raise DeepLabError(f"{path}: declares {shape[0]}x{shape[1]} pixels, more than {max_pixels:,}",
                               "too large")
        needed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if size - f.tell() < needed:
            raise DeepLabError(f"{path}: declares {shape} ({needed:,} bytes) but holds {size - f.tell():,}: "
                               f"truncated or corrupt", "cannot read input")
        f.seek(0)
        probs = np.lib.format.read_array(f, allow_pickle=False).astype(np.float32)
    if not np.all(np.isfinite(probs)):
        raise DeepLabError(f"{path}: holds NaN or Inf probabilities ({int(np.sum(~np.isfinite(probs))):,} values)",
                           "not finite")
    return probs


def init_worker(params: CRFParams, num_classes: int, gt_prob: float, ignore_label: int,
                colors: Optional[np.ndarray], backend: str = "pydensecrf") -> None:
    """Process-pool initializer (and the in-process set-up): the CRF and the settings, once."""
    global _worker
    _worker = (make_crf(params, backend), num_classes, gt_prob, ignore_label, colors)


def refine_one(source: Tuple[str, Optional[str], str]) -> Optional[Tuple[str, str]]:
    """Refine one input and write its labels; None on success, else (message, kind)."""
    from ..data.colormap import save_mask
    crf, num_classes, gt_prob, ignore_label, colors = _worker
    path, image_path, out = source
    try:
        if image_path is None:
            raise DeepLabError(f"{path}: no image with this name in --image_dir", "image not found")
        rgb = read_image(image_path)
        if path.lower().endswith(".npy"):
            probs = read_probabilities(path, num_classes)
            probs = np.clip(probs, 0, None)
            probs /= np.maximum(probs.sum(-1, keepdims=True), 1e-12)
            unary = None
        else:
            # the absent classes share one channel: the same labels, a fraction of the work
            unary = reduce_label_unary(read_label(path), num_classes, gt_prob, ignore_label, path)
            probs = unary.probs
        if probs.shape[:2] != rgb.shape[:2]:
            raise DeepLabError(f"{path}: size {probs.shape[1]}x{probs.shape[0]} differs from its image "
                               f"{rgb.shape[1]}x{rgb.shape[0]}", "size differs from image")
        if unary is None:
            labels = np.argmax(crf(rgb, probs), axis=-1).astype(np.uint8 if num_classes <= 256 else np.uint16)
        else:
            labels = unary.labels(crf(rgb, probs, unary.multiplicity))
        try:
            save_mask(out, labels, colors)
        except OSError as e:
            raise DeepLabError(f"{out}: cannot write ({e.strerror or e})", "cannot write output") from None
    except DeepLabError as e:
        return str(e), e.kind or "failed"
    return None


def _bounded_map(pool, fn, items, in_flight: int):
    """``pool.map(fn, items)`` with at most ``in_flight`` items submitted ahead (Executor.map submits
    them all at once)."""
    import collections
    pending: collections.deque = collections.deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) > in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def refine_all(sources: Sequence[Tuple[str, Optional[str], str]], params: CRFParams, num_classes: int,
               gt_prob: float, ignore_label: int, colors: Optional[np.ndarray], workers: int, backend: str = "tf"):
    """Refine every source in ``workers`` workers (processes for the pydensecrf backend, threads sharing
    one compiled TF CRF for the TF backend); results are taken in order.  Returns the problems."""
    import concurrent.futures
    import multiprocessing

    from ..core.progress import Progress
    from ..data.checks import Problem
    init_worker(params, num_classes, gt_prob, ignore_label, colors, backend)  # fails here without the package
    bar = Progress(len(sources), "refined")
    problems = []
    if workers > 1 and backend == "pydensecrf":
        pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                      initializer=init_worker,
                                                      initargs=(params, num_classes, gt_prob, ignore_label, colors,
                                                                backend))
        results = pool.map(refine_one, sources, chunksize=4)
    elif workers > 1:
        pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="crf")
        results = _bounded_map(pool, refine_one, sources, 2 * workers)
    else:
        pool, results = None, map(refine_one, sources)
    try:
        for source, result in zip(sources, results):
            if result is not None:
                problems.append(Problem(source[0], *result))
            bar.update()
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
        bar.close()
    return problems
