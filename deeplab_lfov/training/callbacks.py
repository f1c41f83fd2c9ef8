"""The training loop and its periodic jobs, as callbacks called at step events.

``run_loop`` calls the compiled training step and, only at the steps some callback asked for,
reads the loss from the device (one host round trip), checks that training is still healthy and
calls the callbacks that are due.  Each job is a ``Callback``: the progress line, TensorBoard
scalars, figures and snapshots are the built-in ones; a new periodic job (validation, say) is a new
callback passed to ``training.train``, with no edit of the loop.

A callback says when it is due with ``every`` (steps that are multiples of it) and ``at_end`` (the
last step too); ``on_train_begin`` and ``on_train_end`` bracket the run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import tempfile
import time
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
from PIL import Image

from ..core._tf import tf
from ..core.errors import DeepLabError
from ..core.progress import hms
from ..core.publish import publish, usual_permissions
from ..data.colormap import decode_labels
from ..data.images import IMG_MEAN, save_png
from .snapshots import SnapshotStore, check_owned_path

__all__ = ["StepState", "Callback", "run_loop", "ProgressLogger", "TensorBoardScalars", "Snapshots", "Figures",
           "Validation", "training_figure"]


@dataclasses.dataclass
class StepState:
    """What the loop knows, passed to every callback.

    ``loss`` is the global loss of the step just done (read only at due steps); ``resumed`` says
    whether the run continues an earlier one; ``stop_signal`` is set when SIGINT/SIGTERM ended it.
    """

    step: int
    num_steps: int
    resumed: bool = False
    loss: Optional[float] = None
    started: float = dataclasses.field(default_factory=time.time)
    start_step: int = 0
    last_snapshot: Optional[str] = None
    stop_signal: Optional[int] = None

    def __post_init__(self):
        self.start_step = self.step


class Callback:
    """A job of the training loop.  Override the hooks you need.

    Attributes:
      every: ``on_step`` is called at every step that is a multiple of it (0: never).
      at_end: ``on_step`` is also called at the last step of the run.
    """

    every: int = 0
    at_end: bool = False

    def due(self, step: int, final: bool) -> bool:
        return bool(self.every and step % self.every == 0) or (final and self.at_end)

    def on_train_begin(self, state: StepState) -> None:
        """Before the first step (``state.step`` is the step the run starts from)."""

    def on_step(self, state: StepState) -> None:
        """After a due step; ``state.loss`` holds its loss."""

    def on_train_end(self, state: StepState) -> None:
        """After the last step, or after the step at which a signal stopped the run."""


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


def run_loop(train_step: Callable, batches: Iterator, state: StepState, callbacks: Sequence[Callback],
             check: Callable[[StepState], None] = lambda state: None) -> StepState:
    """Run ``train_step(batches)`` (one update, taking the batches it needs from the iterator) until
    ``state.num_steps`` or a stop signal.

    Between due steps nothing is read back from the device.  ``check(state)`` runs at every due
    step before the callbacks (it raises to stop training, e.g. on a non-finite loss).
    """
    for callback in callbacks:
        callback.on_train_begin(state)
    with _StopSignals() as signals:
        while state.step < state.num_steps:
            loss = train_step(batches)
            state.step += 1
            final = state.step == state.num_steps
            due = [c for c in callbacks if c.due(state.step, final)]
            if not due and signals.received is None:
                continue
            state.loss = float(loss)
            check(state)
            for callback in due:
                callback.on_step(state)
            if signals.received is not None:
                state.stop_signal = signals.received
                break
    for callback in callbacks:
        callback.on_train_end(state)
    return state


class ProgressLogger(Callback):
    """``step N \\t loss = X, (Y sec/step, Z images/s, ETA h:mm:ss)``, the classic line plus rate and ETA."""

    at_end = True

    def __init__(self, every: int, batch_size: int, log: Callable[[str], None]):
        self.every, self.batch_size, self.log = every, batch_size, log

    def on_train_begin(self, state: StepState) -> None:
        self._last_time, self._last_step = time.time(), state.step

    def on_step(self, state: StepState) -> None:
        now = time.time()
        per_step = (now - self._last_time) / max(state.step - self._last_step, 1)
        self._last_time, self._last_step = now, state.step
        rate = (state.step - state.start_step) / max(now - state.started, 1e-9)
        eta = (state.num_steps - state.step) / max(rate, 1e-9)
        self.log(f"step {state.step:d} \t loss = {state.loss:.3f}, ({per_step:.3f} sec/step, "
                 f"{self.batch_size / max(per_step, 1e-9):.1f} images/s, ETA {hms(eta)})")


class TensorBoardScalars(Callback):
    """The loss and the learning rate, as TensorBoard scalars."""

    at_end = True

    def __init__(self, every: int, writer, learning_rate: Callable[[], tf.Tensor]):
        self.every, self.writer, self.learning_rate = every, writer, learning_rate

    def on_step(self, state: StepState) -> None:
        with self.writer.as_default(step=state.step):
            tf.summary.scalar("loss", state.loss)
            tf.summary.scalar("learning_rate", self.learning_rate())

    def on_train_end(self, state: StepState) -> None:
        self.writer.flush()


class Snapshots(Callback):
    """``model.ckpt-STEP`` every ``every`` steps, at step 0 of a new run, at the end and on a stop."""

    at_end = True

    def __init__(self, every: int, store: SnapshotStore):
        self.every, self.store = every, store

    def _save(self, state: StepState) -> None:
        state.last_snapshot = self.store.save(state.step)

    def on_train_begin(self, state: StepState) -> None:
        state.last_snapshot = self.store.last_path
        if not state.resumed:
            self._save(state)

    def on_step(self, state: StepState) -> None:
        self._save(state)

    def on_train_end(self, state: StepState) -> None:
        if state.stop_signal is not None and not (state.last_snapshot or "").endswith(f"-{state.step}"):
            self._save(state)


def training_figure(images: np.ndarray, labels: np.ndarray, preds: np.ndarray,
                    colors: Optional[np.ndarray] = None) -> np.ndarray:
    """Rows of image | ground truth | prediction, as one RGB uint8 array (classes in ``colors``)."""
    rows = []
    for image, label, pred in zip(images, labels, preds):
        rgb = np.clip(image + IMG_MEAN, 0, 255)[..., ::-1].astype(np.uint8)
        rows.append(np.concatenate([rgb, decode_labels(label, colors), decode_labels(pred, colors)], axis=1))
    return np.concatenate(rows, axis=0)


class Figures(Callback):
    """``SAVE_DIR/train_STEP.png`` (image | ground truth | prediction) and the same in TensorBoard,
    whenever a snapshot is written."""

    at_end = True

    def __init__(self, every: int, save_dir: str, preview, predict: Callable, writer,
                 colors: Optional[np.ndarray] = None):
        self.every, self.save_dir, self.preview, self.predict, self.writer = every, save_dir, preview, predict, writer
        self.colors = colors

    def _draw(self, state: StepState) -> None:
        """The figure of ``state.step``; a write that fails (a full disk) stops the run with one error line."""
        step = state.step
        images, labels = self.preview
        figure = training_figure(images.numpy(), labels.numpy(), self.predict(images).numpy(), self.colors)
        path = os.path.join(self.save_dir, f"train_{step}.png")
        try:
            save_png(path, Image.fromarray(figure))
        except OSError as e:
            raise DeepLabError(f"{path}: cannot write the training figure of step {step} ({e.strerror or e}); the "
                               f"last snapshot, {state.last_snapshot}, is complete: free some space and run the "
                               f"same command to resume (--save_num_images 0 draws no figures)") from None
        with self.writer.as_default(step=step):
            tf.summary.image("data|mask|pred", figure[None], step=step)

    def on_train_begin(self, state: StepState) -> None:
        if not state.resumed:
            self._draw(state)

    def on_step(self, state: StepState) -> None:
        self._draw(state)

    def on_train_end(self, state: StepState) -> None:
        if state.stop_signal is not None and state.step % self.every and state.step != state.num_steps:
            self._draw(state)


class Validation(Callback):
    """Mean IoU on a validation list at every ``every`` steps (and the last), in the log and in
    TensorBoard (``val/mean_iou``); the best snapshot so far is kept in ``best_dir`` with its step and
    mean IoU in ``best.json``.  A resumed run starts from the best recorded there.

    A new best is written into a staging folder ``.best-*`` beside ``best_dir`` (weights, then
    ``best.json`` last: a staging folder with a readable ``best.json`` is complete) and published in one
    atomic step (``core.publish``), so a kill at any moment leaves ``best_dir`` whole, old or new.  At the
    start of a run the best of ``best_dir`` and the complete staging folders an interrupted run left is
    kept as ``best_dir``, and the other staging folders are removed.  A write that fails (a full disk)
    stops the run with one error line and leaves the previous best as it was.
    """

    at_end = True
    STAGING_PREFIX = ".best-"

    def __init__(self, every: int, model, entries, num_classes: int, ignore_label: int, best_dir: str, writer,
                 log: Callable[[str], None], classes=None):
        from ..evaluation.predict import Predictor
        self.every, self.model, self.entries, self.classes = every, model, entries, classes
        self.num_classes, self.ignore_label = num_classes, ignore_label
        self.best_dir, self.writer, self.log = best_dir, writer, log
        self.predictor = Predictor(model)
        self.best: Optional[dict] = None

    @property
    def _parent(self) -> str:
        return os.path.dirname(os.path.abspath(self.best_dir))

    def on_train_begin(self, state: StepState) -> None:
        self.best = self._recover_best()

    @staticmethod
    def _complete(folder: str) -> Optional[dict]:
        """The ``best.json`` of a complete best snapshot folder, else None."""
        try:
            with open(os.path.join(folder, "best.json")) as f:
                record = json.load(f)
            float(record["mean_iou"]), int(record["step"])
        except (OSError, ValueError, TypeError, KeyError):
            return None
        return record if os.path.exists(os.path.join(folder, "model.ckpt.index")) else None

    def _recover_best(self) -> Optional[dict]:
        """The best so far: ``best_dir``'s, or that of a complete staging folder a kill left if it is better
        (moved to ``best_dir``); other staging folders are removed."""
        try:
            staged = [os.path.join(self._parent, n) for n in sorted(os.listdir(self._parent))
                      if n.startswith(self.STAGING_PREFIX)]
        except OSError:
            staged = []
        best, winner = self._complete(self.best_dir), self.best_dir
        for folder in staged:
            record = self._complete(folder)
            if record is not None and (best is None or record["mean_iou"] > best["mean_iou"]):
                best, winner = record, folder
        leftovers = [folder for folder in staged if folder != winner]
        if winner != self.best_dir:
            check_owned_path(self._parent)
            old = publish(winner, self.best_dir)
            self.log(f"Recovered the best snapshot (step {best['step']}, mean IoU {best['mean_iou']:.4f}) that an "
                     f"interrupted run left in {winner}")
            if old:  # the version it replaced
                leftovers.append(old)
        for folder in leftovers:
            shutil.rmtree(folder, ignore_errors=True)
        return best

    def on_step(self, state: StepState) -> None:
        from ..evaluation.evaluator import evaluate
        from ..evaluation.metrics import scores
        confusion = evaluate(self.predictor, self.entries, num_classes=self.num_classes,
                             ignore_label=self.ignore_label, log=lambda line: None)["plain"]
        miou = scores(confusion)["mean_iou"]
        with self.writer.as_default(step=state.step):
            tf.summary.scalar("val/mean_iou", miou)
        if self.best is None or miou > self.best["mean_iou"]:
            self._save_best({"step": state.step, "mean_iou": miou})
        self.log(f"validation at step {state.step}: mean IoU {miou:.4f} on {len(self.entries)} images "
                 f"(best {self.best['mean_iou']:.4f} at step {self.best['step']})")

    def _save_best(self, record: dict) -> None:
        """Weights and best.json into a fresh folder, published in place of the old best in one step."""
        from ..model.weights import save_model
        check_owned_path(self._parent)  # never recreate a snapshot directory that was removed
        staged = None
        try:
            staged = tempfile.mkdtemp(prefix=self.STAGING_PREFIX, dir=self._parent)
            save_model(os.path.join(staged, "model.ckpt"), self.model, classes=self.classes)
            with open(os.path.join(staged, "best.json"), "w") as f:  # last: the folder is complete with it
                json.dump(record, f)
            usual_permissions(staged)  # mkdtemp's folders are 0700
            old = publish(staged, self.best_dir)
            staged = old  # now the replaced version, removed below
            self.best = record
        except (OSError, tf.errors.OpError) as e:  # a full disk, a folder removed
            reason = getattr(e, "strerror", None) or str(getattr(e, "message", "") or e).strip().splitlines()[0]
            kept = (f"the previous best (step {self.best['step']}, mean IoU {self.best['mean_iou']:.4f}) is kept"
                    if self.best else "there is no earlier best")
            raise DeepLabError(f"{self.best_dir}: cannot write the best snapshot of step {record['step']} (mean IoU "
                               f"{record['mean_iou']:.4f}): {reason}; {kept}") from None
        finally:
            if staged:
                shutil.rmtree(staged, ignore_errors=True)
