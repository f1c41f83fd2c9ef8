"""The training loop behind ``train.py``: DeepLab's recipe with the classic port's bugs fixed.

* Loss: softmax cross-entropy over the pixels whose (shrunk) label is not ``ignore_label``,
  averaged over exactly those pixels, across all replicas; L2 weight decay on filters.
* Snapshots ``model.ckpt-STEP`` (weights, optimizer state, step) every ``save_pred_every``
  steps and at the end; TensorFlow writes them under temporary names and points the
  ``checkpoint`` index at a snapshot only once it is complete.  Re-running the same command
  resumes from the latest snapshot at its step.
* SIGINT/SIGTERM: the current step finishes, a snapshot is written, the run exits cleanly.
  A NaN/Inf loss stops the run at once, keeping the last good snapshot.
* Under a ``tf.distribute`` strategy the global batch is split over replicas, and the loss
  normalisation and gradient all-reduce give the update one device would compute.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import tempfile
import time
from typing import Callable, List, Optional, Tuple

import numpy as np
from PIL import Image

from ._tf import tf
from .colormap import decode_labels
from .errors import DeepLabError
from .image_reader import Entry, check_entries, read_list, shrink_labels, train_dataset
from .images import IMG_MEAN, save_png
from .model import DeepLabLargeFOV, compute_dtype_for
from .optim import Optimizer, caffe_lr_multipliers, learning_rate_schedule
from .weights import build_model, checkpoint_shapes, load_weights, widths_from_weights

__all__ = ["TrainConfig", "segmentation_loss_terms", "TrainStep", "make_train_step", "train", "check_writable", "preflight",
           "TrainingStopped"]


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run (the flags of ``train.py``)."""

    data_dir: str
    data_list: str
    snapshot_dir: str = "./snapshots/"
    save_dir: str = "./images/"
    log_dir: Optional[str] = None
    restore_from: Optional[str] = None
    not_restore_last: bool = False
    input_size: Tuple[int, int] = (321, 321)
    batch_size: int = 16
    num_steps: int = 20000
    learning_rate: float = 1e-4
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_policy: str = "fixed"
    lr_step: int = 2000
    lr_gamma: float = 0.1
    lr_power: float = 0.9
    num_classes: int = 21
    ignore_label: int = 255
    random_scale: bool = True
    random_mirror: bool = True
    random_seed: int = 1234
    width_multiplier: float = 1.0
    save_pred_every: int = 500
    save_num_images: int = 2
    max_to_keep: int = 5
    print_every: int = 1
    check_data: bool = True
    skip_bad: bool = False
    strategy: str = "default"
    precision: str = "fp32"


class TrainingStopped(DeepLabError):
    """Training stopped on a non-finite loss (the last good snapshot is kept)."""


def segmentation_loss_terms(logits: tf.Tensor, labels: tf.Tensor, num_classes: int,
                            ignore_label: int) -> Tuple[tf.Tensor, tf.Tensor]:
    """(sum of pixel losses, number of counted pixels) with labels shrunk to the logits grid.

    Pixels labelled ``ignore_label`` add nothing to either term, so the mean over them is the
    mean over valid pixels only (a batch of only ignore labels has zero loss and zero gradient).
    """
    labels = shrink_labels(labels, tf.shape(logits)[1:3])
    valid = tf.logical_and(tf.not_equal(labels, ignore_label), labels < num_classes)
    safe = tf.where(valid, labels, tf.zeros_like(labels))
    pixel_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    pixel_loss = tf.where(valid, pixel_loss, tf.zeros_like(pixel_loss))
    return tf.reduce_sum(pixel_loss), tf.reduce_sum(tf.cast(valid, tf.float32))


def check_writable(directory: str, flag: str) -> None:
    """Fail before training if ``directory`` cannot be created or written (leaves nothing behind)."""
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, f".write-test-{os.getpid()}")
        with open(probe, "wb") as f:
            f.write(b"0" * 4096)
            f.flush()
            os.fsync(f.fileno())
        os.remove(probe)
    except OSError as e:
        raise DeepLabError(f"{directory}: {flag} is not writable ({e.strerror or e})") from None


