"""``inference.py`` / ``deeplab-lfov-infer``: segment an image, a folder, a glob or a list of images.

    python inference.py IMAGE MODEL_WEIGHTS [--save_dir ./output/]           # -> output/mask.png
    python inference.py photos/ MODEL_WEIGHTS --outputs mask,overlay          # -> output/<same tree>.png

Files of the collection that cannot be taken (not regular files, names whose outputs clash) are failures
of the summary; files that are not images are counted in it.  Sharded runs (``--shard K/N``) into one
``--save_dir`` each write their own report of failures, ``failed-K-of-N.txt``.

MODEL_WEIGHTS is any checkpoint form ``deeplab_lfov.model.weights.load_weights`` reads (a TensorFlow
checkpoint prefix or directory, a .caffemodel, or the classic net_weights pickle).  The model is
built once for the whole collection; see ``deeplab_lfov.deploy.collection``.
"""

from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

from ..cli import predictor_and_classes, run
from ..core.runtime import frozen_weights_process
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
    from ..core.text import counted, every
    from ..data.checks import raise_for_problems
    from ..data.inputs import collect, not_images_phrase, shard
    from ..deploy.collection import output_clashes, output_paths, segment

    found = collect(config.img_path)
    items, single, problems, not_images = found.items, found.single, list(found.problems), list(found.not_images)
    if not single:  # over the whole collection, before sharding: shards never write one file twice
        items, clashes = output_clashes(items, config.save_dir, config.outputs)
        problems += clashes
    total = len(items) + len(problems)
    report = os.path.join(config.save_dir, "failed.txt")
    if config.shard:
        k, n = parse_shard(config.shard)
        items, problems, not_images = shard(items, k, n), problems[k::n], not_images[k::n]
        report = os.path.join(config.save_dir, f"failed-{k}-of-{n}.txt")  # shards share --save_dir
    check_writable(config.save_dir, "--save_dir")
    predictor, classes = predictor_and_classes(config, config.model_weights, config.num_classes)
    summary = segment(predictor, items, config.save_dir, outputs=config.outputs, single=single,
                      batch_size=config.batch_size, skip_existing=config.skip_existing, max_size=config.max_size,
                      max_pixels=config.max_pixels, crf=crf, names=classes.names_for(predictor.model.num_classes),
                      colors=classes.colors)
    summary.problems[:0] = problems
    limit = f"{config.max_pixels / 1e6:g} MP"
    if single:
        if summary.problems:
            raise DeepLabError(summary.problems[0].message)
        if summary.skipped:
            print(f"Nothing to do: the outputs of {config.img_path} exist (--skip_existing)")
        else:
            written = output_paths(items[0], config.save_dir, config.outputs, single=True).values()
            note = f" (above {limit}: ran downscaled, --max_pixels)" if summary.downscaled else ""
            print(f"The output file has been saved to {', '.join(written)}{note}")
        return 0
    rate = summary.done / max(summary.seconds, 1e-9)
    part = f" (shard {config.shard}: {len(items) + len(problems):,} of {total:,})" if config.shard else ""
    extra = ""
    if summary.downscaled:
        extra += f"; {counted(summary.downscaled, 'image')} above {limit} ran downscaled (--max_pixels)"
    if not_images:
        extra += f"; {not_images_phrase(not_images)}"
    if not summary.done and not summary.problems:
        have = "has its" if summary.skipped == 1 else "have their"
        print(f"Nothing to do{part}: {every(summary.skipped, 'image')} "
              f"{have} outputs in {config.save_dir}{extra}")
        return 0
    print(f"Segmented {counted(summary.done, 'image')}{part} in {summary.seconds:.1f} s ({rate:.2f} images/s); "
          f"{len(summary.problems):,} failed, {summary.skipped:,} skipped (outputs exist){extra}; outputs in "
          f"{config.save_dir}")
    raise_for_problems(summary.problems, len(items) + len(problems), "images failed", report)
    return 0


def entry() -> None:
    """The console entry point: an inference-only process (``runtime.frozen_weights_process``)."""
    frozen_weights_process()
    run(main)


if __name__ == "__main__":  # python -m deeplab_lfov.cli.infer
    entry()
