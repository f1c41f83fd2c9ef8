"""What ``train.py`` runs: DeepLab's recipe with the classic port's bugs fixed, as named steps.

* Loss: softmax cross-entropy over the pixels whose (shrunk) label is not ``ignore_label``,
  averaged over exactly those pixels, across all replicas; L2 weight decay on filters.
* ``train`` is a short sequence of steps: lock the snapshot directory, every check (the settings
  against the run record, writable folders, the weights' classes, the data), build model and
  optimizer (resuming from the latest snapshot), only then write the run record, build the
  distributed dataset, then ``callbacks.run_loop`` with the periodic jobs as callbacks.  A run that
  fails a check takes away the lock file it created and leaves no ``logs/`` (``cli.run`` removes the
  folders it left empty), and changes nothing in an existing snapshot directory but its lock file's
  holder line (and ``data_problems.txt``, the full report of a long list of bad entries).
* ``TrainStep`` is one compiled update under a ``tf.distribute`` strategy: the global batch is
  split over replicas, and the loss normalisation and gradient all-reduce give the update one
  device would compute; a non-finite loss is never applied.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Iterator, List, Optional, Sequence, Tuple

from ..core._tf import tf
from ..core.constants import DEFAULT_MODEL, DEFAULT_RESTORE_FROM
from ..core.errors import DeepLabError
from ..core.files import check_writable, write_text_atomic
from ..data.checks import check_data_dir, usable_entries
from ..data.reader import Entry, read_list, shrink_labels, train_dataset
from ..data.statistics import label_statistics, median_frequency_weights, read_class_weights
from ..model.largefov import DeepLabLargeFOV
from ..model.ops import compute_dtype_for
from ..model.weights import (
    CLASSES_FILE,
    build_model,
    check_classifier_classes,
    checkpoint_shapes,
    classes_to_json,
    load_weights,
    peek_num_classes,
    resolve_model,
    weights_record,
    widths_from_weights,
)
from .callbacks import Callback, Figures, ProgressLogger, Snapshots, StepState, TensorBoardScalars, Validation, run_loop
from .optim import Optimizer, caffe_lr_multipliers, learning_rate_schedule
from .snapshots import FIXED_BY_SNAPSHOT, SnapshotStore, compare_settings, run_record

if TYPE_CHECKING:  # the settings sit above training: only their type is named here
    from ..settings import TrainConfig

__all__ = ["segmentation_loss_terms", "TrainStep", "train", "TrainingStopped", "make_strategy",
           "is_chief"]



class TrainingStopped(DeepLabError):
    """Training stopped on a non-finite loss (the last good snapshot is kept)."""


def segmentation_loss_terms(logits: tf.Tensor, labels: tf.Tensor, num_classes: int, ignore_label: int,
                            class_weights: Optional[tf.Tensor] = None) -> Tuple[tf.Tensor, tf.Tensor]:
    """(weighted sum of pixel losses, weighted count of pixels) with labels shrunk to the logits grid.

    Pixels labelled ``ignore_label`` add nothing to either term, so the ratio is the mean over
    valid pixels only (a batch of only ignore labels has zero loss and zero gradient).  With
    ``class_weights`` (one per class) each pixel counts with its class's weight in both terms.
    """
    labels = shrink_labels(labels, tf.shape(logits)[1:3])
    valid = tf.logical_and(tf.not_equal(labels, ignore_label), labels < num_classes)
    safe = tf.where(valid, labels, tf.zeros_like(labels))
    pixel_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    pixel_loss = tf.where(valid, pixel_loss, tf.zeros_like(pixel_loss))
    weight = tf.cast(valid, tf.float32)
    if class_weights is not None:
        weight = weight * tf.gather(class_weights, safe)
    return tf.reduce_sum(pixel_loss * weight), tf.reduce_sum(weight)


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
                 num_classes: int, ignore_label: int, *, jit_compile: bool = False, iter_size: int = 1,
                 class_weights: Optional[Sequence[float]] = None):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.iter_size = iter_size
        self.class_weights = None if class_weights is None else tf.constant(class_weights, tf.float32)
        # Frozen variables (DeepLab-v2's BatchNorm statistics and scales) take no update.
        self.var_list = list(model.named_variables(trainable_only=True).values())
        self.scaled = model.compute_dtype == tf.float16  # float16 needs loss scaling; bfloat16 does not
        self.bad_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_step")
        self.bad_loss = tf.Variable(0.0, trainable=False, name="bad_loss")
        self._step = tf.function(self._distributed_step, jit_compile=jit_compile)
        if iter_size > 1:  # Caffe's iter_size: gradients of N batches summed into one update
            self._sum = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.var_list]
            self._count = tf.Variable(0.0, trainable=False)
            self._loss = tf.Variable(0.0, trainable=False)
            self._accumulate = tf.function(self._accumulate_batch, jit_compile=jit_compile)
            self._apply = tf.function(self._apply_accumulated, jit_compile=jit_compile)

    def __call__(self, batch) -> tf.Tensor:
        """One update on one batch (``iter_size`` 1)."""
        return self._step(batch)

    def run(self, batches: Iterator) -> tf.Tensor:
        """One update on the next ``iter_size`` batches of ``batches``; returns the update's loss.

        With ``iter_size`` N each batch is a separate compiled call, so only one batch's activations
        exist at a time; the update equals one on a batch N times larger.
        """
        if self.iter_size == 1:
            return self._step(next(batches))
        for _ in range(self.iter_size):
            self._accumulate(next(batches))
        return self._apply()

    def _replica_step(self, images, labels):
        """Gradients of this batch's loss, normalised over the counted pixels of all replicas."""
        with tf.GradientTape() as tape:
            # One output, or MSC's four (fused, 1, 0.75, 0.5): DeepLab-v2 sums their losses, each the
            # mean over its own valid pixels (labels shrunk to each output's grid).
            outputs = self.model.loss_logits(images, training=True) if getattr(self.model, "msc", False) \
                else [self.model(images, training=True)]
            terms = [segmentation_loss_terms(logits, labels, self.num_classes, self.ignore_label, self.class_weights)
                     for logits in outputs]
            counts = tf.distribute.get_replica_context().all_reduce("sum", tf.stack([c for _, c in terms]))
            loss = tf.add_n([s / tf.maximum(counts[i], 1.0) for i, (s, _) in enumerate(terms)])
            total = counts[0]
            target = loss * self.optimizer.loss_scale if self.scaled else loss
        grads = tape.gradient(target, self.var_list)
        if self.scaled:
            grads = [g / self.optimizer.loss_scale for g in grads]
        return grads, loss, total

    def _reduced(self, batch):
        grads, loss, total = self.strategy.run(self._replica_step, args=batch)
        grads = [self.strategy.reduce("sum", g, axis=None) for g in grads]
        loss = self.strategy.reduce("sum", loss, axis=None)
        total = self.strategy.reduce("mean", total, axis=None)  # the same on every replica
        return grads, loss, total

    def _distributed_step(self, batch):
        grads, loss, _ = self._reduced(batch)
        return self._update(grads, loss)

    def _accumulate_batch(self, batch):
        # A batch's normalised gradient weighted by its pixel count: summed over the N batches and
        # divided by their total count, it is the gradient of the loss over all N batches at once.
        grads, loss, total = self._reduced(batch)
        for acc, g in zip(self._sum, grads):
            acc.assign_add(g * total)
        self._count.assign_add(total)
        self._loss.assign_add(loss * total)

    def _apply_accumulated(self):
        total = tf.maximum(self._count, 1.0)
        grads = [acc / total for acc in self._sum]
        loss = self._loss / total
        loss = self._update(grads, loss)
        for acc in self._sum:
            acc.assign(tf.zeros_like(acc))
        self._count.assign(0.0)
        self._loss.assign(0.0)
        return loss

    def _update(self, grads, loss):
        """Apply ``grads`` unless the loss is not finite (then record the step and apply nothing more)."""
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
        return tf.identity(loss)

    def raise_if_stopped(self, state: StepState) -> None:
        """Raise ``TrainingStopped`` if a step since the last check had a non-finite loss."""
        bad_step = int(self.bad_step.numpy())
        if bad_step:
            raise TrainingStopped(
                f"loss is {float(self.bad_loss.numpy())} at step {bad_step}: training stopped (that update was "
                f"not applied); the last good snapshot is {state.last_snapshot} (lower --learning_rate?)")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``--strategy``: default (one device), mirrored (this machine's GPUs) or multi_worker (TF_CONFIG)."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The chief (or worker 0 when the cluster names no chief) writes; others only compute."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and
                                    "chief" not in resolver.cluster_spec().as_dict())


