"""``evaluate.py`` / ``deeplab-lfov-evaluate``: mean IoU, pixel accuracy and per-class IoU on a list.

    python evaluate.py --data_dir /home/VOCdevkit --restore_from ./snapshots/

Every image of ``--data_list`` (default: the 1,449 VOC 2012 val images) is segmented at its own
size; ``--pad_to 513 --crf`` is DeepLab's published test protocol.
"""

from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

from ..cli import log, predictor_and_classes, run
from ..settings import EvalConfig


def get_args_parser() -> argparse.ArgumentParser:
    return EvalConfig.parser("Evaluate DeepLab-LargeFOV on a segmentation list: mean IoU, pixel accuracy, "
                             "per-class IoU.")


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = EvalConfig.from_args(get_args_parser().parse_args(argv))
    config.require_default_files("data_list")
    config.require_dirs("label_dir", "pred_dir")
    crf_params = config.crf_params()
    from ..core.constants import NUM_CLASSES
    from ..core.files import check_writable
    from ..core.text import counted
    from ..data.checks import usable_entries
    from ..data.reader import read_list
    from ..evaluation.evaluator import evaluate, evaluate_predictions
    from ..evaluation.metrics import format_report
    from ..model.weights import peek_num_classes

    listed = read_list(config.data_dir, config.data_list, config.label_dir)
    entries = listed[:config.num_steps]
    if len(entries) < len(listed):
        log(f"Evaluating the first {len(entries):,} of the {len(listed):,} entries of {config.data_list} "
            f"(--num_steps {config.num_steps}).")
    if config.pred_dir:
        config.num_classes = config.num_classes or NUM_CLASSES
        config.validate()
        names = config.classes_for(config.num_classes).names_for(config.num_classes)
        confusion = evaluate_predictions(entries, config.pred_dir, num_classes=config.num_classes,
                                         ignore_label=config.ignore_label, log=log)
        print(format_report(confusion, names,
                            f"Per-class IoU (%) of {config.pred_dir} on {counted(len(entries), 'image')}:"))
        return 0
    if config.save_dir:
        check_writable(config.save_dir, "--save_dir")
    # The model's classes are the weights'.  A count the flags give (--classes, --num_classes) is checked
    # against them before any image is read: a wrong count is the problem to report, not the labels it makes
    # look out of range.  Otherwise the data are checked first (labels against the classes the checkpoint's
    # index shows), then the model is built.
    predictor = classes = None
    if config.num_classes is not None:
        predictor, classes = predictor_and_classes(config, config.weights,
                                                   None if config.classes else config.num_classes)
    num_classes = predictor.model.num_classes if predictor else peek_num_classes(config.weights) or NUM_CLASSES
    entries = usable_entries(entries, config.data_dir, num_classes, config.ignore_label,
                             check=not config.skip_check, log=log, hint="fix them (or remove them from the list)")
    if predictor is None:
        predictor, classes = predictor_and_classes(config, config.weights, None)
    config.num_classes = predictor.model.num_classes
    config.validate()
    names = classes.names_for(config.num_classes)
    confusion = evaluate(predictor, entries, num_classes=config.num_classes, ignore_label=config.ignore_label,
                         save_dir=config.save_dir or None, crf_params=crf_params,
                         workers=config.workers or os.cpu_count() or 1, log=log, colors=classes.colors,
                         crf_backend=config.crf_backend)
    if "crf" in confusion:
        print(format_report(confusion["plain"], names, "Without CRF:"))
        print(format_report(confusion["crf"], names, "With CRF:"))
    else:
        print(format_report(confusion["plain"], names, f"Per-class IoU (%) on {counted(len(entries), 'image')}:"))
    if config.save_dir:
        print(f"Masks saved to {config.save_dir}")
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":  # python -m deeplab_lfov.cli.evaluate
    entry()
