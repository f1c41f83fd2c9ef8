"""``train.py`` / ``deeplab-lfov-train``: train DeepLab-LargeFOV on a segmentation list (PASCAL VOC layout).

    python train.py --data_dir /home/VOCdevkit --restore_from ./deeplab_lfov.ckpt --not_restore_last

Flags keep the classic port's names and defaults (Adam, lr 1e-4, batch 16, 321x321 crops,
20,000 steps); ``--optimizer sgd`` with ``--weight_decay 5e-4 --learning_rate 1e-3
--lr_policy step`` is DeepLab's own Caffe recipe.  Re-running the same command resumes from the
latest snapshot in ``--snapshot_dir``.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from ..cli import log, run
from ..settings import TrainConfig


def get_args_parser() -> argparse.ArgumentParser:
    return TrainConfig.parser("Train DeepLab-LargeFOV on a segmentation list (PASCAL VOC layout).")


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = TrainConfig.from_args(get_args_parser().parse_args(argv))
    config.require_default_files("data_list")
    config.require_dirs("label_dir", "val_label_dir")
    from ..training.trainer import train
    train(config, log=log)
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":  # python -m deeplab_lfov.cli.train
    entry()