def _check_settings_against_record(config: TrainConfig, store: SnapshotStore, log) -> None:
    """On resume: print each changed setting; refuse the ones a snapshot fixes."""
    previous = store.previous_record()
    if not store.latest or not previous or not isinstance(previous.get("settings"), dict):
        return
    for fixed in ("model", "msc"):  # not given: the snapshot's (a different value given is a conflict)
        if getattr(config, fixed) is None and previous["settings"].get(fixed) is not None:
            setattr(config, fixed, previous["settings"][fixed])
    changes, conflicts = compare_settings(previous["settings"], config.as_record(), FIXED_BY_SNAPSHOT)
    if conflicts:
        raise DeepLabError(f"{store.directory}: its snapshots cannot continue with {'; '.join(conflicts)}: "
                           f"use the earlier value or another --snapshot_dir")
    for change in changes:
        log(f"resuming with {change}")


def _training_entries(config: TrainConfig, entries: List[Entry], store: SnapshotStore, log) -> List[Entry]:
    report = os.path.join(config.snapshot_dir, "data_problems.txt") if store.chief else None
    return usable_entries(entries, config.data_dir, config.num_classes, config.ignore_label,
                          check=not config.skip_check, skip_bad=config.skip_bad, log=log, report_path=report)


def _check_replicas(config: TrainConfig, strategy: tf.distribute.Strategy) -> int:
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise DeepLabError(f"--batch_size {config.batch_size} is not divisible by the {replicas} replicas")
    return replicas


