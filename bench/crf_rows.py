#!/usr/bin/env python
"""The dense-CRF rows of the benchmark (issue 20): the TF CRF against pydensecrf, evaluation with the
CRF overlapped with the net, and ``util/crf_refine.py`` per backend.

    python bench/crf_rows.py              # 500x375 images, 21 classes, 10 iterations (a few minutes)
    python bench/crf_rows.py --tiny       # 48x64 images, one repetition (bench.py --tiny, what the test
                                          # runs, also refines in one worker: no process pools)
    python bench/crf_rows.py --json --width 1.0

``bench/bench.py`` calls the three functions; each returns JSON-friendly numbers and a
``*_target_met`` flag:

* ``crf_rows``: seconds per image of the TF CRF and of pydensecrf (in this process, alternating,
  median of ``repeats``), their ratio (target <= 0.5) and the peak RSS of a fresh process that runs
  the TF CRF once (target < 1 GB);
* ``eval_overlap_rows``: ``evaluation.evaluate`` images/s on the same images without the CRF, with
  the CRF (the TF backend: its CRF overlaps the net), and the CRF alone on the same probabilities
  (target: with >= 0.8 x the slower of the other two); it also checks that the overlapped run's CRF
  confusion matrix equals the one of the CRF run on its own, image after image;
* ``refine_rows``: ``crf.refine.refine_all`` (what ``util/crf_refine.py`` runs) images/s with the TF
  backend in one worker and in one worker per core, and with pydensecrf in one process per core, on
  labels of all 21 classes and on VOC-like pseudo labels (target: the TF backend with every core at
  least as fast as pydensecrf with every core, on both).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
try:
    import deeplab_lfov  # noqa: F401
except ImportError:  # a plain checkout, not installed: the package is beside this folder
    sys.path.insert(0, ROOT)

__all__ = ["crf_rows", "eval_overlap_rows", "refine_rows", "photo_like", "main"]

CRF_RATIO_TARGET = 0.5  # TF CRF time / pydensecrf time, one image, one process
CRF_PEAK_RSS_TARGET_MB = 1024.0
EVAL_OVERLAP_TARGET = 0.8  # evaluation with CRF / the slower of (evaluation without CRF, the CRF alone)


def photo_like(hw: Tuple[int, int], classes: int = 21, seed: int = 4) -> Tuple[np.ndarray, np.ndarray]:
    """A photo-like RGB image (random colours, bilinearly enlarged 25x) and smooth probabilities (a
    Dirichlet draw every 8 pixels, enlarged): the image ``bench.py``'s CRF row has always used."""
    from PIL import Image

    from deeplab_lfov.core._tf import tf
    rng = np.random.RandomState(seed)
    base = rng.randint(0, 255, (max(hw[0] // 25, 2), max(hw[1] // 25, 2), 3)).astype(np.uint8)
    rgb = np.asarray(Image.fromarray(base).resize((hw[1], hw[0]), Image.BILINEAR))
    probs = rng.dirichlet(np.ones(classes) * 0.3, size=(hw[0] // 8 + 1, hw[1] // 8 + 1)).astype(np.float32)
    probs = tf.image.resize(probs[None], hw).numpy()[0]
    return rgb, probs / probs.sum(-1, keepdims=True)


def _fresh_process(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env=env).stdout.strip().splitlines()[-1]


def crf_rows(repeats: int, hw: Tuple[int, int] = (375, 500), *, classes: int = 21) -> Dict:
    """The dense CRF on one image (DeepLab's 10 iterations): TF backend against pydensecrf, timed in
    this process, alternating the two (so both see the same machine load), median of ``repeats``;
    then the TF CRF's peak RSS (VmHWM) in a fresh process on the same image."""
    from deeplab_lfov.crf.dense import DenseCRF
    from deeplab_lfov.crf.params import CRFParams
    from deeplab_lfov.crf.tf_crf import TFDenseCRF
    rgb, probs = photo_like(hw, classes)
    ours = TFDenseCRF(CRFParams())
    ours(rgb, probs)  # compile
    try:
        reference: Optional[DenseCRF] = DenseCRF(CRFParams())
    except Exception:  # the reference package is optional
        reference = None
    times: Dict[str, List[float]] = {"tf": [], "pydensecrf": []}
    for _ in range(repeats):
        for name, crf in (("tf", ours), ("pydensecrf", reference)):
            if crf is not None:
                t0 = time.perf_counter()
                crf(rgb, probs)
                times[name].append(time.perf_counter() - t0)
    out = {"crf_image": f"{hw[1]}x{hw[0]}, {classes} classes, 10 iterations",
           "crf_tf_s": float(np.median(times["tf"])),
           "crf_pydensecrf_s": float(np.median(times["pydensecrf"])) if reference else None}
    out["crf_tf_to_pydensecrf_ratio"] = out["crf_tf_s"] / out["crf_pydensecrf_s"] if reference else None
    if reference:
        out["crf_labels_agree"] = float(np.mean(ours(rgb, probs).argmax(-1) == reference(rgb, probs).argmax(-1)))
    with tempfile.TemporaryDirectory() as scratch:
        np.save(os.path.join(scratch, "rgb.npy"), rgb)
        np.save(os.path.join(scratch, "probs.npy"), probs)
        code = ("import numpy as np\n"
                "from deeplab_lfov.crf.tf_crf import TFDenseCRF\n"
                f"TFDenseCRF()(np.load({os.path.join(scratch, 'rgb.npy')!r}), "
                f"np.load({os.path.join(scratch, 'probs.npy')!r}))\n"
                "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n")
        out["crf_tf_peak_rss_mb"] = int(_fresh_process(code)) / 1024.0
    out["crf_target_met"] = bool(reference is not None and out["crf_tf_to_pydensecrf_ratio"] <= CRF_RATIO_TARGET
                                 and out["crf_tf_peak_rss_mb"] < CRF_PEAK_RSS_TARGET_MB)
    return out


def _write_images(root: str, count: int, hw: Tuple[int, int], classes: int = 21) -> str:
    """``count`` photo-like JPEGs with block labels and their list file under ``root``."""
    from PIL import Image
    os.makedirs(os.path.join(root, "JPEGImages"), exist_ok=True)
    os.makedirs(os.path.join(root, "SegmentationClassAug"), exist_ok=True)
    rng = np.random.RandomState(0)
    lines = []
    for i in range(count):
        rgb, _ = photo_like(hw, classes, seed=100 + i)
        Image.fromarray(rgb).save(os.path.join(root, "JPEGImages", f"{i}.jpg"), quality=90)
        label = np.kron(rng.randint(0, classes, size=(hw[0] // 25 + 1, hw[1] // 25 + 1)), np.ones((25, 25)))
        Image.fromarray(label[:hw[0], :hw[1]].astype(np.uint8), mode="L").save(
            os.path.join(root, "SegmentationClassAug", f"{i}.png"))
        lines.append(f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png\n")
    with open(os.path.join(root, "list.txt"), "w") as f:
        f.writelines(lines)
    return os.path.join(root, "list.txt")


def eval_overlap_rows(count: int = 8, hw: Tuple[int, int] = (375, 500), *, width_multiplier: float = 0.125,
                      backend: str = "tf") -> Dict:
    """``evaluate`` images/s on ``count`` photo-like images: without the CRF, with it (overlapped with
    the net) and the CRF alone on the same probabilities (computed beforehand, not timed), with a
    ``DeepLabLargeFOV(width_multiplier)`` of random weights (the CRF does the same work whatever
    the weights)."""
    from deeplab_lfov.crf.dense import crf_labels, init_worker
    from deeplab_lfov.crf.params import CRFParams
    from deeplab_lfov.data.reader import load_pair, read_list
    from deeplab_lfov.evaluation.evaluator import evaluate
    from deeplab_lfov.evaluation.metrics import confusion_matrix
    from deeplab_lfov.evaluation.predict import Predictor
    from deeplab_lfov.model import DeepLabLargeFOV
    with tempfile.TemporaryDirectory() as root:
        entries = read_list(root, _write_images(root, count, hw))
        predictor = Predictor(DeepLabLargeFOV(width_multiplier=width_multiplier, seed=0))
        quiet = lambda s: None  # noqa: E731
        evaluate(predictor, entries[:1], num_classes=21, crf_params=CRFParams(), log=quiet,
                 crf_backend=backend)  # compile the net and the CRF
        t0 = time.perf_counter()
        evaluate(predictor, entries, num_classes=21, log=quiet)
        plain = count / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        overlapped = evaluate(predictor, entries, num_classes=21, crf_params=CRFParams(), log=quiet,
                              workers=os.cpu_count() or 1, crf_backend=backend)["crf"]
        with_crf = count / (time.perf_counter() - t0)
        pairs = [load_pair(entry, 21, 255) for entry in entries]
        inputs = [(rgb, predictor.probabilities(rgb), label) for rgb, label in pairs]
        init_worker(CRFParams(), backend)
        alone_confusion = np.zeros_like(overlapped)
        t0 = time.perf_counter()
        for rgb, probs, label in inputs:
            alone_confusion += confusion_matrix(label, crf_labels(rgb, probs), 21, 255)
        crf_alone = count / (time.perf_counter() - t0)
    slower = min(plain, crf_alone)
    return {"eval_images": f"{count} x {hw[1]}x{hw[0]}, width {width_multiplier}, CRF backend {backend}",
            "eval_images_per_s": plain, "eval_crf_images_per_s": with_crf, "crf_alone_images_per_s": crf_alone,
            "eval_crf_to_slower_ratio": with_crf / slower,
            "eval_crf_confusion_equals_sequential": bool(np.array_equal(overlapped, alone_confusion)),
            "eval_overlap_target_met": bool(with_crf >= EVAL_OVERLAP_TARGET * slower
                                            and np.array_equal(overlapped, alone_confusion))}


def _voc_like_labels(hw: Tuple[int, int], seed: int) -> np.ndarray:
    """A pseudo label as a weakly-supervised pipeline writes one: background, two object classes (blobs)
    and an unsure band (the ignore label) around the objects."""
    rng = np.random.RandomState(seed)
    labels = np.zeros(hw, np.uint8)
    ys, xs = np.mgrid[0:hw[0], 0:hw[1]]
    for cls in rng.choice(np.arange(1, 21), size=2, replace=False):
        cy, cx = rng.uniform(0.25, 0.75) * hw[0], rng.uniform(0.25, 0.75) * hw[1]
        r = rng.uniform(0.15, 0.3) * min(hw)
        distance = np.hypot(ys - cy, xs - cx)
        labels[(distance < r + 0.05 * min(hw)) & (labels == 0)] = 255
        labels[distance < r] = cls
    return labels


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its ended child processes (the pydensecrf workers, joined when
    ``refine_all`` returns): what a refinement costs whatever else the machine runs meanwhile."""
    import resource
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def refine_rows(count: int = 8, hw: Tuple[int, int] = (375, 500), *, workers: Optional[int] = None) -> Dict:
    """``refine_all`` (``util/crf_refine.py``) images/s on ``count`` pseudo-label PNGs with their photos:
    the TF backend with one worker and with ``workers`` (default: one per core), pydensecrf with
    ``workers`` processes (None when the package is missing); on labels of all 21 classes (the
    argmax of noise: every class is present, no channel is shared) and on VOC-like pseudo labels
    (background and two classes: the absent classes share one channel, ``crf.classes``).  Each run also
    reports its CPU seconds per image (``*_cpu_s_per_image``): images/s per core is what the two backends
    can reach with every core busy, and it varies less with other load than images/s."""
    from PIL import Image

    from deeplab_lfov.crf.params import CRFParams
    from deeplab_lfov.crf.refine import init_worker, refine_all, refine_one, refine_sources
    workers = workers or os.cpu_count() or 1
    out: Dict = {"refine_images": f"{count} x {hw[1]}x{hw[0]} pseudo labels, 21 classes",
                 "refine_voc_images": f"{count} x {hw[1]}x{hw[0]} VOC-like pseudo labels (background + 2 classes)",
                 "refine_workers": workers}
    with tempfile.TemporaryDirectory() as root:
        for sub in ("images", "labels", "voc_labels"):
            os.makedirs(os.path.join(root, sub))
        for i in range(count):
            rgb, probs = photo_like(hw, 21, seed=200 + i)
            Image.fromarray(rgb).save(os.path.join(root, "images", f"{i}.png"))
            Image.fromarray(probs.argmax(-1).astype(np.uint8), mode="L").save(os.path.join(root, "labels", f"{i}.png"))
            Image.fromarray(_voc_like_labels(hw, 300 + i), mode="L").save(os.path.join(root, "voc_labels", f"{i}.png"))
        runs = [("labels", "tf", 1, "refine_tf_1_worker_images_per_s"), ("labels", "tf", workers, "refine_tf_images_per_s"),
                ("labels", "pydensecrf", workers, "refine_pydensecrf_images_per_s"),
                ("voc_labels", "tf", workers, "refine_voc_tf_images_per_s"),
                ("voc_labels", "pydensecrf", workers, "refine_voc_pydensecrf_images_per_s")]
        for labels, backend, n, key in runs:
            if key == "refine_tf_images_per_s" and n == 1:  # the same run as the 1-worker row
                out[key] = out["refine_tf_1_worker_images_per_s"]
                out["refine_tf_cpu_s_per_image"] = out["refine_tf_1_worker_cpu_s_per_image"]
                continue
            sources = refine_sources(os.path.join(root, labels), os.path.join(root, "images"),
                                     os.path.join(root, f"out_{labels}_{backend}_{n}"))
            try:
                init_worker(CRFParams(), 21, 0.7, 255, None, backend)
            except Exception as e:  # the reference package is optional
                out[key], out["refine_note"] = None, str(e)
                continue
            refine_one(sources[0][:2] + (os.path.join(root, "warm.png"),))  # compile the TF CRF
            cpu0, t0 = _cpu_seconds(), time.perf_counter()
            problems = refine_all(sources, CRFParams(), 21, 0.7, 255, None, n, backend)
            out[key] = len(sources) / (time.perf_counter() - t0)
            out[key.replace("images_per_s", "cpu_s_per_image")] = (_cpu_seconds() - cpu0) / len(sources)
            if problems:
                raise RuntimeError(f"crf_refine bench: {problems[0]}")
    for prefix in ("refine", "refine_voc"):
        reference = out.get(f"{prefix}_pydensecrf_images_per_s")
        out[f"{prefix}_tf_to_pydensecrf_ratio"] = out[f"{prefix}_tf_images_per_s"] / reference if reference else None
    out["refine_tf_workers_speedup"] = out["refine_tf_images_per_s"] / out["refine_tf_1_worker_images_per_s"]
    out["refine_target_met"] = bool(out["refine_tf_to_pydensecrf_ratio"] and out["refine_tf_to_pydensecrf_ratio"] >= 1
                                    and out["refine_voc_tf_to_pydensecrf_ratio"] >= 1)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="48x64 images, one repetition, two images (for tests)")
    p.add_argument("--json", action="store_true", help="print JSON instead of lines")
    p.add_argument("--repeats", type=int, default=None, help="CRF repetitions (default 5; 1 with --tiny)")
    p.add_argument("--images", type=int, default=None, help="images for the evaluation and refine rows (default 8)")
    p.add_argument("--width", type=float, default=0.125, help="the net's width multiplier in the evaluation row")
    args = p.parse_args(argv)
    hw = (48, 64) if args.tiny else (375, 500)
    repeats = args.repeats or (1 if args.tiny else 5)
    images = args.images or (2 if args.tiny else 8)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results = {"cpu_cores": os.cpu_count(), "load_average_before": load}
    results.update(crf_rows(repeats, hw))
    results.update(eval_overlap_rows(images, hw, width_multiplier=args.width))
    results.update(refine_rows(images, hw))
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    r = results
    ratio = r["crf_tf_to_pydensecrf_ratio"]
    print(f"dense CRF ({r['crf_image']}): TF {r['crf_tf_s']:.3f} s, pydensecrf "
          f"{r['crf_pydensecrf_s'] or float('nan'):.3f} s, ratio {ratio or float('nan'):.2f} (target <= "
          f"{CRF_RATIO_TARGET}); TF CRF peak RSS {r['crf_tf_peak_rss_mb']:.0f} MB; "
          f"{'met' if r['crf_target_met'] else 'NOT met'}")
    print(f"evaluation ({r['eval_images']}): {r['eval_images_per_s']:.2f} images/s without CRF, "
          f"{r['eval_crf_images_per_s']:.2f} with, CRF alone {r['crf_alone_images_per_s']:.2f}; "
          f"{r['eval_crf_to_slower_ratio']:.2f} of the slower (target >= {EVAL_OVERLAP_TARGET}), same confusion "
          f"{r['eval_crf_confusion_equals_sequential']}; {'met' if r['eval_overlap_target_met'] else 'NOT met'}")
    reference = r["refine_pydensecrf_images_per_s"]
    print(f"crf_refine ({r['refine_images']}): TF {r['refine_tf_1_worker_images_per_s']:.2f} images/s with 1 worker, "
          f"{r['refine_tf_images_per_s']:.2f} with {r['refine_workers']}; pydensecrf "
          f"{reference or float('nan'):.2f} with {r['refine_workers']} processes; CPU s per image: TF "
          f"{r['refine_tf_cpu_s_per_image']:.2f}, pydensecrf "
          f"{r.get('refine_pydensecrf_cpu_s_per_image') or float('nan'):.2f}")
    print(f"crf_refine ({r['refine_voc_images']}): TF {r['refine_voc_tf_images_per_s']:.2f} images/s, pydensecrf "
          f"{r['refine_voc_pydensecrf_images_per_s'] or float('nan'):.2f} with {r['refine_workers']} workers each "
          f"(CPU s per image: {r['refine_voc_tf_cpu_s_per_image']:.2f}, "
          f"{r.get('refine_voc_pydensecrf_cpu_s_per_image') or float('nan'):.2f}); "
          f"TF at least as fast on both: {'met' if r['refine_target_met'] else 'NOT met'}")
    print(f"(load average before the run: {load})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
