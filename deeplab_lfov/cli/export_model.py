"""``util/export_model.py`` / ``deeplab-lfov-export``: export a verified SavedModel and TFLite files.

    python util/export_model.py MODEL_WEIGHTS --output_dir export/ [--formats saved_model,tflite]

The test-time flags (``--pad_to --scales --flip --precision``) are baked in when given.  Every
written artifact is loaded back and run on check images; its pixel agreement with the in-process
predictor is printed, and it is published only if it reaches its threshold (``export.MIN_AGREEMENT``:
SavedModel at fp32 100%; TFLite fp32 99.9%, float16 99.5%, dynamic 98%; ``--min_agreement`` sets
them).  Each artifact is published on its own; the run ends with a table (artifact, agreement, size,
latency, published or why not) and exits with code 2 if any was not published.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from ..cli import log, predictor_and_classes, run
from ..settings import ExportConfig


def get_args_parser() -> argparse.ArgumentParser:
    return ExportConfig.parser("Export DeepLab-LargeFOV as a SavedModel (TF Serving) and TFLite files, verified.")


def report_table(report) -> str:
    """The table the run ends with: one row per artifact."""
    rows = [("artifact", "agreement", "needs", "size", "latency", "result")]
    for a in report.artifacts:
        rows.append((a.name, f"{100 * a.agreement:.3f}%" if a.agreement is not None else "-", f"{100 * a.need:g}%",
                     f"{a.size / 1e6:.1f} MB" if a.size is not None else "-",
                     f"{a.latency:.3f} s" if a.latency is not None else "-",
                     "published" if a.published else "NOT published: " + a.reason.replace(a.name + " ", "", 1)))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(w) if i in (0, 5) else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths + [0]))).rstrip() for row in rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = ExportConfig.from_args(get_args_parser().parse_args(argv))
    from ..core.errors import DeepLabError
    from ..core.files import check_writable
    from ..core.text import counted
    from ..deploy.export import check_images, export_model

    check_writable(config.output_dir, "--output_dir")
    predictor, classes = predictor_and_classes(config, config.model_weights, config.num_classes)
    images = check_images(config.check_images)
    log(f"Exporting {config.model_weights} ({predictor.model.count_params():,} parameters, "
        f"{predictor.model.num_classes} classes); verifying on {counted(len(images), 'check image')}")
    report = export_model(config, predictor, images, log, classes=classes)
    if report.cleaned:
        log(f"Removed {counted(len(report.cleaned), 'staging folder')} left by interrupted exports")
    log(report_table(report))
    for path in report.files:
        log(f"Wrote {path}")
    failed, published = report.failed, [a for a in report.artifacts if a.published]
    if failed:
        reasons = [a.reason for a in failed] + report.problems
        kept = f"; {len(published)} published in {config.output_dir}" if published else "; nothing published"
        raise DeepLabError(f"{len(failed)} of {len(report.artifacts)} artifacts not published: {'; '.join(reasons)}"
                           f"{kept} (an earlier version of a file not published is left as it was)")
    if report.problems:
        raise DeepLabError(f"{'; '.join(report.problems)}: the {counted(len(published), 'artifact')} "
                           f"{'is' if len(published) == 1 else 'are'} published in "
                           f"{config.output_dir}, but their description is not up to date")
    log(f"Published {counted(len(published), 'artifact')} in {config.output_dir} (model.json describes them)")
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":  # python -m deeplab_lfov.cli.export_model
    entry()