def _write_run_record(config: TrainConfig, store: SnapshotStore, class_weights: Optional[List[float]]) -> None:
    record = run_record(config.as_record())
    if class_weights is not None:
        record["class_weight_values"] = class_weights
    store.write_record(record)
    if store.chief:  # the classes travel with the snapshots: evaluation and inference read them from here
        write_text_atomic(os.path.join(store.directory, CLASSES_FILE),
                          classes_to_json(config.classes_for(config.num_classes)))


def _weights_to_restore(config: TrainConfig) -> Optional[str]:
    """``--restore_from`` (or ``--weights_path``), or None: none given, or the default one, which does not exist."""
    weights = config.weights
    if weights == DEFAULT_RESTORE_FROM and not (os.path.exists(weights) or os.path.exists(weights + ".index")):
        return None
    return weights


def _classes_hint(config: TrainConfig) -> str:
    """What to do when ``--restore_from``'s classifier has another number of classes, in the flags' words."""
    given = f"--classes {config.classes} lists {config.num_classes}" if config.classes else \
        f"--num_classes is {config.num_classes}"
    return f" ({given}; --not_restore_last trains a new classifier for another number of classes)"


def _check_weights_classes(config: TrainConfig, resume_from: Optional[str]) -> None:
    """Before any work: the weights a new run restores whole must have ``--num_classes`` classes.

    A TensorFlow checkpoint's index says so without reading a tensor; a .caffemodel or classic pickle
    has to be read for it, so ``build_model`` checks those after the data check (still before a new
    snapshot directory is locked).
    """
    weights = _weights_to_restore(config)
    if resume_from or not weights or config.not_restore_last:
        return
    check_classifier_classes(peek_num_classes(weights), config.num_classes, weights, _classes_hint(config))


