#!/usr/bin/env python
"""Grid-search the dense CRF's parameters on a subset of a list, as the DeepLab paper did.

    python util/crf_search.py --data_dir /home/VOCdevkit --restore_from ./snapshots/ --num_images 100

The network runs once per image; its probabilities are kept in memory (num_images of them) and
every CRF setting is scored on them.  Defaults are the paper's grid: bilateral weight 3..6,
bilateral xy std 30..100, bilateral rgb std 3..6 (Gaussian kernel fixed at w 3, xy std 3).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from deeplab_lfov import cli  # noqa: E402


def _floats(text: str):
    return [float(v) for v in text.split(",") if v.strip()]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default="/home/VOCdevkit")
    p.add_argument("--data_list", default="./dataset/val.txt")
    p.add_argument("--restore_from", required=True, help="checkpoint, snapshot directory or .caffemodel")
    p.add_argument("--num_images", type=int, default=100, help="first N images of the list")
    p.add_argument("--num_classes", type=int, default=21)
    p.add_argument("--ignore_label", type=int, default=255)
    p.add_argument("--bi_w", type=_floats, default=[3, 4, 5, 6])
    p.add_argument("--bi_xy_std", type=_floats, default=[30, 50, 70, 90, 100])
    p.add_argument("--bi_rgb_std", type=_floats, default=[3, 4, 5, 6])
    p.add_argument("--pos_w", type=float, default=3.0)
    p.add_argument("--pos_xy_std", type=float, default=3.0)
    p.add_argument("--crf_iterations", type=int, default=10)
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    import numpy as np
    from deeplab_lfov.crf import CRFParams, DenseCRF
    from deeplab_lfov.image_reader import load_pair, read_list
    from deeplab_lfov.metrics import confusion_matrix, scores
    from deeplab_lfov.predict import Predictor
    from deeplab_lfov.weights import build_model, load_weights

    DenseCRF()  # fail at once without the CRF package
    entries = read_list(args.data_dir, args.data_list)[:args.num_images]
    predictor = Predictor(build_model(load_weights(args.restore_from), args.num_classes, source=args.restore_from))
    cached = []
    plain = np.zeros((args.num_classes,) * 2, np.int64)
    for entry in entries:
        rgb, label = load_pair(entry, args.num_classes, args.ignore_label)
        probs = predictor.probabilities(rgb)
        plain += confusion_matrix(label, probs.argmax(-1), args.num_classes, args.ignore_label)
        cached.append((rgb, probs.astype(np.float16), label))
    print(f"Without CRF: mean IoU {scores(plain)['mean_iou']:.4f} on {len(entries)} images")
    best = None
    for bi_w, bi_xy, bi_rgb in itertools.product(args.bi_w, args.bi_xy_std, args.bi_rgb_std):
        crf = DenseCRF(CRFParams(bi_w=bi_w, bi_xy_std=bi_xy, bi_rgb_std=bi_rgb, pos_w=args.pos_w,
                                 pos_xy_std=args.pos_xy_std, iterations=args.crf_iterations))
        confusion = np.zeros_like(plain)
        for rgb, probs, label in cached:
            pred = crf(rgb, probs.astype(np.float32)).argmax(-1)
            confusion += confusion_matrix(label, pred, args.num_classes, args.ignore_label)
        miou = scores(confusion)["mean_iou"]
        print(f"bi_w {bi_w:g}  bi_xy_std {bi_xy:g}  bi_rgb_std {bi_rgb:g}  mean IoU {miou:.4f}", flush=True)
        if best is None or miou > best[0]:
            best = (miou, bi_w, bi_xy, bi_rgb)
    miou, bi_w, bi_xy, bi_rgb = best
    print(f"Best: --bi_w {bi_w:g} --bi_xy_std {bi_xy:g} --bi_rgb_std {bi_rgb:g} "
          f"--pos_w {args.pos_w:g} --pos_xy_std {args.pos_xy_std:g}  (mean IoU {miou:.4f})")
    return 0


if __name__ == "__main__":
    cli.run(main)
