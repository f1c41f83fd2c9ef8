"""Segmentation metrics from a confusion matrix, accumulated image by image (never batch means)."""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from ..core.constants import IGNORE_LABEL

__all__ = ["confusion_matrix", "scores", "format_report"]


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int,
                     ignore_label: int = IGNORE_LABEL, unlabelled_column: bool = False) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = ground truth, columns = prediction.

    Pixels whose label is ``ignore_label`` (or outside 0..num_classes-1) are not counted.  With
    ``unlabelled_column`` the matrix has one more column, counting the pixels whose *prediction* is
    no class (255 in pseudo labels): they are misses of their true class.
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    predictions = np.asarray(predictions).reshape(-1).astype(np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in size")
    keep = (labels != ignore_label) & (labels >= 0) & (labels < num_classes)
    predictions = predictions[keep]
    if unlabelled_column:
        columns = num_classes + 1
        predictions = np.where((predictions >= 0) & (predictions < num_classes), predictions, num_classes)
    else:
        columns = num_classes
        predictions = np.clip(predictions, 0, num_classes - 1)
    index = labels[keep] * columns + predictions
    return np.bincount(index, minlength=num_classes * columns).reshape(num_classes, columns)


def scores(confusion: np.ndarray) -> Dict[str, object]:
    """Mean IoU over classes present in labels or predictions, pixel accuracy, per-class IoU.

    A matrix with an unlabelled column (see ``confusion_matrix``) counts those pixels as misses.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    classes = confusion.shape[0]
    true_positive = np.diag(confusion[:, :classes])
    union = confusion[:, :classes].sum(0) + confusion.sum(1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
    total = confusion.sum()
    return {
        "mean_iou": float(np.nanmean(iou)) if np.any(union > 0) else 0.0,
        "pixel_accuracy": float(true_positive.sum() / total) if total else 0.0,
        "iou": iou,
    }


def format_report(confusion: np.ndarray, class_names: Sequence[str], title: str = "") -> str:
    """The per-class IoU table, then pixel accuracy and the classic ``Mean IoU: 0.xxx`` line."""
    result = scores(confusion)
    lines = [title] if title else []
    width = max(len(n) for n in class_names)
    for name, value in zip(class_names, result["iou"]):
        shown = "   n/a" if np.isnan(value) else f"{100 * value:6.2f}"
        lines.append(f"  {name:<{width}}  {shown}")
    if confusion.shape[1] > confusion.shape[0]:
        unlabelled = confusion[:, -1].sum() / max(confusion.sum(), 1)
        lines.append(f"Pixels predicted as no class (ignore label): {100 * unlabelled:.2f}% (counted as misses)")
    lines.append(f"Pixel accuracy: {result['pixel_accuracy']:.4f}")
    lines.append(f"Mean IoU: {result['mean_iou']:.4f}")
    return "\n".join(lines)
