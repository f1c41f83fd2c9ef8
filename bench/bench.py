#!/usr/bin/env python
"""Benchmark DeepLab-LargeFOV on this machine and print one table (or JSON).

    python bench/bench.py                 # full net, CPU or GPU, about 5 minutes on 2 CPU cores
    python bench/bench.py --json          # machine-readable
    python bench/bench.py --tiny          # slim net, 64x64, one repetition (what the test runs)
    python bench/bench.py --only_family   # the model-family rows only (LargeFOV, ASPP-S/L, ResNet-101 MSC)

Everything is measured in one run, so the ratios compare like with like:
  * the machine's fp32 matrix-multiply rate (a large tf.matmul), the yardstick;
  * inference at 321x321 and 513x513, batch 1 (logits, Interp upsampling, argmax);
  * a training step at 321x321, batch 2 (Adam, dropout on); its FLOPs count the forward pass and
    both backward convolutions (data and filter gradients), i.e. 3x the forward;
  * peak resident memory of a process that only runs 513x513 inference;
  * the input pipeline alone (decode + augment, as in training) against the rate the training
    step consumes images;
  * evaluation throughput (whole images, 500x375) without the dense CRF, with it (overlapped with the
    net) and the CRF alone; util/crf_refine.py's images/s per backend (bench/crf_rows.py);
  * inference.py on a folder against the bare forward pass on the same images;
  * the exported SavedModel and TFLite files (fp32, dynamic-range int8), one image each;
  * peak resident memory of inference.py on a 4000x3000 photo with --max_size 1024;
  * the dense CRF on a 500x375 image: the TensorFlow backend (on the GPU if there is one) against
    pydensecrf in one process, and the TF CRF's peak memory;
  * our inference (as inference.py runs it) at 321 and 513, batch 1, and a training step at 321, batch 2,
    against a PyTorch twin of the net with the same weights (bench/torch_peer.py: fresh processes,
    alternating; targets: 1.1x at 321, still ahead at 513 and in training); skipped with a note when
    PyTorch is not installed (it is optional);
  * the model family (--models): each of the paper's nets (LargeFOV, ASPP-S, ASPP-L, ResNet-101 with
    MSC) forward at 321 and 513 and a training step at 321, batch 2, with parameters and FLOPs; the
    peak memory of a ResNet-101 MSC process at 513 (forward) and of one training it at 321, batch 2.
Achieved GFLOP/s count convolutions only (they are >99.9% of the work).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
try:
    import deeplab_lfov  # noqa: F401
except ImportError:  # a plain checkout, not installed: the package is beside this folder
    sys.path.insert(0, ROOT)

import torch_peer  # noqa: E402  (bench/, beside this file; imports PyTorch only in its worker processes)
from crf_rows import crf_rows, eval_overlap_rows, refine_rows  # noqa: E402  (bench/, beside this file)

if __name__ != "__mp_main__":  # not in the crf_refine rows' pydensecrf workers: spawned processes run this
    # file's top level again, and TensorFlow there would cost each of them seconds of CPU (its rows count it)
    from deeplab_lfov.core._tf import tf  # noqa: E402
    from deeplab_lfov.model import DeepLabLargeFOV, conv_flops  # noqa: E402
    from deeplab_lfov.model.ops import DTYPES  # noqa: E402


def timed(fn, repeats: int, warmup: int = 1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return np.array(times)


def matmul_rate(n: int, repeats: int) -> float:
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    f = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    t = timed(lambda: f().numpy(), repeats, warmup=2)
    return 2.0 * n ** 3 / np.median(t) / 1e9


def row(name, times, flops, images, peak_gflops):
    med = float(np.median(times))
    out = {"name": name, "median_s": med, "min_s": float(times.min()), "max_s": float(times.max()),
           "images_per_s": images / med}
    if flops:
        out["gflops"] = flops / med / 1e9
        out["ratio_to_matmul"] = out["gflops"] / peak_gflops
    return out


def bench_inference(model, size, repeats, jit, precision_model=None):
    m = precision_model or model
    fn = tf.function(lambda x: tf.argmax(m.upsampled_logits(x), -1), jit_compile=jit)
    x = tf.random.uniform([1, size, size, 3], -120, 140)
    return timed(lambda: fn(x).numpy(), repeats)


def bench_training(model, size, batch, repeats, jit):
    from deeplab_lfov.core.constants import IGNORE_LABEL
    from deeplab_lfov.training.optim import Optimizer, learning_rate_schedule
    from deeplab_lfov.training.trainer import TrainStep
    opt = Optimizer(model.named_variables(), "adam", learning_rate_schedule("fixed", 1e-6, 100))
    step = TrainStep(tf.distribute.get_strategy(), model, opt, model.num_classes, IGNORE_LABEL, jit_compile=jit)
    x = tf.random.uniform([batch, size, size, 3], -120, 140)
    y = tf.random.uniform([batch, size, size], 0, model.num_classes, dtype=tf.int32)
    return timed(lambda: float(step((x, y))), repeats)


def bench_family(names, width: float, sizes, repeats: int, peak: float) -> dict:
    """Each model of ``names`` at full (or ``width``) width: parameters, forward FLOPs and rows for the
    forward pass at each size and a training step at the first size, batch 2 (MSC as the preset)."""
    from deeplab_lfov.model import MODELS, build_net
    out = {"family": {}, "family_rows": []}
    for name in names:
        net = build_net(name, 21, width_multiplier=width, seed=0)
        info = {"params": net.count_params(), "msc": bool(net.msc)}
        for size in sizes:
            flops = conv_flops(net, size, size)
            info[f"gflops_forward_{size}"] = flops / 1e9
            t = bench_inference(net, size, repeats, False)
            out["family_rows"].append(row(f"{name} forward {size}x{size} b1", t, flops, 1, peak))
        t = bench_training(net, sizes[0], 2, max(1, repeats // 2), False)
        out["family_rows"].append(row(f"{name} train step {sizes[0]}x{sizes[0]} b2", t,
                                      3 * 2 * conv_flops(net, sizes[0], sizes[0]), 2, peak))
        info["description"] = MODELS[name].description
        out["family"][name] = info
    return out


def peak_memory_of(code: str) -> float:
    """Peak RSS (MB) of a fresh Python process running ``code``.

    Read from the child's own /proc/self/status VmHWM: Linux carries ``ru_maxrss`` across exec,
    so the child's getrusage would report this (large) parent's peak instead of its own.
    """
    code += "\nprint([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0


def resnet_msc_memory(width: float, forward_size: int, train_size: int) -> dict:
    """Peak RSS of ResNet-101 MSC: one forward at ``forward_size``; one training step at ``train_size``,
    batch 2 (SGD, the DeepLab-v2 recipe), each in a fresh process."""
    head = ("from deeplab_lfov.core._tf import tf\nfrom deeplab_lfov.model import build_net\n"
            f"net = build_net('resnet101', 21, width_multiplier={width!r}, msc=True)\n")
    forward = head + (f"x = tf.random.uniform([1, {forward_size}, {forward_size}, 3], -120, 140)\n"
                      "tf.function(lambda x: tf.argmax(net.upsampled_logits(x), -1))(x).numpy()\n")
    train = head + ("from deeplab_lfov.training.optim import Optimizer, caffe_lr_multipliers, learning_rate_schedule\n"
                    "from deeplab_lfov.training.trainer import TrainStep\n"
                    "v = net.named_variables(trainable_only=True)\n"
                    "opt = Optimizer(v, 'sgd', learning_rate_schedule('poly', 2.5e-4, 20000), "
                    "lr_mult=caffe_lr_multipliers(v, net.classifier_layers))\n"
                    "step = TrainStep(tf.distribute.get_strategy(), net, opt, 21, 255)\n"
                    f"x = tf.random.uniform([2, {train_size}, {train_size}, 3], -120, 140)\n"
                    f"y = tf.random.uniform([2, {train_size}, {train_size}], 0, 21, dtype=tf.int32)\n"
                    "float(step((x, y)))\n")
    return {"resnet101_msc_forward_size": forward_size, "resnet101_msc_forward_peak_rss_mb": peak_memory_of(forward),
            "resnet101_msc_train_size": train_size, "resnet101_msc_train_peak_rss_mb": peak_memory_of(train)}


def startup_times(repeats: int) -> dict:
    """Wall time of a command that never needs TensorFlow: ``train.py --help`` and a settings error
    (``--batch_size 0``), each the median of ``repeats`` fresh processes.  Target: under 1.5 s."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    out = {}
    for key, argv in (("startup_help_s", ["--help"]), ("startup_settings_error_s", ["--batch_size", "0"])):
        times = []
        for _ in range(max(repeats, 3)):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, os.path.join(ROOT, "train.py")] + argv, capture_output=True, env=env)
            times.append(time.perf_counter() - t0)
        out[key] = float(np.median(times))
    out["startup_target_met"] = max(out["startup_help_s"], out["startup_settings_error_s"]) < 1.5
    return out


