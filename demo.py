#!/usr/bin/env python
"""The demo: train a small DeepLab-LargeFOV on the bundled sample data, evaluate it, segment an image.

    make demo          # or: python demo.py [--out demo_run] [--num_steps 800]

Runs on a CPU in a few minutes.  The sample data (dataset/sample, made by
dataset/make_sample_data.py) is synthetic, so the numbers say that the pipeline works, not how
well DeepLab segments PASCAL VOC.
"""

from __future__ import annotations

import argparse
import os
import time

from deeplab_lfov import cli

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(HERE, "dataset", "sample")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(HERE, "demo_run"), help="where everything is written")
    p.add_argument("--num_steps", type=int, default=800)
    args = p.parse_args(argv)

    if not os.path.exists(os.path.join(SAMPLE, "train.txt")):
        from deeplab_lfov.data.sample_data import write_sample_dataset
        write_sample_dataset(SAMPLE)

    from deeplab_lfov.crf.params import CRFParams
    from deeplab_lfov.data.colormap import VOC_CLASSES, save_mask
    from deeplab_lfov.data.images import read_image
    from deeplab_lfov.data.reader import read_list
    from deeplab_lfov.evaluation.evaluator import evaluate
    from deeplab_lfov.evaluation.metrics import format_report, scores
    from deeplab_lfov.evaluation.predict import Predictor
    from deeplab_lfov.model.weights import build_model, load_weights
    from deeplab_lfov.settings import TrainConfig
    from deeplab_lfov.training.trainer import train

    started = time.time()
    snapshots = os.path.join(args.out, "snapshots")
    figures = os.path.join(args.out, "images")
    print(f"== 1/3 Training a quarter-width DeepLab-LargeFOV for {args.num_steps} steps on {SAMPLE}")
    config = TrainConfig(data_dir=SAMPLE, data_list=os.path.join(SAMPLE, "train.txt"), snapshot_dir=snapshots,
                         save_dir=figures, restore_from=None, input_size=(96, 96), batch_size=8,
                         num_steps=args.num_steps,
                         learning_rate=1e-3, width_multiplier=0.25, save_pred_every=100, print_every=50,
                         random_seed=1)
    step = train(config, log=lambda line: print(line, flush=True))

    print("== 2/3 Evaluating on the sample validation list")
    model = build_model(load_weights(snapshots))
    entries = read_list(SAMPLE, os.path.join(SAMPLE, "val.txt"))
    crf = CRFParams()  # DeepLab's CRF, in TensorFlow (no extra package)
    masks = os.path.join(args.out, "masks")
    confusion = evaluate(Predictor(model), entries, num_classes=21, save_dir=masks, crf_params=crf,
                         workers=1, log=lambda line: None)
    names = VOC_CLASSES
    present = [i for i in range(21) if confusion["plain"][i].sum()]
    print(format_report(confusion["plain"][present][:, present], [names[i] for i in present],
                        "Per-class IoU (%), classes present:"))
    plain = scores(confusion["plain"])["mean_iou"]
    with_crf = scores(confusion["crf"])["mean_iou"]

    print("== 3/3 Inference on one image")
    image = entries[0].image
    mask = os.path.join(args.out, "output", "mask.png")
    save_mask(mask, Predictor(model).labels(read_image(image)))

    print(f"\nDemo finished in {time.time() - started:.0f} s.")
    print(f"  training figures (image | ground truth | prediction): {figures}/train_{step}.png")
    print(f"  snapshots:            {snapshots}")
    print(f"  validation masks:     {masks}/")
    print(f"  inference mask:       {mask} (of {image})")
    print(f"  mean IoU on the sample val list: {plain:.4f}" +
          f" ({with_crf:.4f} with the CRF)")
    return 0


if __name__ == "__main__":
    cli.run(main)