def _initial_model(config: TrainConfig, resume_from: Optional[str], log):
    """The net to train: the snapshot's on resume, else ``--restore_from``'s (its family, widths and record;
    ``--model``/``--msc`` where given), else a random one of ``--model`` (LargeFOV by default)."""
    from ..model import build_net
    net_kwargs = dict(seed=config.random_seed, compute_dtype=compute_dtype_for(config.precision))
    if resume_from:
        log(f"Resuming from {resume_from}" + (" (--restore_from applies to a new --snapshot_dir only)"
                                              if config.restore_from != DEFAULT_RESTORE_FROM else ""))
        shapes = checkpoint_shapes(resume_from)  # the index, not the data
        name, msc = resolve_model(shapes, model=config.model, msc=config.msc, record=weights_record(resume_from),
                                  source=resume_from)
        widths, classes = widths_from_weights(shapes)
        if classes != config.num_classes:
            raise DeepLabError(f"{resume_from}: snapshot has {classes} classes, --num_classes is "
                               f"{config.num_classes}; use another --snapshot_dir")
        return build_net(name, config.num_classes, widths=widths, msc=msc, **net_kwargs)
    weights = _weights_to_restore(config)
    if config.weights and not weights:
        log(f"No {config.weights} (the default --restore_from): training from a random initialisation. For "
            f"DeepLab's results start from the converted init.caffemodel (see README).")
    if weights:
        log(f"Restoring weights from {weights}{' (all but the classifier)' if config.not_restore_last else ''}")
        return build_model(load_weights(weights), config.num_classes, skip_last=config.not_restore_last,
                           source=weights, model=config.model, msc=config.msc, record=weights_record(weights),
                           classes_hint=_classes_hint(config), **net_kwargs)
    if not config.weights:
        log("No --restore_from: training from a random initialisation. For DeepLab's results start from "
            "the converted init.caffemodel (see README).")
    if (config.model or DEFAULT_MODEL) == "resnet101":
        log("Note: ResNet-101's batch norms are frozen, as DeepLab-v2 trains it; from random weights they "
            "normalise nothing and the activations grow through its 33 residual blocks (losses of millions, "
            "then NaN). Start it from the released init.caffemodel (--restore_from init.caffemodel "
            "--not_restore_last).")
    return build_net(config.model or DEFAULT_MODEL, config.num_classes, width_multiplier=config.width_multiplier,
                     msc=config.msc, **net_kwargs)


def _optimizer(config: TrainConfig, model) -> Optimizer:
    variables = model.named_variables(trainable_only=True)
    schedule = learning_rate_schedule(config.lr_policy, config.learning_rate, max(config.num_steps, 1),
                                      step_size=config.lr_step, gamma=config.lr_gamma, power=config.lr_power)
    return Optimizer(variables, config.optimizer, schedule, momentum=config.momentum,
                     weight_decay=config.weight_decay,
                     lr_mult=caffe_lr_multipliers(variables, model.classifier_layers)
                     if config.optimizer == "sgd" else None)


def _distributed_batches(config: TrainConfig, strategy: tf.distribute.Strategy, entries: Sequence[Entry],
                         step: int):
    """Each input pipeline reads its own shard; the seed moves with the step so a resume sees new crops."""
    def dataset_fn(context: tf.distribute.InputContext):
        shard = entries[context.input_pipeline_id::context.num_input_pipelines] or entries
        return train_dataset(shard, config.input_size, context.get_per_replica_batch_size(config.batch_size),
                             num_classes=config.num_classes, ignore_label=config.ignore_label,
                             random_scale=config.random_scale, random_mirror=config.random_mirror,
                             seed=config.random_seed + 1000003 * step + 7919 * context.input_pipeline_id,
                             scale_range=config.scale_range)
    return iter(strategy.distribute_datasets_from_function(dataset_fn))


def _preview(config: TrainConfig, entries: Sequence[Entry]):
    """The first ``save_num_images`` pairs, uncropped by randomness, for the training figures."""
    count = max(config.save_num_images, 1)
    return next(iter(train_dataset(entries[:count], config.input_size, count, num_classes=config.num_classes,
                                   ignore_label=config.ignore_label, random_scale=False, random_mirror=False,
                                   seed=config.random_seed, shuffle=False, drop_remainder=False)))


def _validation_entries(config: TrainConfig, log) -> List[Entry]:
    entries = read_list(config.data_dir, config.val_list, config.val_label_dir)[:config.val_num_images]
    return usable_entries(entries, config.data_dir, config.num_classes, config.ignore_label,
                          check=not config.skip_check, log=log, hint="fix them or remove them from --val_list")


def _class_weights(config: TrainConfig, entries: Sequence[Entry], store: SnapshotStore, log) -> Optional[List[float]]:
    """The ``--class_weights``: read from a file, or median-frequency balanced over the training labels
    (computed once: a resumed run takes them from the run record)."""
    if not config.class_weights:
        return None
    names = config.class_list.names_for(config.num_classes)
    if config.class_weights != "balanced":
        weights = read_class_weights(config.class_weights, names)
    else:
        previous = store.previous_record() or {}
        weights = previous.get("class_weight_values") if store.latest and (
            previous.get("settings", {}).get("class_weights") == "balanced") else None
        if weights is None:
            log(f"Counting the classes of {len(entries):,} training labels for --class_weights balanced ...")
            stats = label_statistics([e.label for e in entries], config.num_classes, config.ignore_label)
            weights = median_frequency_weights(stats)
    log("Class weights: " + ", ".join(f"{n} {w:.3g}" for n, w in zip(names, weights)))
    return weights