def preflight(entries: List[Entry], num_classes: int, ignore_label: int, skip_bad: bool,
              log: Callable[[str], None]) -> List[Entry]:
    """Check every list entry; report all problems at once. Returns the usable entries."""
    log(f"Checking {len(entries)} list entries ...")
    problems = check_entries(entries, num_classes, ignore_label)
    if not problems:
        return entries
    for _, problem in problems:
        log(f"{'skipped' if skip_bad else 'error'}: {problem}")
    if not skip_bad:
        raise DeepLabError(f"{len(problems)} of {len(entries)} entries of {entries[0].list_path} are "
                           f"unusable (listed above); fix them or pass --skip_bad to train without them")
    bad = {id(e) for e, _ in problems}
    kept = [e for e in entries if id(e) not in bad]
    if not kept:
        raise DeepLabError(f"{entries[0].list_path}: no usable entries left")
    log(f"Skipping {len(problems)} unusable entries; training on {len(kept)}.")
    return kept


def _figure(images: np.ndarray, labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Rows of image | ground truth | prediction, as one RGB uint8 array."""
    rows = []
    for image, label, pred in zip(images, labels, preds):
        rgb = np.clip(image + IMG_MEAN, 0, 255)[..., ::-1].astype(np.uint8)
        rows.append(np.concatenate([rgb, decode_labels(label), decode_labels(pred)], axis=1))
    return np.concatenate(rows, axis=0)


class _StopSignals:
    """Turns SIGINT/SIGTERM into a flag checked between steps (main thread only)."""

    def __init__(self):
        self.received: Optional[int] = None
        self._previous = {}

    def __enter__(self):
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            pass
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class TrainStep:
    """One compiled training step on a distributed batch; calling it returns the global loss.

    Each replica sums its pixel losses and divides by the number of valid pixels of *all*
    replicas; the gradients are then summed over replicas, so the update equals one device's on
    the global batch however the ignore pixels are spread.

    The step never hands a non-finite loss to the optimizer: such a step is skipped and recorded
    in ``bad_step``/``bad_loss`` (all later steps are skipped too), so the host need not read the
    loss after every step to keep the weights clean; it checks when it prints or snapshots.
    """

    def __init__(self, strategy: tf.distribute.Strategy, model: DeepLabLargeFOV, optimizer: Optimizer,
                 num_classes: int, ignore_label: int, *, jit_compile: bool = False):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.var_list = list(model.named_variables().values())
        self.scaled = model.compute_dtype == tf.float16  # float16 needs loss scaling; bfloat16 does not
        self.bad_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_step")
        self.bad_loss = tf.Variable(0.0, trainable=False, name="bad_loss")
        self._step = tf.function(self._distributed_step, jit_compile=jit_compile)

    def __call__(self, batch) -> tf.Tensor:
        return self._step(batch)

    def _replica_step(self, images, labels):
        with tf.GradientTape() as tape:
            logits = self.model(images, training=True)
            loss_sum, count = segmentation_loss_terms(logits, labels, self.num_classes, self.ignore_label)
            total = tf.distribute.get_replica_context().all_reduce("sum", count)
            loss = loss_sum / tf.maximum(total, 1.0)
            target = loss * self.optimizer.loss_scale if self.scaled else loss
        grads = tape.gradient(target, self.var_list)
        if self.scaled:
            grads = [g / self.optimizer.loss_scale for g in grads]
        return grads, loss

    def _distributed_step(self, batch):
        grads, loss = self.strategy.run(self._replica_step, args=batch)
        grads = [self.strategy.reduce("sum", g, axis=None) for g in grads]
        loss = self.strategy.reduce("sum", loss, axis=None)

        def update():
            if self.scaled:  # dynamic loss scaling: skip steps whose gradients overflowed
                self.optimizer.apply_if_finite(grads, self.var_list)
            else:
                self.optimizer.apply(grads, self.var_list)
            return tf.constant(True)

        def record():
            first = tf.equal(self.bad_step, 0)
            self.bad_step.assign(tf.where(first, self.optimizer.iterations + 1, self.bad_step))
            self.bad_loss.assign(tf.where(first, loss, self.bad_loss))
            return tf.constant(False)

        tf.cond(tf.logical_and(tf.math.is_finite(loss), tf.equal(self.bad_step, 0)), update, record)
        return loss


def make_train_step(strategy: tf.distribute.Strategy, model: DeepLabLargeFOV, optimizer: Optimizer,
                    num_classes: int, ignore_label: int, *, jit_compile: bool = False) -> TrainStep:
    """The compiled training step of ``model`` under ``strategy`` (see ``TrainStep``)."""
    return TrainStep(strategy, model, optimizer, num_classes, ignore_label, jit_compile=jit_compile)


def _make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise DeepLabError(f"--strategy: unknown strategy {name!r} (default, mirrored or multi_worker)")


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The chief (or worker 0 when the cluster names no chief) writes; others only compute."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and
                                    "chief" not in resolver.cluster_spec().as_dict())


def _build_model(config: TrainConfig, resume_from: Optional[str], log) -> DeepLabLargeFOV:
    if resume_from:
        widths, classes = widths_from_weights(checkpoint_shapes(resume_from))  # the index, not the data
        if classes != config.num_classes:
            raise DeepLabError(f"{resume_from}: snapshot has {classes} classes, --num_classes is "
                               f"{config.num_classes}; use another --snapshot_dir")
        return DeepLabLargeFOV(config.num_classes, widths=widths, seed=config.random_seed,
                               compute_dtype=compute_dtype_for(config.precision))
    if config.restore_from:
        log(f"Restoring weights from {config.restore_from}"
            f"{' (all but fc8)' if config.not_restore_last else ''}")
        return build_model(load_weights(config.restore_from), config.num_classes,
                           skip_last=config.not_restore_last, source=config.restore_from,
                           seed=config.random_seed, compute_dtype=compute_dtype_for(config.precision))
    log("No --restore_from: training from a random initialisation. For DeepLab's results start from "
        "the converted init.caffemodel (see README).")
    return DeepLabLargeFOV(config.num_classes, config.width_multiplier, seed=config.random_seed,
                           compute_dtype=compute_dtype_for(config.precision))


def train(config: TrainConfig, log: Callable[[str], None] = print) -> int:
    """Run (or resume) training; returns the step reached."""
    if min(config.input_size) < 1 or config.batch_size < 1 or config.num_steps < 0:
        raise DeepLabError("--input_size, --batch_size must be positive and --num_steps non-negative")
    strategy = _make_strategy(config.strategy)
    chief = _is_chief(strategy)
    log_dir = config.log_dir or os.path.join(config.snapshot_dir, "logs")
    if chief:
        for directory, flag in ((config.snapshot_dir, "--snapshot_dir"), (config.save_dir, "--save_dir"),
                                (log_dir, "--log_dir")):
            check_writable(directory, flag)
    entries = read_list(config.data_dir, config.data_list)
    if config.check_data:
        entries = preflight(entries, config.num_classes, config.ignore_label, config.skip_bad, log)

    latest = tf.train.latest_checkpoint(config.snapshot_dir)
    if latest:
        log(f"Resuming from {latest}" + (" (--restore_from applies to a new --snapshot_dir only)"
                                         if config.restore_from else ""))
    with strategy.scope():
        model = _build_model(config, latest, log)
        variables = model.named_variables()
        schedule = learning_rate_schedule(config.lr_policy, config.learning_rate, max(config.num_steps, 1),
                                          step_size=config.lr_step, gamma=config.lr_gamma,
                                          power=config.lr_power)
        optimizer = Optimizer(variables, config.optimizer, schedule, momentum=config.momentum,
                              weight_decay=config.weight_decay,
                              lr_mult=caffe_lr_multipliers(variables) if config.optimizer == "sgd" else None)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    manager = tf.train.CheckpointManager(checkpoint, config.snapshot_dir, max_to_keep=config.max_to_keep,
                                         checkpoint_name="model.ckpt") if chief else None
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
    step = int(optimizer.iterations.numpy())

    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise DeepLabError(f"--batch_size {config.batch_size} is not divisible by the {replicas} replicas")

    def dataset_fn(context: tf.distribute.InputContext):
        shard = entries[context.input_pipeline_id::context.num_input_pipelines] or entries
        return train_dataset(shard, config.input_size, context.get_per_replica_batch_size(config.batch_size),
                             num_classes=config.num_classes, ignore_label=config.ignore_label,
                             random_scale=config.random_scale, random_mirror=config.random_mirror,
                             seed=config.random_seed + 1000003 * step + 7919 * context.input_pipeline_id)

    dataset = strategy.distribute_datasets_from_function(dataset_fn)
    train_step = make_train_step(strategy, model, optimizer, config.num_classes, config.ignore_label)

    predict = tf.function(lambda x: model.predict_labels(x))
    writer = tf.summary.create_file_writer(log_dir) if chief else tf.summary.create_noop_writer()
    iterator = iter(dataset)
    preview = next(iter(train_dataset(entries[:max(config.save_num_images, 1)], config.input_size,
                                      max(config.save_num_images, 1), num_classes=config.num_classes,
                                      ignore_label=config.ignore_label, random_scale=False,
                                      random_mirror=False, seed=config.random_seed, shuffle=False,
                                      drop_remainder=False)))

    saved = {"path": latest}

    def snapshot(at: int):
        try:
            _write_snapshot(at)
        except (OSError, tf.errors.OpError) as e:  # disk full, folder removed, ...
            _remove_partial_snapshots(config.snapshot_dir)
            reason = getattr(e, "strerror", None) or str(e).strip().splitlines()[0]
            raise DeepLabError(f"{config.snapshot_dir}: cannot write snapshot {at} ({reason}); the last "
                               f"complete snapshot is {saved['path']}") from None

    def _write_snapshot(at: int):
        if chief:
            saved["path"] = manager.save(checkpoint_number=at)
        else:  # every worker saves, as tf.distribute asks; only the chief's copy is kept
            scratch = tempfile.mkdtemp(prefix="deeplab-worker-")
            checkpoint.write(os.path.join(scratch, "model.ckpt"))
            shutil.rmtree(scratch, ignore_errors=True)
            saved["path"] = os.path.join(config.snapshot_dir, f"model.ckpt-{at}")
        if chief and config.save_num_images > 0:  # figures are the chief's alone
            images, labels = preview
            figure = _figure(images.numpy(), labels.numpy(), predict(images).numpy())
            save_png(os.path.join(config.save_dir, f"train_{at}.png"), Image.fromarray(figure))
            with writer.as_default(step=at):
                tf.summary.image("data|mask|pred", figure[None], step=at)
    if step == 0 and not latest:
        snapshot(0)
    log(f"Training {model.count_params()} parameters on {len(entries)} images, {replicas} replica(s), "
        f"from step {step} to {config.num_steps}.")
    stop = None
    started, started_step = time.time(), step
    last_time, last_step = started, step
    with _StopSignals() as signals:
        while step < config.num_steps:
            loss_t = train_step(next(iterator))
            step += 1
            report = step % config.print_every == 0 or step == config.num_steps
            save = step % config.save_pred_every == 0 or step == config.num_steps
            if not (report or save or signals.received is not None):
                continue  # no host round trip between progress lines, snapshots and stops
            loss = float(loss_t)
            bad_step = int(train_step.bad_step.numpy())
            if bad_step:
                raise TrainingStopped(
                    f"loss is {float(train_step.bad_loss.numpy())} at step {bad_step}: training stopped "
                    f"(that update was not applied); the last good snapshot is {saved['path']} "
                    f"(lower --learning_rate?)")
            if report:
                now = time.time()
                per_step = (now - last_time) / max(step - last_step, 1)
                last_time, last_step = now, step
                rate = (step - started_step) / max(now - started, 1e-9)
                eta = (config.num_steps - step) / max(rate, 1e-9)
                log(f"step {step:d} \t loss = {loss:.3f}, ({per_step:.3f} sec/step, "
                    f"{config.batch_size / max(per_step, 1e-9):.1f} images/s, ETA {_hms(eta)})")
                if chief:
                    with writer.as_default(step=step):
                        tf.summary.scalar("loss", loss)
                        tf.summary.scalar("learning_rate", optimizer.learning_rate())
            if save:
                snapshot(step)
            if signals.received is not None:
                stop = signals.received
                break
    if stop is not None:
        if not (saved["path"] or "").endswith(f"-{step}"):
            snapshot(step)
        log(f"Stopped by signal {stop} at step {step}; snapshot {saved['path']}. "
            f"Run the same command to resume.")
    else:
        log(f"Training finished at step {step}; snapshot {saved['path']}")
    writer.flush()
    return step


def _remove_partial_snapshots(directory: str) -> None:
    """Delete what an interrupted save left: TensorFlow's ``*_temp*`` shards and our ``.tmp`` files."""
    for name in os.listdir(directory) if os.path.isdir(directory) else []:
        if "_temp" in name or name.endswith(".tmp"):
            path = os.path.join(directory, name)
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
