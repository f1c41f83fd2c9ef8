"""``inference.py`` / ``deeplab-lfov-infer``: segment an image, a folder, a glob or a list of images.

    python inference.py IMAGE MODEL_WEIGHTS [--save_dir ./output/]           # -> output/mask.png
    python inference.py photos/ MODEL_WEIGHTS --outputs mask,overlay          # -> output/<same tree>.png

MODEL_WEIGHTS is any checkpoint form ``deeplab_lfov.model.weights.load_weights`` reads (a TensorFlow
checkpoint prefix or directory, a .caffemodel, or the classic net_weights pickle).  The model is
built once for the whole collection; see ``deeplab_lfov.deploy.collection``.
"""

from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

from ..cli import run
from ..settings import InferConfig
from ..settings.flags import parse_shard


def get_args_parser() -> argparse.ArgumentParser:
    return InferConfig.parser("Segment images with DeepLab-LargeFOV: masks as VOC palette PNGs, overlays, "
                              "probabilities.")


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = InferConfig.from_args(get_args_parser().parse_args(argv))
    crf = config.make_crf()  # fails now, before any work, if the backend's package is missing
    from ..core.errors import DeepLabError
    from ..core.files import check_writable
    from ..data.checks import raise_for_problems
    from ..data.inputs import gather, shard
    from ..deploy.collection import output_paths, segment
    from ..evaluation.predict import predictor_for
    from ..model.weights import weights_record

    items, single = gather(config.img_path)
    total = len(items)
    if config.shard:
        items = shard(items, *parse_shard(config.shard))
    check_writable(config.save_dir, "--save_dir")
    predictor = predictor_for(config, config.model_weights, config.num_classes)  # --classes is checked against it below
    classes = config.classes_for(predictor.model.num_classes, weights_record(config.model_weights).get("classes"),
                                 config.model_weights)
    summary = segment(predictor, items, config.save_dir, outputs=config.outputs, single=single,
                      batch_size=config.batch_size, skip_existing=config.skip_existing, max_size=config.max_size,
                      crf=crf, names=classes.names_for(predictor.model.num_classes), colors=classes.colors)
    if single:
        if summary.problems:
            raise DeepLabError(summary.problems[0].message)
        if summary.skipped:
            print(f"Nothing to do: the outputs of {config.img_path} exist (--skip_existing)")
        else:
            written = output_paths(items[0], config.save_dir, config.outputs, single=True).values()
            print(f"The output file has been saved to {', '.join(written)}")
        return 0
    rate = summary.done / max(summary.seconds, 1e-9)
    part = f" (shard {config.shard}: {len(items):,} of {total:,})" if config.shard else ""
    if not summary.done and not summary.problems:
        print(f"Nothing to do{part}: all {summary.skipped:,} images have their outputs in {config.save_dir}")
        return 0
    print(f"Segmented {summary.done:,} images{part} in {summary.seconds:.1f} s ({rate:.2f} images/s); "
          f"{len(summary.problems):,} failed, {summary.skipped:,} skipped (outputs exist); outputs in "
          f"{config.save_dir}")
    raise_for_problems(summary.problems, len(items), "images failed", os.path.join(config.save_dir, "failed.txt"))
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":  # python -m deeplab_lfov.cli.infer
    entry()
