"""``util/export_model.py`` / ``deeplab-lfov-export``: export a verified SavedModel and TFLite files.

    python util/export_model.py MODEL_WEIGHTS --output_dir export/ [--formats saved_model,tflite]

The test-time flags (``--pad_to --scales --flip --precision``) are baked in when given.  Every
written artifact is loaded back and run on check images; its pixel agreement with the in-process
predictor is printed, and the export fails (exit 2, nothing left behind) below the thresholds of
``export.MIN_AGREEMENT`` (SavedModel at fp32: 100%; TFLite fp32 99.9%, float16 99.5%, dynamic 98%).
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from ..cli import log, run
from ..settings import ExportConfig


def get_args_parser() -> argparse.ArgumentParser:
    return ExportConfig.parser("Export DeepLab-LargeFOV as a SavedModel (TF Serving) and TFLite files, verified.")


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = ExportConfig.from_args(get_args_parser().parse_args(argv))
    from ..core.files import check_writable
    from ..deploy.export import check_images, export_model
    from ..evaluation.predict import predictor_for
    from ..model.weights import weights_record

    check_writable(config.output_dir, "--output_dir")
    predictor = predictor_for(config, config.model_weights, config.num_classes)  # --classes is checked against it below
    classes = config.classes_for(predictor.model.num_classes, weights_record(config.model_weights).get("classes"),
                                 config.model_weights)
    images = check_images(config.check_images)
    log(f"Exporting {config.model_weights} ({predictor.model.count_params():,} parameters, "
        f"{predictor.model.num_classes} classes); verifying on {len(images)} check images")
    for _, path in export_model(config, predictor, images, log, classes=classes):
        log(f"Wrote {path}")
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":  # python -m deeplab_lfov.cli.export_model
    entry()