def make_images(root: str, count: int, hw=(375, 500)):
    from PIL import Image
    rng = np.random.RandomState(0)
    os.makedirs(os.path.join(root, "JPEGImages"), exist_ok=True)
    os.makedirs(os.path.join(root, "SegmentationClassAug"), exist_ok=True)
    lines = []
    for i in range(count):
        base = rng.randint(0, 255, size=(hw[0] // 8, hw[1] // 8, 3)).astype(np.uint8)
        img = Image.fromarray(base).resize((hw[1], hw[0]), Image.BILINEAR)
        img.save(os.path.join(root, "JPEGImages", f"{i}.jpg"), quality=90)
        label = np.kron(rng.randint(0, 21, size=(hw[0] // 25 + 1, hw[1] // 25 + 1)), np.ones((25, 25)))
        Image.fromarray(label[:hw[0], :hw[1]].astype(np.uint8), mode="L").save(
            os.path.join(root, "SegmentationClassAug", f"{i}.png"))
        lines.append(f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png\n")
    with open(os.path.join(root, "list.txt"), "w") as f:
        f.writelines(lines)
    return os.path.join(root, "list.txt")


def bench_pipeline(root, list_path, size, batch, batches):
    from deeplab_lfov.data.reader import read_list, train_dataset
    ds = train_dataset(read_list(root, list_path), (size, size), batch, num_classes=21)
    it = iter(ds)
    next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t0)


def bench_collection(model, root: str, size: int, count: int, batch: int) -> dict:
    """inference.py's collection mode (decode threads, batching, mask PNGs written) against the bare
    forward pass on the same, already decoded images in batches of the same size."""
    from PIL import Image

    from deeplab_lfov.data.images import preprocess
    from deeplab_lfov.data.inputs import gather
    from deeplab_lfov.deploy.collection import segment
    from deeplab_lfov.evaluation.predict import Predictor
    folder = os.path.join(root, f"photos{size}")
    os.makedirs(folder)
    rng = np.random.RandomState(1)
    arrays = []
    for i in range(count):
        base = rng.randint(0, 255, size=(size // 8, size // 8, 3)).astype(np.uint8)
        image = Image.fromarray(base).resize((size, size), Image.BILINEAR)
        image.save(os.path.join(folder, f"{i:03d}.jpg"), quality=90)
        arrays.append(preprocess(np.asarray(image)))
    predictor = Predictor(model)
    items, _ = gather(folder)
    segment(predictor, items[:batch], os.path.join(root, "warm"), batch_size=batch, progress=False)  # compile
    predictor.probabilities_of_inputs(np.stack(arrays[:batch]))  # and the bare pass's graph (masks: Predictor.labels)
    t0 = time.perf_counter()
    summary = segment(predictor, items, os.path.join(root, "masks"), batch_size=batch, progress=False)
    collection = summary.done / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for start in range(0, count, batch):
        predictor.probabilities_of_inputs(np.stack(arrays[start:start + batch])).argmax(-1)
    bare = count / (time.perf_counter() - t0)
    return {"collection_images_per_s": collection, "bare_forward_images_per_s": bare,
            "collection_to_bare_ratio": collection / bare}


def bench_exports(model, root: str, size: int, repeats: int) -> dict:
    """Latency of one size x size image through the exported SavedModel and TFLite (fp32, dynamic)."""
    from deeplab_lfov.deploy.export import ServingModule, TFLiteSegmenter, convert_tflite, save_saved_model
    module = ServingModule(model)
    path = save_saved_model(module, os.path.join(root, "saved_model"))
    serve = tf.saved_model.load(path).signatures["serving_default"]
    image = tf.constant(np.random.RandomState(0).randint(0, 255, (1, size, size, 3)).astype(np.uint8))
    out = {"saved_model_s": float(np.median(timed(lambda: serve(images=image)["labels"].numpy(), repeats)))}
    rgb = image.numpy()[0]
    for quantization in ("none", "dynamic"):
        tflite = os.path.join(root, f"{quantization}.tflite")
        with open(tflite, "wb") as f:
            f.write(convert_tflite(module, size, quantization))
        segmenter = TFLiteSegmenter(tflite)
        out[f"tflite_{quantization}_s"] = float(np.median(timed(lambda: segmenter.labels(rgb), repeats)))
    return out


def peak_memory_of_large_photo(root: str, width: float, hw, max_size: int) -> float:
    """Peak RSS (MB) of inference.py on one large JPEG with ``--max_size``, in a fresh process (inference-only,
    as inference.py's: ``core.runtime.frozen_weights_process``)."""
    from PIL import Image

    from deeplab_lfov.model.weights import save_weights
    photo = os.path.join(root, "large.jpg")
    base = np.random.RandomState(2).randint(0, 255, (hw[0] // 16, hw[1] // 16, 3)).astype(np.uint8)
    Image.fromarray(base).resize((hw[1], hw[0]), Image.BILINEAR).save(photo, quality=85)
    model = DeepLabLargeFOV(width_multiplier=width, seed=0)
    weights = save_weights(os.path.join(root, "large_net.ckpt"), {k: v.numpy() for k, v in model.named_variables().items()})
    return peak_memory_of("from deeplab_lfov.core.runtime import frozen_weights_process\n"
                          "frozen_weights_process()  # as inference.py's entry point\n"
                          "from deeplab_lfov.cli import infer\n"
                          f"infer.main([{photo!r}, {weights!r}, '--save_dir', {os.path.join(root, 'large_out')!r}, "
                          f"'--max_size', '{max_size}'])")


def peak_memory_of_inference(size: int, width: float) -> float:
    """Peak RSS (MB) of a fresh process that builds the net and runs one inference."""
    return peak_memory_of("from deeplab_lfov.core._tf import tf\n"
                          "from deeplab_lfov.model import DeepLabLargeFOV\n"
                          f"m = DeepLabLargeFOV(width_multiplier={width!r})\n"
                          "f = tf.function(lambda x: tf.argmax(m.upsampled_logits(x), -1))\n"
                          f"x = tf.random.uniform([1, {size}, {size}, 3], -120, 140)\n"
                          "f(x).numpy(); f(x).numpy()")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--tiny", action="store_true", help="slim net, 64x64, one repetition (for tests)")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--precisions", default=None, help="comma-separated, default fp32,bf16 (+fp16 on GPU)")
    p.add_argument("--xla", choices=("off", "on", "both"), default="both",
                   help="compile with XLA, plain tf.function, or measure both")
    p.add_argument("--models", default="largefov,aspp-s,aspp-l,resnet101",
                   help="the model-family rows: comma-separated --model names ('' for none)")
    p.add_argument("--only_family", action="store_true", help="measure the model family rows only")
    p.add_argument("--no_torch_peer", action="store_true", help="leave out the PyTorch side-by-side rows")
    args = p.parse_args(argv)

    gpu = bool(tf.config.list_physical_devices("GPU"))
    width = 0.125 if args.tiny else 1.0
    sizes = (64, 64) if args.tiny else (321, 513)
    repeats = args.repeats or (1 if args.tiny else 5)
    model = DeepLabLargeFOV(width_multiplier=width, seed=0)
    results = {"device": "GPU" if gpu else f"CPU ({os.cpu_count()} cores)", "tensorflow": tf.__version__,
               "width_multiplier": width, "rows": []}
    peak = matmul_rate(512 if args.tiny else 4096, max(repeats, 3))
    results["matmul_gflops"] = peak
    results.update(startup_times(repeats))
    families = [m for m in args.models.split(",") if m]
    if families:  # the model family: slim nets on tiny sizes in --tiny (what the test runs)
        results.update(bench_family(families, 1 / 16 if args.tiny else 1.0, (33, 41) if args.tiny else sizes,
                                    max(1, repeats // 2) if not args.tiny else 1, peak))
        if "resnet101" in families and not args.tiny:  # two fresh processes that compile ResNet-101 MSC
            results.update(resnet_msc_memory(1.0, 513, 321))
    if args.only_family:
        _print_family(results, args.json)
        return 0
    jits = {"off": [False], "on": [True], "both": [False, True]}[args.xla]
    # Low precision is measured on CPUs too, to show whether it pays there (it is the GPU lever).
    precisions = args.precisions.split(",") if args.precisions else (
        ["fp32", "bf16", "fp16"] if gpu else ["fp32", "bf16"])
    for precision in precisions:
        pm = DeepLabLargeFOV(width_multiplier=width, seed=0, compute_dtype=DTYPES[precision])
        for jit in (jits if precision == "fp32" else [False]):
            tag = f"{precision}{' xla' if jit else ''}"
            for size in sizes:
                t = bench_inference(model, size, repeats, jit, pm)
                results["rows"].append(row(f"inference {size}x{size} b1 [{tag}]", t, conv_flops(model, size, size),
                                           1, peak))
            train_size = sizes[0]
            t = bench_training(pm, train_size, 2, repeats, jit)
            results["rows"].append(row(f"train step {train_size}x{train_size} b2 [{tag}]", t,
                                       3 * 2 * conv_flops(model, train_size, train_size), 2, peak))
    # Ours against PyTorch (fresh processes alternating; this process idles meanwhile).
    results["torch_peer"] = ({"skipped": "left out: --no_torch_peer", "target_met": None} if args.no_torch_peer
                             else torch_peer.bench_rows(tiny=args.tiny))
    train_rows = [r for r in results["rows"] if r["name"].startswith("train") and "fp32" in r["name"]]
    consumed = max(r["images_per_s"] for r in train_rows)
    with tempfile.TemporaryDirectory() as root:
        # --tiny: small photos, so that evaluation's CRF (built per image size) costs the test little
        list_path = make_images(root, 8 if args.tiny else 24, (75, 100) if args.tiny else (375, 500))
        pipe = bench_pipeline(root, list_path, sizes[0], 2, 4 if args.tiny else 40)
        results["pipeline_images_per_s"] = pipe
        results["pipeline_to_training_ratio"] = pipe / consumed
        results.update(bench_collection(model, root, sizes[0], 8 if args.tiny else 24, 4))
        results.update(bench_exports(model, root, sizes[0], repeats))
        large = (600, 800) if args.tiny else (3000, 4000)
        results["large_photo"] = f"{large[1]}x{large[0]} --max_size {256 if args.tiny else 1024}"
        results["peak_rss_mb_large_photo"] = peak_memory_of_large_photo(root, width, large, 256 if args.tiny else 1024)
    results["peak_rss_mb_inference_513"] = peak_memory_of_inference(sizes[1], width)
    # The dense CRF (bench/crf_rows.py): TF against pydensecrf on one image, evaluation with the CRF
    # overlapped with the net against without it and the CRF alone, crf_refine per backend.
    crf_hw = (48, 64) if args.tiny else (375, 500)
    results.update(crf_rows(repeats, crf_hw))
    results.update(eval_overlap_rows(2 if args.tiny else 8, crf_hw, width_multiplier=width))
    results.update(refine_rows(2 if args.tiny else 8, crf_hw, workers=1 if args.tiny else None))  # --tiny: no pools

    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    _print_family(results, False)
    print(f"DeepLab-LargeFOV benchmark: {results['device']}, TensorFlow {results['tensorflow']}, "
          f"width x{width:g}")
    print(f"matmul fp32: {peak:.1f} GFLOP/s (the yardstick)")
    print(f"command start-up: --help {results['startup_help_s']:.2f} s, a settings error "
          f"{results['startup_settings_error_s']:.2f} s (target < 1.5 s: "
          f"{'met' if results['startup_target_met'] else 'NOT met'})")
    print(f"{'what':<36} {'median s':>9} {'min-max s':>15} {'img/s':>8} {'GFLOP/s':>8} {'of matmul':>9}")
    for r in results["rows"]:
        print(f"{r['name']:<36} {r['median_s']:>9.3f} {r['min_s']:>7.3f}-{r['max_s']:<7.3f} "
              f"{r['images_per_s']:>8.2f} {r['gflops']:>8.1f} {100 * r['ratio_to_matmul']:>8.1f}%")
    print(torch_peer.format_bench_rows(results["torch_peer"]))
    print(f"input pipeline: {pipe:.1f} images/s = {results['pipeline_to_training_ratio']:.1f}x what training consumes")
    print(f"evaluation ({results['eval_images']}): {results['eval_images_per_s']:.2f} images/s without CRF, "
          f"{results['eval_crf_images_per_s']:.2f} with the CRF overlapped, CRF alone "
          f"{results['crf_alone_images_per_s']:.2f}: {100 * results['eval_crf_to_slower_ratio']:.0f}% of the slower "
          f"(target >= 80%: {'met' if results['eval_overlap_target_met'] else 'NOT met'})")
    print(f"peak RSS of a {sizes[1]}x{sizes[1]} inference process: {results['peak_rss_mb_inference_513']:.0f} MB")
    print(f"collection inference {sizes[0]}x{sizes[0]} (inference.py on a folder, batch 4): "
          f"{results['collection_images_per_s']:.2f} images/s = {100 * results['collection_to_bare_ratio']:.0f}% of "
          f"the bare forward pass ({results['bare_forward_images_per_s']:.2f} images/s)")
    print(f"exported, one {sizes[0]}x{sizes[0]} image: SavedModel {results['saved_model_s']:.3f} s, TFLite fp32 "
          f"{results['tflite_none_s']:.3f} s, TFLite dynamic-range int8 {results['tflite_dynamic_s']:.3f} s")
    print(f"peak RSS of inference.py on a {results['large_photo']} photo: {results['peak_rss_mb_large_photo']:.0f} MB")
    reference = (f"pydensecrf {results['crf_pydensecrf_s']:.3f} s, ratio {results['crf_tf_to_pydensecrf_ratio']:.2f}"
                 if results["crf_pydensecrf_s"] else "pydensecrf not measured (not installed)")
    print(f"dense CRF ({results['crf_image']}): TensorFlow {results['crf_tf_s']:.3f} s ({results['device']}), "
          f"{reference}; TF CRF process peak RSS {results['crf_tf_peak_rss_mb']:.0f} MB (targets <= 0.5x, < 1 GB: "
          f"{'met' if results['crf_target_met'] else 'NOT met'})")
    print(f"crf_refine: TF {results['refine_tf_images_per_s']:.2f} images/s, pydensecrf "
          f"{results.get('refine_pydensecrf_images_per_s') or float('nan'):.2f} images/s (all 21 classes); "
          f"TF {results['refine_voc_tf_images_per_s']:.2f}, pydensecrf "
          f"{results.get('refine_voc_pydensecrf_images_per_s') or float('nan'):.2f} images/s (VOC-like pseudo labels); "
          f"TF at least as fast on both: {'met' if results['refine_target_met'] else 'NOT met'}; CPU s per image: TF "
          f"{results['refine_tf_cpu_s_per_image']:.2f} and {results['refine_voc_tf_cpu_s_per_image']:.2f}, pydensecrf "
          f"{results.get('refine_pydensecrf_cpu_s_per_image') or float('nan'):.2f} and "
          f"{results.get('refine_voc_pydensecrf_cpu_s_per_image') or float('nan'):.2f}")
    return 0



def _print_family(results: dict, as_json: bool) -> None:
    """The model-family rows (parameters, FLOPs, forward and training times, ResNet-101 MSC memory)."""
    if as_json:
        print(json.dumps(results, indent=1))
        return
    if not results.get("family"):
        return
    print("model family (fp32, plain tf.function):")
    for name, info in results["family"].items():
        flops = ", ".join(f"{v:.0f} GFLOP at {k.rsplit('_', 1)[1]}" for k, v in info.items() if k.startswith("gflops_"))
        print(f"  {name:<10} {info['params'] / 1e6:6.2f} M parameters{' (MSC)' if info['msc'] else ''}; {flops}")
    for r in results["family_rows"]:
        print(f"  {r['name']:<36} {r['median_s']:>9.3f} s {r['images_per_s']:>8.2f} img/s {r['gflops']:>8.1f} GFLOP/s")
    if "resnet101_msc_forward_peak_rss_mb" in results:
        print(f"  ResNet-101 MSC peak RSS: forward {results['resnet101_msc_forward_size']}: "
              f"{results['resnet101_msc_forward_peak_rss_mb']:.0f} MB; training step {results['resnet101_msc_train_size']} "
              f"batch 2: {results['resnet101_msc_train_peak_rss_mb']:.0f} MB")

if __name__ == "__main__":
    sys.exit(main())