def _default_callbacks(config: TrainConfig, chief: bool, store: SnapshotStore, model: DeepLabLargeFOV,
                       optimizer: Optimizer, entries: Sequence[Entry], val_entries: Sequence[Entry],
                       log) -> List[Callback]:
    callbacks: List[Callback] = [ProgressLogger(config.print_every, config.batch_size * config.iter_size, log),
                                 Snapshots(config.save_pred_every, store)]
    if chief:
        writer = tf.summary.create_file_writer(config.logs)
        callbacks.append(TensorBoardScalars(config.print_every, writer, optimizer.learning_rate))
        if config.save_num_images > 0:
            predict = tf.function(lambda x: model.predict_labels(x))
            callbacks.append(Figures(config.save_pred_every, config.save_dir, _preview(config, entries), predict,
                                     writer, config.class_list.colors))
        if val_entries:
            callbacks.append(Validation(config.val_every or config.save_pred_every, model, val_entries,
                                        config.num_classes, config.ignore_label,
                                        os.path.join(config.snapshot_dir, "best"), writer, log,
                                        classes=config.class_list))
    return callbacks


def train(config: TrainConfig, log: Callable[[str], None] = print, callbacks: Sequence[Callback] = ()) -> int:
    """Run (or resume) training; returns the step reached.  ``callbacks`` run after the built-in ones.

    The snapshot directory is locked first (a live run there refuses this one at once); every check
    (settings, folders, the weights' classes, each list entry, the weights and the model) comes before
    anything is written there, and a run that fails one takes away the lock file it created
    (``SnapshotStore.checking``), so a new snapshot directory is left as it was.
    """
    tf.random.set_seed(config.random_seed)  # dropout's masks: the same run twice gives the same snapshots
    strategy = make_strategy(config.strategy)
    chief = is_chief(strategy)
    listed = read_list(config.data_dir, config.data_list, config.label_dir)
    check_data_dir(config.data_dir, listed)  # before anything is written
    with SnapshotStore(config.snapshot_dir, chief=chief, max_to_keep=config.max_to_keep) as store:
        with store.checking():  # a failed check leaves a new snapshot directory as it was
            _check_settings_against_record(config, store, log)
            replicas = _check_replicas(config, strategy)
            resume_from = store.last_path
            if chief:  # created if missing: cli.run removes the ones a failed run leaves empty
                for directory, flag in ((config.snapshot_dir, "--snapshot_dir"), (config.save_dir, "--save_dir"),
                                        (config.logs, "--log_dir")):
                    check_writable(directory, flag)
            _check_weights_classes(config, resume_from)
            entries = _training_entries(config, listed, store, log)
            val_entries = _validation_entries(config, log) if config.val_list and chief else []
            class_weights = _class_weights(config, entries, store, log)
            with strategy.scope():
                model = _initial_model(config, resume_from, log)
                optimizer = _optimizer(config, model)
            config.model, config.msc = model.model_name, model.msc  # what the run record keeps
            store.attach(model=model, optimizer=optimizer)  # on resume: the snapshot must fit the model
        _write_run_record(config, store, class_weights)
        step = int(optimizer.iterations.numpy())
        batches = _distributed_batches(config, strategy, entries, step)
        train_step = TrainStep(strategy, model, optimizer, config.num_classes, config.ignore_label,
                               iter_size=config.iter_size, class_weights=class_weights)
        jobs = _default_callbacks(config, chief, store, model, optimizer, entries, val_entries, log) + list(callbacks)
        state = StepState(step=step, num_steps=config.num_steps, resumed=resume_from is not None)
        log(f"Training {model.count_params()} parameters on {len(entries)} images, {replicas} replica(s), "
            f"from step {step} to {config.num_steps}.")
        run_loop(train_step.run, batches, state, jobs, check=train_step.raise_if_stopped)
    if state.stop_signal is not None:
        log(f"Stopped by signal {state.stop_signal} at step {state.step}; snapshot {state.last_snapshot}. "
            f"Run the same command to resume.")
    else:
        log(f"Training finished at step {state.step}; snapshot {state.last_snapshot}")
    return state.step
