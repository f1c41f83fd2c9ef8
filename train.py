#!/usr/bin/env python
"""Train DeepLab-LargeFOV on a segmentation list (PASCAL VOC layout).

    python train.py --data_dir /home/VOCdevkit --restore_from ./deeplab_lfov.ckpt --not_restore_last

Flags keep the classic port's names and defaults (Adam, lr 1e-4, batch 16, 321x321 crops,
20,000 steps); ``--optimizer sgd`` with ``--weight_decay 5e-4 --learning_rate 1e-3
--lr_policy step`` is DeepLab's own Caffe recipe.  Re-running the same command resumes from the
latest snapshot in ``--snapshot_dir``.
"""

from __future__ import annotations

import argparse
import sys

from deeplab_lfov import cli


def _size(text: str):
    try:
        h, w = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH, got {text!r}") from None
    return h, w


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # The classic flags, same names and defaults.
    p.add_argument("--batch_size", type=int, default=16, help="global batch (all replicas together)")
    p.add_argument("--data_dir", default="/home/VOCdevkit", help="prefix of the paths in --data_list")
    p.add_argument("--data_list", default="./dataset/train.txt", help="list of 'IMAGE LABEL' lines")
    p.add_argument("--input_size", type=_size, default=(321, 321), help="crop size HEIGHT,WIDTH")
    p.add_argument("--learning_rate", type=float, default=1e-4, help="base learning rate")
    p.add_argument("--num_steps", type=int, default=20000, help="number of training steps")
    p.add_argument("--restore_from", default=None,
                   help="initial weights: checkpoint, directory, .caffemodel or classic pickle "
                        "(default: none, random initialisation)")
    p.add_argument("--save_dir", default="./images/", help="where training figures are saved")
    p.add_argument("--save_num_images", type=int, default=2, help="images in each figure")
    p.add_argument("--save_pred_every", type=int, default=500, help="snapshot and figure every N steps")
    p.add_argument("--snapshot_dir", default="./snapshots/", help="where model.ckpt-STEP snapshots go")
    p.add_argument("--weights_path", default=None, help="classic pickle of weights (same as --restore_from)")
    # New flags.
    p.add_argument("--num_classes", type=int, default=21, help="classes, background included")
    p.add_argument("--ignore_label", type=int, default=255, help="label value excluded from loss and metrics")
    p.add_argument("--not_restore_last", action="store_true", help="do not restore fc8 (new classes)")
    p.add_argument("--random_mirror", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--random_scale", action=argparse.BooleanOptionalAction, default=True,
                   help="random scale in 0.75-1.25")
    p.add_argument("--random_seed", type=int, default=1234)
    p.add_argument("--weight_decay", type=float, default=0.0, help="L2 on filters (DeepLab: 5e-4)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                   help="adam (classic port) or sgd (DeepLab: momentum, lr x10/x20 for fc8, x2 biases)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum / Adam beta_1")
    p.add_argument("--lr_policy", choices=("fixed", "step", "poly"), default="fixed")
    p.add_argument("--lr_step", type=int, default=2000, help="'step' policy: steps between decays")
    p.add_argument("--lr_gamma", type=float, default=0.1, help="'step' policy: decay factor")
    p.add_argument("--lr_power", type=float, default=0.9, help="'poly' policy: power")
    p.add_argument("--log_dir", default=None, help="TensorBoard directory (default: SNAPSHOT_DIR/logs)")
    p.add_argument("--max_to_keep", type=int, default=5, help="snapshots kept")
    p.add_argument("--width_multiplier", type=float, default=1.0,
                   help="widths of a freshly initialised net (0.125 = the small test net)")
    p.add_argument("--print_every", type=int, default=1, help="progress line every N steps")
    p.add_argument("--skip_check", action="store_true", help="skip the pre-flight check of the list")
    p.add_argument("--skip_bad", action="store_true", help="train without the entries the check rejects")
    p.add_argument("--strategy", choices=("default", "mirrored", "multi_worker"), default="default",
                   help="tf.distribute strategy (multi_worker reads TF_CONFIG)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="compute precision (variables stay fp32; fp16 uses loss scaling and needs a GPU); "
                        "bf16/fp16 are faster on GPUs and on CPUs with bf16 instructions (bench/bench.py)")
    return p


def config_from_args(args: argparse.Namespace):
    from deeplab_lfov.training import TrainConfig
    restore = args.restore_from or args.weights_path
    return TrainConfig(
        data_dir=args.data_dir, data_list=args.data_list, snapshot_dir=args.snapshot_dir,
        save_dir=args.save_dir, log_dir=args.log_dir, restore_from=restore,
        not_restore_last=args.not_restore_last, input_size=args.input_size, batch_size=args.batch_size,
        num_steps=args.num_steps, learning_rate=args.learning_rate, optimizer=args.optimizer,
        momentum=args.momentum, weight_decay=args.weight_decay, lr_policy=args.lr_policy,
        lr_step=args.lr_step, lr_gamma=args.lr_gamma, lr_power=args.lr_power,
        num_classes=args.num_classes, ignore_label=args.ignore_label, random_scale=args.random_scale,
        random_mirror=args.random_mirror, random_seed=args.random_seed,
        width_multiplier=args.width_multiplier, save_pred_every=args.save_pred_every,
        save_num_images=args.save_num_images, max_to_keep=args.max_to_keep, print_every=args.print_every,
        check_data=not args.skip_check, skip_bad=args.skip_bad, strategy=args.strategy,
        precision=args.precision)


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from deeplab_lfov.training import train
    train(config_from_args(args), log=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    cli.run(main)
