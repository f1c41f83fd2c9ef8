#!/usr/bin/env python
"""Evaluate DeepLab-LargeFOV on a segmentation list: mean IoU, pixel accuracy, per-class IoU.

    python evaluate.py --data_dir /home/VOCdevkit --restore_from ./snapshots/

Every image of ``--data_list`` (default: the 1,449 VOC 2012 val images) is segmented at its own
size; ``--pad_to 513 --crf`` is DeepLab's published test protocol.
"""

from __future__ import annotations

import argparse
import os

from deeplab_lfov import cli


def get_args_parser() -> argparse.ArgumentParser:
    from deeplab_lfov.crf import add_crf_arguments
    from deeplab_lfov.predict import add_test_time_arguments
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data_dir", default="/home/VOCdevkit", help="prefix of the paths in --data_list")
    p.add_argument("--data_list", default="./dataset/val.txt", help="list of 'IMAGE LABEL' lines")
    p.add_argument("--num_steps", type=int, default=None, help="evaluate only the first N images (default: all)")
    p.add_argument("--restore_from", default=None,
                   help="weights: checkpoint, snapshot directory (its latest), .caffemodel or pickle")
    p.add_argument("--weights_path", default=None, help="classic pickle of weights (same as --restore_from)")
    p.add_argument("--save_dir", default=None, help="write each prediction as a colour PNG here")
    p.add_argument("--num_classes", type=int, default=21)
    p.add_argument("--ignore_label", type=int, default=255)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="CRF worker processes")
    p.add_argument("--skip_check", action="store_true", help="skip the pre-flight check of the list")
    add_test_time_arguments(p)
    add_crf_arguments(p)
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from deeplab_lfov.crf import crf_from_args, params_from_args
    crf_from_args(args)  # fails now, before any work, if the CRF package is missing
    from deeplab_lfov.colormap import VOC_CLASSES
    from deeplab_lfov.errors import DeepLabError
    from deeplab_lfov.evaluation import evaluate
    from deeplab_lfov.image_reader import read_list
    from deeplab_lfov.metrics import format_report
    from deeplab_lfov.predict import predictor_from_args
    from deeplab_lfov.training import check_writable, preflight

    weights_from = args.restore_from or args.weights_path
    if not weights_from:
        raise DeepLabError("--restore_from is required: a checkpoint, a snapshot directory or a .caffemodel")
    if args.save_dir:
        check_writable(args.save_dir, "--save_dir")
    entries = read_list(args.data_dir, args.data_list)[:args.num_steps]
    if not args.skip_check:
        preflight(entries, args.num_classes, args.ignore_label, skip_bad=False, log=print)
    predictor = predictor_from_args(weights_from, args.num_classes, args)
    confusion = evaluate(predictor, entries, num_classes=args.num_classes, ignore_label=args.ignore_label,
                         save_dir=args.save_dir, crf_params=params_from_args(args) if args.crf else None,
                         workers=args.workers, log=print)
    names = VOC_CLASSES if args.num_classes == len(VOC_CLASSES) else [str(i) for i in range(args.num_classes)]
    if "crf" in confusion:
        print(format_report(confusion["plain"], names, "Without CRF:"))
        print(format_report(confusion["crf"], names, "With CRF:"))
    else:
        print(format_report(confusion["plain"], names, f"Per-class IoU (%) on {len(entries)} images:"))
    if args.save_dir:
        print(f"Masks saved to {args.save_dir}")
    return 0


if __name__ == "__main__":
    cli.run(main)
