#!/usr/bin/env python
"""Our DeepLab-LargeFOV against a PyTorch twin of the same net, side by side (issue 20).

    python bench/torch_peer.py                  # inference 321x321 and 513x513, batch 1, 3 rounds (~4 minutes)
    python bench/torch_peer.py --train          # a training step at 321x321, batch 2, 2 rounds (~2 minutes)
    python bench/torch_peer.py --tiny           # slim net, 33x33 and 65x65, one round: what the test runs
    python bench/torch_peer.py --json --rounds 5 --path labels

``bench/bench.py`` calls ``bench_rows`` (``peer_rows`` and ``peer_train_rows`` as its full and ``--tiny`` runs
need them) and prints ``format_bench_rows``; PyTorch is optional (``{"skipped": "torch not installed"}``
without it, a one-line note in the bench) and never a requirement of the package.

The work timed is the same on both sides, one RGB uint8 image in, its uint8 label map out:

* ours, by ``path``: ``"predictor"``, what ``inference.py`` runs for the mask of one image today
  (``deploy.collection``: without the CRF or a probabilities output, ``Predictor.labels_batch``), in a
  process declared inference-only as inference.py's (``core.runtime.frozen_weights_process``: oneDNN keeps
  its reordered filters); ``"labels"``, ``Predictor.labels`` in an ordinary process; ``"graph"``,
  the bench's inference row (argmax of ``upsampled_logits`` in a ``tf.function``, no softmax);
  ``"constant_filters"``, ``Predictor(constant_filters=True).labels``;
* PyTorch: the same preprocessing (BGR, minus the VGG mean), ``torch_largefov`` (VGG-16 with conv5
  at dilation 2, ceil-mode max pools with Caffe's padding, ``pool5a`` counting the padding, fc6 3x3 at
  dilation 12 and 1024 wide, fc7 1024, fc8 21) in ``channels_last`` under ``torch.inference_mode``,
  bilinear upsampling with ``align_corners=True`` and argmax.

The training row times one step on a batch of random images and labels: ours is ``TrainStep`` with
Adam (the bench's training row); PyTorch's the twin in train mode (dropout 0.5 after fc6 and fc7),
labels sampled onto the logits grid, cross-entropy ignoring 255, ``backward`` and Adam.

Both nets carry the same weights (our seed-0 initialisation, written by our worker and read by
PyTorch's), so the label maps can be compared: ``labels_agree`` is the fraction of pixels where they
match (the two libraries sum the convolutions in different orders, so it need not be 1).

Each side runs in its own fresh process (so neither's thread pools disturb the other), one process
per side per round, the two alternating (ours first in even rounds, PyTorch first in odd ones); a
process warms up, then times ``repeats`` calls per size.  On a shared machine the other processes'
load would land on whichever side runs at the time: before each process the parent waits (up to
``max_wait``) for the CPUs to go idle, and each timed call records the share of the CPUs other
processes took meanwhile; the medians are of the quiet calls (at most ``QUIET``) when there are at
least three, else of all.  ``ratio`` is PyTorch's median over ours (> 1: we are faster).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Dict, Optional, Sequence

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

__all__ = ["TARGET_RATIOS", "TRAIN_TARGET_RATIO", "QUIET", "PATHS", "peer_rows", "peer_train_rows", "format_rows",
           "bench_rows", "format_bench_rows", "torch_largefov", "main"]

# PyTorch time / ours, batch 1, per size.  321: issue 20's target.  513: "not worse than today", read as
# still ahead: before issue 20's changes three quiet runs on 2 AVX-512 cores (oneDNN) gave 1.02, 1.03 and
# 1.09 (issue 20 measured 1.08-1.19 on AVX2); a ratio moves by about +-4% from run to run, so a bar at
# today's value would flip with the noise.
TARGET_RATIOS = {321: 1.1, 513: 1.0}
TRAIN_TARGET_RATIO = 1.0  # training: still ahead (issue 20, AVX2: 1.06-1.33)
QUIET = 0.1  # a timed call counts as quiet if other processes used at most this share of the CPUs meanwhile
PATHS = ("predictor", "labels", "graph", "constant_filters")

_VGG_BLOCKS = ((2, 64, 2), (2, 128, 2), (3, 256, 2), (3, 512, 1), (3, 512, 1))  # (convs, width, pool stride)
_WARMUP = 2


def _conv_names():
    names = [f"conv{b}_{i}" for b, (n, _, _) in enumerate(_VGG_BLOCKS, start=1) for i in range(1, n + 1)]
    return names + ["fc6", "fc7", "fc8_voc12"]


def torch_largefov(weights: Dict[str, np.ndarray], dropout_rate: float = 0.5):
    """DeepLab-LargeFOV in PyTorch, in ``channels_last`` and eval mode, from our weights
    (``{"conv1_1/w": HWIO, "conv1_1/b": ...}``; the widths are read from their shapes)."""
    import torch
    from torch import nn

    layers = []
    names = iter(_conv_names())

    def conv(dilation=1):
        name = next(names)
        w = weights[f"{name}/w"]
        layer = nn.Conv2d(w.shape[2], w.shape[3], w.shape[0], padding=dilation * (w.shape[0] // 2), dilation=dilation)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))))
            layer.bias.copy_(torch.from_numpy(weights[f"{name}/b"]))
        return layer

    for block, (convs, _, stride) in enumerate(_VGG_BLOCKS, start=1):
        for _ in range(convs):
            layers += [conv(2 if block == 5 else 1), nn.ReLU(inplace=True)]
        # Caffe's ceil mode: PyTorch's also drops a last window that would start in the padding.
        layers.append(nn.MaxPool2d(3, stride, padding=1, ceil_mode=True))
    layers.append(nn.AvgPool2d(3, 1, padding=1, count_include_pad=True))  # pool5a
    layers += [conv(12), nn.ReLU(inplace=True), nn.Dropout(dropout_rate),
               conv(), nn.ReLU(inplace=True), nn.Dropout(dropout_rate), conv()]
    return nn.Sequential(*layers).eval().to(memory_format=torch.channels_last)


def _test_image(size: int) -> np.ndarray:
    """A photo-like RGB uint8 image (random colours, bilinearly enlarged 8x), the same on both sides."""
    from PIL import Image
    rng = np.random.RandomState(size)
    base = rng.randint(0, 255, (max(size // 8, 2), max(size // 8, 2), 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(base).resize((size, size), Image.BILINEAR))


def _train_batch(size: int, batch: int, num_classes: int):
    """Random images (NHWC float32, as the bench's training row) and labels (N, H, W) int32."""
    rng = np.random.RandomState(size)
    return (rng.uniform(-120, 140, (batch, size, size, 3)).astype(np.float32),
            rng.randint(0, num_classes, (batch, size, size)).astype(np.int32))


def _cpu_ticks():
    """(CPU ticks of the whole machine spent busy, of this process), or ``None`` off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            mine = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    return sum(fields) - fields[3] - fields[4], int(mine[11]) + int(mine[12])  # minus idle and iowait; utime + stime


def _time_calls(fn, argument, repeats: int):
    """``repeats`` timed calls after ``_WARMUP`` untimed ones: ([(seconds, share of the machine's CPUs
    that other processes used meanwhile, or None)], the last result)."""
    result = None
    for _ in range(_WARMUP):
        result = fn(argument)
    calls = []
    hz, cores = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
    for _ in range(repeats):
        before = _cpu_ticks()
        t0 = time.perf_counter()
        fn(argument)
        seconds = time.perf_counter() - t0
        after = _cpu_ticks()
        others = None
        if before and after:
            others = max(0, (after[0] - before[0]) - (after[1] - before[1])) / (hz * cores * seconds)
        calls.append((seconds, others))
    return calls, result


def _ours_labels_fn(model, path: str):
    """uint8 RGB (H, W, 3) -> uint8 labels (H, W), as ``path`` runs it."""
    from deeplab_lfov.core._tf import tf
    from deeplab_lfov.evaluation.predict import Predictor, preprocess_tensor
    if path in ("predictor", "labels"):  # Predictor.labels is labels_batch of one image (deploy.collection's
        return Predictor(model).labels    # choice for a mask); "predictor" differs by its process (see _ours_worker)
    if path == "constant_filters":
        return Predictor(model, constant_filters=True).labels
    graph = tf.function(lambda rgb: tf.cast(tf.argmax(model.upsampled_logits(preprocess_tensor(rgb)), -1), tf.uint8),
                        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    return lambda rgb: graph(tf.constant(rgb[None]))[0].numpy()


def _ours_train_fn(model):
    from deeplab_lfov.core._tf import tf
    from deeplab_lfov.core.constants import IGNORE_LABEL
    from deeplab_lfov.training.optim import Optimizer, learning_rate_schedule
    from deeplab_lfov.training.trainer import TrainStep
    opt = Optimizer(model.named_variables(), "adam", learning_rate_schedule("fixed", 1e-6, 100))
    step = TrainStep(tf.distribute.get_strategy(), model, opt, model.num_classes, IGNORE_LABEL)
    return lambda batch: float(step((tf.constant(batch[0]), tf.constant(batch[1]))))


def _ours_worker(args) -> dict:
    if args.path == "predictor" and not args.train:  # a process as inference.py's: before TensorFlow is imported
        from deeplab_lfov.core.runtime import frozen_weights_process
        frozen_weights_process()
    from deeplab_lfov.core._tf import tf
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    if args.inter_op is not None:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    from deeplab_lfov.model import DeepLabLargeFOV
    model = DeepLabLargeFOV(width_multiplier=args.width, seed=0)
    weights_path = os.path.join(args.scratch, "weights.npz")
    if not os.path.exists(weights_path):
        np.savez(weights_path + ".tmp.npz", **{k: v.numpy() for k, v in model.named_variables().items()})
        os.replace(weights_path + ".tmp.npz", weights_path)
    if args.train:
        fn = _ours_train_fn(model)
        return {size: _time_calls(fn, _train_batch(size, args.batch, model.num_classes), args.repeats)
                for size in args.sizes}
    fn = _ours_labels_fn(model, args.path)
    return {size: _time_calls(fn, _test_image(size), args.repeats) for size in args.sizes}


def _torch_worker(args) -> dict:
    import torch
    import torch.nn.functional as F
    if args.threads:
        torch.set_num_threads(args.threads)
    with np.load(os.path.join(args.scratch, "weights.npz")) as data:
        net = torch_largefov({k: data[k] for k in data.files})
    if args.train:
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-6)

        def step(batch):
            x = torch.from_numpy(batch[0]).permute(0, 3, 1, 2)  # NHWC memory: channels_last
            y = torch.from_numpy(batch[1]).long()
            opt.zero_grad(set_to_none=True)
            logits = net(x)
            rows = torch.round(torch.arange(logits.shape[2]) * (y.shape[1] - 1) / max(logits.shape[2] - 1, 1)).long()
            cols = torch.round(torch.arange(logits.shape[3]) * (y.shape[2] - 1) / max(logits.shape[3] - 1, 1)).long()
            loss = F.cross_entropy(logits, y[:, rows][:, :, cols], ignore_index=255)
            loss.backward()
            opt.step()
            return float(loss)
        classes = int(net[-1].out_channels)
        return {size: _time_calls(step, _train_batch(size, args.batch, classes), args.repeats) for size in args.sizes}
    from deeplab_lfov.core.constants import IMG_MEAN_BGR  # imports nothing else: no TensorFlow here
    mean = torch.tensor(IMG_MEAN_BGR, dtype=torch.float32)

    def labels(rgb):
        with torch.inference_mode():
            x = torch.from_numpy(rgb)[None].flip(-1).float() - mean  # BGR minus the mean, NHWC
            x = x.permute(0, 3, 1, 2)  # NCHW view of NHWC memory: channels_last
            logits = net(x)
            up = F.interpolate(logits, size=rgb.shape[:2], mode="bilinear", align_corners=True)
            return up.argmax(1)[0].to(torch.uint8).numpy()
    return {size: _time_calls(labels, _test_image(size), args.repeats) for size in args.sizes}


def _worker(args) -> int:
    results = (_ours_worker if args.worker == "ours" else _torch_worker)(args)
    out = {}
    for size, (calls, result) in results.items():
        if not args.train:
            np.save(os.path.join(args.scratch, f"labels_{args.worker}_{size}.npy"), result)
        out[str(size)] = calls
    print(json.dumps(out))
    return 0


def _run_worker(side: str, scratch: str, settings: dict) -> dict:
    argv = [sys.executable, os.path.abspath(__file__), "--worker", side, "--scratch", scratch,
            "--sizes", ",".join(map(str, settings["sizes"])), "--repeats", str(settings["repeats"]),
            "--width", repr(settings["width_multiplier"]), "--path", settings.get("path", "predictor"),
            "--batch", str(settings["batch"])]
    if settings.get("train"):
        argv.append("--train")
    if settings.get("threads"):
        argv += ["--threads", str(settings["threads"])]
    if settings.get("inter_op") is not None:
        argv += ["--inter_op", str(settings["inter_op"])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"the {side} worker failed:\n{proc.stderr[-3000:]}")
    return {int(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}


def _torch_version() -> Optional[str]:
    """PyTorch's version, or ``None`` if it cannot be imported; found without importing it, so this
    process (``bench.py``'s, which times TensorFlow) never loads PyTorch's libraries."""
    try:
        if importlib.util.find_spec("torch") is None:
            return None
        return importlib.metadata.version("torch")
    except (ImportError, ValueError):
        return None


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return platform.machine()
    return "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"


def _median_of_quiet(calls, enough: int = 3):
    """(median seconds of the calls during which other processes used at most ``QUIET`` of the machine,
    how many there were); of all calls when fewer than ``enough`` were quiet (0 counted then)."""
    quiet = [t for t, others in calls if others is not None and others <= QUIET]
    if len(quiet) >= max(enough, 1):
        return float(np.median(quiet)), len(quiet)
    return float(np.median([t for t, _ in calls])), 0


def _wait_for_quiet(max_wait: float, busy: float = 0.25) -> float:
    """Wait (up to ``max_wait`` s) until other processes use less than ``busy`` of the machine's CPUs over
    one second; the seconds waited."""
    waited, hz, cores = 0.0, os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
    while waited < max_wait:
        before = _cpu_ticks()
        time.sleep(1.0)
        after = _cpu_ticks()
        if not before or not after or (after[0] - before[0]) / (hz * cores) < busy:
            break
        waited += 1.0
    return waited


def _alternate(settings: dict, rounds: int, max_wait: float, scratch: str):
    """Both sides' calls per size ({side: {size: [(s, others)]}}), per round, and the seconds waited."""
    sizes = settings["sizes"]
    calls: Dict[str, Dict[int, list]] = {"ours": {s: [] for s in sizes}, "torch": {s: [] for s in sizes}}
    per_round, waited = [], 0.0
    for r in range(rounds):
        got = {}
        for side in (("ours", "torch") if r % 2 == 0 else ("torch", "ours")):
            waited += _wait_for_quiet(max_wait)
            got[side] = _run_worker(side, scratch, settings)
            for s in sizes:
                calls[side][s] += got[side][s]
        per_round.append(got)
    return calls, per_round, waited


def _size_row(calls, per_round, size: int, target: Optional[float]) -> dict:
    ours, ours_quiet = _median_of_quiet(calls["ours"][size])
    theirs, theirs_quiet = _median_of_quiet(calls["torch"][size])
    ours_min, theirs_min = min(t for t, _ in calls["ours"][size]), min(t for t, _ in calls["torch"][size])
    ratio = theirs / ours
    known = all(others is not None for side in ("ours", "torch") for _, others in calls[side][size])
    quiet = (ours_quiet >= 3 and theirs_quiet >= 3) if known else None
    return {"ours_median_s": ours, "torch_median_s": theirs, "ratio": ratio,
            "ours_min_s": ours_min, "torch_min_s": theirs_min, "ratio_of_mins": theirs_min / ours_min,
            "ours_quiet_calls": ours_quiet, "torch_quiet_calls": theirs_quiet,
            "round_ratios": [_median_of_quiet(g["torch"][size], 0)[0] / _median_of_quiet(g["ours"][size], 0)[0]
                             for g in per_round],
            "quiet": quiet, "target_ratio": target,
            "target_met": None if target is None or quiet is False else bool(ratio >= target)}


def _header(version: str, settings: dict, rounds: int, waited: float) -> dict:
    return {"torch": version, "cpu": _cpu_flags(), "cores": os.cpu_count(), **settings, "rounds": rounds,
            "waited_for_quiet_s": waited}


def peer_rows(sizes: Sequence[int] = (321, 513), repeats: int = 5, threads: Optional[int] = None, *,
              rounds: int = 3, width: float = 1.0, path: str = "predictor", inter_op: Optional[int] = None,
              max_wait: float = 30.0) -> dict:
    """Ours against PyTorch, inference at batch 1, at each of ``sizes``: fresh processes, alternating.

    Args:
      sizes: image sides (square images).
      repeats: timed calls per size in each process (after two untimed ones).
      threads: intra-op threads of both sides (``None``: each library's default, every core).
      rounds: processes per side; ours runs first in even rounds, PyTorch in odd ones.
      width: width multiplier of both nets (1.0: the published net; 0.125: the slim test net).
      path: how ours runs (see the module docstring): ``"predictor"`` (``inference.py`` today),
        ``"labels"``, ``"graph"`` or ``"constant_filters"``.
      inter_op: TensorFlow's inter-op threads in our process (``None``: TensorFlow's default).
      max_wait: before each process, wait up to this long for other processes to leave the CPUs; 0
        never waits.

    Returns ``{"skipped": "torch not installed"}`` without PyTorch; otherwise the settings and, under
    ``"sizes"``, per size (a string key): ``ours_median_s`` and ``torch_median_s`` (of the quiet calls
    if there were three, else of all), ``ratio`` (PyTorch / ours: > 1 means we are faster),
    ``ours_min_s``, ``torch_min_s`` and ``ratio_of_mins``, ``ours_quiet_calls`` and
    ``torch_quiet_calls`` (0: the medians are of all calls), ``quiet`` (both sides had three quiet
    calls; ``None`` where the share of other processes cannot be read), ``round_ratios``,
    ``labels_agree`` (fraction of equal pixels), ``target_ratio`` and ``target_met`` (``None`` for a
    size without a target, a net of another width, e.g. ``--tiny``'s, or a run that was not quiet:
    other processes' load makes the ratio meaningless); ``target_met`` over the sizes judged;
    ``waited_for_quiet_s``.
    """
    version = _torch_version()
    if version is None:
        return {"skipped": "torch not installed"}
    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
    settings = {"sizes": [int(s) for s in sizes], "repeats": repeats, "threads": threads, "inter_op": inter_op,
                "width_multiplier": width, "path": path, "batch": 1}
    with tempfile.TemporaryDirectory() as scratch:
        calls, per_round, waited = _alternate(settings, rounds, max_wait, scratch)
        agree = {s: float(np.mean(np.load(os.path.join(scratch, f"labels_ours_{s}.npy")) ==
                                  np.load(os.path.join(scratch, f"labels_torch_{s}.npy")))) for s in settings["sizes"]}
    out = _header(version, settings, rounds, waited)
    out["sizes"] = {}
    for s in settings["sizes"]:
        row = _size_row(calls, per_round, s, TARGET_RATIOS.get(s) if width == 1.0 else None)
        row["labels_agree"] = agree[s]
        out["sizes"][str(s)] = row
    judged = [v["target_met"] for v in out["sizes"].values() if v["target_met"] is not None]
    out["target_met"] = all(judged) if judged else None
    return out


def peer_train_rows(size: int = 321, batch: int = 2, repeats: int = 3, threads: Optional[int] = None, *,
                    rounds: int = 2, width: float = 1.0, max_wait: float = 30.0) -> dict:
    """Ours against PyTorch, one training step (Adam) on ``batch`` random ``size`` x ``size`` images, in
    fresh processes alternating as ``peer_rows``.  Returns ``{"skipped": ...}`` without PyTorch; otherwise
    the settings and the row of ``peer_rows`` (``ours_median_s``, ``torch_median_s``, ``ratio`` ... without
    ``labels_agree``) under ``"train"``, with ``target_met``: ``ratio >= TRAIN_TARGET_RATIO`` (the full net
    in a quiet run only)."""
    version = _torch_version()
    if version is None:
        return {"skipped": "torch not installed"}
    settings = {"sizes": [int(size)], "repeats": repeats, "threads": threads, "width_multiplier": width,
                "batch": batch, "train": True}
    with tempfile.TemporaryDirectory() as scratch:
        calls, per_round, waited = _alternate(settings, rounds, max_wait, scratch)
    out = _header(version, settings, rounds, waited)
    out["train"] = _size_row(calls, per_round, int(size), TRAIN_TARGET_RATIO if width == 1.0 else None)
    out["target_met"] = out["train"]["target_met"]
    return out


def format_rows(result: dict) -> str:
    """The table of a ``peer_rows`` or ``peer_train_rows`` result (what ``main`` prints), for ``bench.py``."""
    if "skipped" in result:
        return f"PyTorch side by side: skipped ({result['skipped']})"
    kind = f"training step, batch {result['batch']}" if result.get("train") else f"ours: {result['path']}, batch 1"
    lines = [f"PyTorch {result['torch']} against ours ({kind}): {result['cores']} cores ({result['cpu']}), "
             f"width x{result['width_multiplier']:g}, {result['rounds']} rounds x {result['repeats']} calls",
             f"{'size':>6} {'ours s':>8} {'torch s':>8} {'ratio':>6} {'target':>9} {'of mins':>8} {'quiet calls':>12} "
             f"{'labels agree':>13}  round ratios"]
    rows = {str(result["sizes"][0]): result["train"]} if result.get("train") else result["sizes"]
    for size, r in rows.items():
        target = "-" if r["target_ratio"] is None else "busy" if r["target_met"] is None else \
            f"{'met' if r['target_met'] else 'NOT'} {r['target_ratio']:g}"
        agree = f"{100 * r['labels_agree']:.3f}%" if "labels_agree" in r else "-"
        lines.append(f"{size:>6} {r['ours_median_s']:>8.3f} {r['torch_median_s']:>8.3f} {r['ratio']:>6.2f} {target:>9} "
                     f"{r['ratio_of_mins']:>8.2f} {r['ours_quiet_calls']:>5}/{r['torch_quiet_calls']:<6} {agree:>13}  "
                     f"{' '.join(f'{x:.2f}' for x in r['round_ratios'])}")
    if result["waited_for_quiet_s"]:
        lines.append(f"(waited {result['waited_for_quiet_s']:.0f} s in all for other processes to leave the CPUs)")
    return "\n".join(lines)


def bench_rows(tiny: bool = False) -> dict:
    """The PyTorch rows of ``bench/bench.py``: inference at 321 and 513, batch 1 (5 calls x 3 rounds), and a
    training step at 321, batch 2 (3 calls x 2 rounds); ``tiny``: the slim net at 33 and 65 (training 33),
    two calls, one round, no waiting for idle CPUs (what the tests run; no target is judged there).

    Returns ``{"skipped": "torch not installed ...", "target_met": None}`` without PyTorch; otherwise
    ``{"inference": peer_rows(...), "train": peer_train_rows(...), "target_met": ...}``, where
    ``target_met`` is whether every judged target was met (321: ratio >= 1.1; 513 and training: >= 1.0,
    i.e. still ahead), ``None`` if none was judged (``tiny``, or a run other processes disturbed).
    """
    if _torch_version() is None:
        return {"skipped": "torch not installed; it is optional: pip install torch to measure these rows",
                "target_met": None}
    if tiny:
        inference = peer_rows((33, 65), repeats=2, rounds=1, width=0.125, max_wait=0)
        train = peer_train_rows(33, batch=2, repeats=2, rounds=1, width=0.125, max_wait=0)
    else:
        inference = peer_rows((321, 513), repeats=5, rounds=3)
        train = peer_train_rows(321, batch=2, repeats=3, rounds=2)
    judged = [r["target_met"] for r in (inference, train) if r["target_met"] is not None]
    return {"inference": inference, "train": train, "target_met": all(judged) if judged else None}


def format_bench_rows(result: dict) -> str:
    """The lines ``bench/bench.py`` prints for a ``bench_rows`` result (one line when it was skipped)."""
    if "skipped" in result:
        return f"PyTorch side by side: skipped ({result['skipped']})"
    verdict = {True: "met", False: "NOT met", None: "not judged (slim net, or other processes were busy)"}
    targets = ", ".join(f"{size}: >= {ratio:g}" for size, ratio in TARGET_RATIOS.items())
    return "\n".join([format_rows(result["inference"]), format_rows(result["train"]),
                      f"PyTorch targets (ratio {targets}, training >= {TRAIN_TARGET_RATIO:g}): "
                      f"{verdict[result['target_met']]}"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--tiny", action="store_true", help="slim net (x0.125), 33x33 and 65x65 (training: 33x33), "
                                                       "one round, two repeats, no waiting")
    p.add_argument("--train", action="store_true", help="time a training step (batch --batch) instead of inference")
    p.add_argument("--sizes", default=None, help="comma-separated image sides (default 321,513; training 321)")
    p.add_argument("--batch", type=int, default=None, help="training batch (default 2); inference is batch 1")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="intra-op threads of both sides (default: all cores)")
    p.add_argument("--inter_op", type=int, default=None, help="TensorFlow's inter-op threads in our process")
    p.add_argument("--path", choices=PATHS, default="predictor", help="how ours runs (see the docstring)")
    p.add_argument("--width", type=float, default=None)
    p.add_argument("--max_wait", type=float, default=None,
                   help="seconds to wait for idle CPUs before each process (default 30, --tiny 0)")
    # the worker processes peer_rows starts
    p.add_argument("--worker", choices=("ours", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--scratch", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    default_sizes = ("33" if args.train else "33,65") if args.tiny else ("321" if args.train else "321,513")
    args.sizes = [int(s) for s in (args.sizes or default_sizes).split(",")]
    args.width = args.width or (0.125 if args.tiny else 1.0)
    args.repeats = args.repeats or (2 if args.tiny else 3 if args.train else 5)
    args.batch = args.batch or (2 if args.train else 1)
    if args.worker:
        if ROOT not in sys.path:
            sys.path.insert(0, ROOT)
        return _worker(args)
    rounds = args.rounds or (1 if args.tiny else 2 if args.train else 3)
    max_wait = args.max_wait if args.max_wait is not None else (0.0 if args.tiny else 30.0)
    if args.train:
        result = peer_train_rows(args.sizes[0], args.batch, args.repeats, args.threads, rounds=rounds,
                                 width=args.width, max_wait=max_wait)
    else:
        result = peer_rows(args.sizes, args.repeats, args.threads, rounds=rounds, width=args.width, path=args.path,
                           inter_op=args.inter_op, max_wait=max_wait)
    print(json.dumps(result, indent=1) if args.json else format_rows(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
