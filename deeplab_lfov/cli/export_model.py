"""``util/export_model.py`` / ``deeplab-lfov-export``: export a verified SavedModel and TFLite files.

    python util/export_model.py MODEL_WEIGHTS --output_dir export/ [--formats saved_model,tflite]

The test-time flags (``--pad_to --scales --flip --precision``) are baked in when given.  Every
written artifact is loaded back and run on check images; its pixel agreement with the in-process
predictor is printed, and the export fails (exit 2, nothing left behind) below the thresholds of
``export.MIN_AGREEMENT`` (SavedModel at fp32: 100%; TFLite fp32 99.9%, float16 99.5%, dynamic 98%).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from typing import Optional, Sequence

from ..settings import ExportConfig
from . import log, run

CHECKOUT_SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "dataset", "sample", "JPEGImages")


def get_args_parser() -> argparse.ArgumentParser:
    return ExportConfig.parser("Export DeepLab-LargeFOV as a SavedModel (TF Serving) and TFLite files, verified.")


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = ExportConfig.from_args(get_args_parser().parse_args(argv))
    from ..checks import check_writable
    from ..errors import DeepLabError
    from ..export import (
        MIN_AGREEMENT,
        ServingModule,
        check_images,
        convert_tflite,
        publish,
        reference_labels,
        save_saved_model,
        saved_model_agreement,
        staging_dir,
        tflite_agreement,
        tflite_name,
    )
    from ..model import DeepLabLargeFOV
    from ..predict import predictor_for

    check_writable(config.output_dir, "--output_dir")
    predictor = predictor_for(config, config.model_weights, config.num_classes)
    images = check_images(config.check_images or (CHECKOUT_SAMPLES if os.path.isdir(CHECKOUT_SAMPLES) else None))
    log(f"Exporting {config.model_weights} ({predictor.model.count_params():,} parameters, "
        f"{predictor.model.num_classes} classes); verifying on {len(images)} check images")
    staged = staging_dir(config.output_dir)
    published = []
    strict = config.precision == "fp32"
    try:
        if "saved_model" in config.formats:
            started = time.time()
            crf = config.crf_params()
            module = ServingModule(predictor.model, config.scales, config.flip, config.pad_to, crf)
            path = save_saved_model(module, os.path.join(staged, "saved_model"))
            agreement = saved_model_agreement(path, reference_labels(predictor, images, crf), images)
            need = MIN_AGREEMENT["saved_model"] if strict else 0.995
            log(f"saved_model: serving_default {100 * agreement['serving_default']:.3f}%, segment_encoded "
                f"{100 * agreement['segment_encoded']:.3f}% of pixels as evaluated (need {100 * need:g}%; "
                f"{time.time() - started:.0f} s)")
            if min(agreement.values()) < need:
                raise DeepLabError(f"saved_model: agrees with the evaluated model on only "
                                   f"{100 * min(agreement.values()):.3f}% of pixels; nothing exported")
            published.append(("saved_model", path))
        if "tflite" in config.formats:
            # TFLite is converted from a float32 copy of the net; quantisation decides its precision.
            fp32 = DeepLabLargeFOV(predictor.model.num_classes, widths={n: c.w.shape[-1] for n, c in
                                                                        predictor.model.convs.items()})
            for name, var in fp32.named_variables().items():
                var.assign(predictor.model.named_variables()[name])
            if config.crf:
                log("TFLite files hold no CRF: TFLite lacks the lattice's operations (Unique, sparse products); "
                    "run crf_tf.dense_crf or pydensecrf on their probabilities")
            module = ServingModule(fp32, config.scales, config.flip)
            for quantization in config.tflite_quantize:
                started = time.time()
                name = tflite_name(config.tflite_size, quantization)
                path = os.path.join(staged, name)
                with open(path, "wb") as f:
                    f.write(convert_tflite(module, config.tflite_size, quantization))
                agreement = tflite_agreement(path, predictor, images)
                need = MIN_AGREEMENT[quantization]
                log(f"{name}: {100 * agreement:.3f}% of pixels as evaluated (need {100 * need:g}%; "
                    f"{os.path.getsize(path) / 1e6:.1f} MB; {time.time() - started:.0f} s)")
                if agreement < need:
                    raise DeepLabError(f"{name}: agrees with the evaluated model on only {100 * agreement:.3f}% of "
                                       f"pixels (needs {100 * need:g}%); nothing exported")
                published.append((name, path))
        if config.classes:  # the class names and colours travel with the model
            with open(os.path.join(staged, "classes.txt"), "w") as f:
                f.write(config.class_list.to_text())
            published.append(("classes.txt", os.path.join(staged, "classes.txt")))
        for name, path in published:
            publish(path, os.path.join(config.output_dir, name))
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    for name, _ in published:
        log(f"Wrote {os.path.join(config.output_dir, name)}")
    return 0


def entry() -> None:
    run(main)
