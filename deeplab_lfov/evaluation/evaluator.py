"""What ``evaluate.py`` runs: stream a list through the model and score it with a confusion matrix.

Images are taken one at a time at their own size (no cropping), so memory stays flat in the
number of images.  With a CRF, the CRF of image i runs while the network runs image i+1 and
later ones: the pydensecrf backend in worker processes, the TensorFlow backend in one worker
thread of this process (TensorFlow's operations release the GIL, so the net and the CRF share the
cores).  A bounded number of images is in flight, results are taken in list order, and the scores
without and with the CRF come from the same run (and equal those of running the two one after
the other).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import time
from collections import deque
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from ..core.constants import IGNORE_LABEL
from ..core.progress import Progress
from ..crf.dense import crf_labels, init_worker
from ..crf.params import CRFParams
from ..data.colormap import save_mask
from ..data.reader import Entry, load_pair
from .metrics import confusion_matrix, scores
from .predict import Predictor

__all__ = ["evaluate", "evaluate_predictions", "prediction_path"]



def _mask_name(entry: Entry) -> str:
    return os.path.splitext(os.path.basename(entry.image))[0] + ".png"


def evaluate(predictor: Predictor, entries: Sequence[Entry], *, num_classes: int, ignore_label: int = IGNORE_LABEL,
             save_dir: Optional[str] = None, crf_params: Optional[CRFParams] = None, workers: int = 1,
             log: Callable[[str], None] = print, colors: Optional[np.ndarray] = None,
             crf_backend: str = "tf") -> Dict[str, np.ndarray]:
    """Confusion matrices over ``entries``: ``{"plain": ..., "crf": ...}`` (crf only with ``crf_params``).

    ``save_dir`` receives each prediction as a VOC palette PNG named after the image (after the
    CRF when there is one).
    """
    confusion = {"plain": np.zeros((num_classes, num_classes), np.int64)}
    pool, in_flight = None, 0
    if crf_params is not None:
        confusion["crf"] = np.zeros_like(confusion["plain"])
        init_worker(crf_params, crf_backend)  # the in-process CRF; fails here, once, if the package is missing
        if crf_backend == "tf":  # one thread: the TF CRF runs its own operations in parallel
            pool, in_flight = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="crf"), 2
        elif workers > 1:
            pool, in_flight = concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker, initargs=(crf_params, crf_backend)), 2 * workers
    pending: deque = deque()

    def finish(entry, label, future_or_labels):
        crf_pred = future_or_labels.result() if pool else future_or_labels
        confusion["crf"] += confusion_matrix(label, crf_pred, num_classes, ignore_label)
        if save_dir:
            save_mask(os.path.join(save_dir, _mask_name(entry)), crf_pred, colors)

    started = time.time()
    try:
        for done, entry in enumerate(entries, start=1):
            rgb, label = load_pair(entry, num_classes, ignore_label)
            probs = predictor.probabilities(rgb)
            pred = np.argmax(probs, axis=-1).astype(np.uint8)
            confusion["plain"] += confusion_matrix(label, pred, num_classes, ignore_label)
            if crf_params is None:
                if save_dir:
                    save_mask(os.path.join(save_dir, _mask_name(entry)), pred, colors)
            elif pool:
                pending.append((entry, label, pool.submit(crf_labels, rgb, probs)))
                while len(pending) > in_flight:
                    finish(*pending.popleft())
            else:
                finish(entry, label, crf_labels(rgb, probs))
            if done % 100 == 0 or done == len(entries):
                so_far = scores(confusion["plain"])["mean_iou"]
                log(f"{done}/{len(entries)} images, {done / (time.time() - started):.2f} images/s, "
                    f"mean IoU so far {so_far:.4f}")
        while pending:
            finish(*pending.popleft())
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    return confusion


def prediction_path(pred_dir: str, entry: Entry) -> str:
    """Where ``evaluate.py --pred_dir`` looks for an entry's prediction: ``PRED_DIR/<image name>.png``."""
    return os.path.join(pred_dir, _mask_name(entry))


def evaluate_predictions(entries: Sequence[Entry], pred_dir: str, *, num_classes: int,
                         ignore_label: int = IGNORE_LABEL, log: Callable[[str], None] = print) -> np.ndarray:
    """Confusion matrix (with an unlabelled column) of existing prediction PNGs against the labels.

    Every missing, unreadable or wrongly sized prediction is reported with its list line, then the
    run fails; predictions holding ``ignore_label`` (unsure pixels of pseudo labels) count as misses.
    """
    from ..core.errors import DeepLabError
    from ..data.checks import Problem, report_problems
    from ..data.images import check_label_values, read_label
    confusion = np.zeros((num_classes, num_classes + 1), np.int64)
    problems = []
    bar = Progress(len(entries), "scored")
    for entry in entries:
        path = prediction_path(pred_dir, entry)
        try:
            try:  # the label alone: scoring needs no image decoded
                label = read_label(entry.label)
                check_label_values(label, num_classes, ignore_label, entry.label)
            except DeepLabError as e:
                raise DeepLabError(f"{entry.where()}: {e}", e.kind) from None
            try:  # values outside the classes (other than the ignore label) are refused, never counted silently
                pred = read_label(path, what="prediction")
                check_label_values(pred, num_classes, ignore_label, path, what="prediction")
            except DeepLabError as e:
                raise DeepLabError(f"{entry.where()}: {e}", e.kind) from None
            if pred.shape != label.shape:
                raise DeepLabError(f"{entry.where()}: {path}: prediction size {pred.shape[1]}x{pred.shape[0]} differs "
                                   f"from label size {label.shape[1]}x{label.shape[0]}", "prediction size differs")
            confusion += confusion_matrix(label, pred, num_classes, ignore_label, unlabelled_column=True)
        except DeepLabError as e:
            problems.append(Problem(entry, str(e), e.kind or "unusable"))
        bar.update()
    bar.close()
    if problems:
        phrase = report_problems(problems, log)
        raise DeepLabError(f"{len(problems):,} of {len(entries):,} predictions in {pred_dir} are unusable ({phrase})")
    return confusion
