"""Segmentation metrics from a confusion matrix, accumulated image by image (never batch means)."""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from .settings import IGNORE_LABEL

__all__ = ["confusion_matrix", "scores", "format_report"]


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int,
                     ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = ground truth, columns = prediction.

    Pixels whose label is ``ignore_label`` (or outside 0..num_classes-1) are not counted.
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    predictions = np.asarray(predictions).reshape(-1).astype(np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in size")
    keep = (labels != ignore_label) & (labels >= 0) & (labels < num_classes)
    index = labels[keep] * num_classes + np.clip(predictions[keep], 0, num_classes - 1)
    return np.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def scores(confusion: np.ndarray) -> Dict[str, object]:
    """Mean IoU over classes present in labels or predictions, pixel accuracy, per-class IoU."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - true_positive
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
    lines.append(f"Pixel accuracy: {result['pixel_accuracy']:.4f}")
    lines.append(f"Mean IoU: {result['mean_iou']:.4f}")
    return "\n".join(lines)
