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
import os
import signal
import time
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
from PIL import Image

from ._tf import tf
from .colormap import decode_labels
from .images import IMG_MEAN, save_png
from .snapshots import SnapshotStore

__all__ = ["StepState", "Callback", "run_loop", "ProgressLogger", "TensorBoardScalars", "Snapshots", "Figures",
           "training_figure"]


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
    """Run ``train_step`` on ``batches`` until ``state.num_steps`` or a stop signal.

    Between due steps nothing is read back from the device.  ``check(state)`` runs at every due
    step before the callbacks (it raises to stop training, e.g. on a non-finite loss).
    """
    for callback in callbacks:
        callback.on_train_begin(state)
    with _StopSignals() as signals:
        while state.step < state.num_steps:
            loss = train_step(next(batches))
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


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


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
                 f"{self.batch_size / max(per_step, 1e-9):.1f} images/s, ETA {_hms(eta)})")


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


def training_figure(images: np.ndarray, labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Rows of image | ground truth | prediction, as one RGB uint8 array."""
    rows = []
    for image, label, pred in zip(images, labels, preds):
        rgb = np.clip(image + IMG_MEAN, 0, 255)[..., ::-1].astype(np.uint8)
        rows.append(np.concatenate([rgb, decode_labels(label), decode_labels(pred)], axis=1))
    return np.concatenate(rows, axis=0)


class Figures(Callback):
    """``SAVE_DIR/train_STEP.png`` (image | ground truth | prediction) and the same in TensorBoard,
    whenever a snapshot is written."""

    at_end = True

    def __init__(self, every: int, save_dir: str, preview, predict: Callable, writer):
        self.every, self.save_dir, self.preview, self.predict, self.writer = every, save_dir, preview, predict, writer

    def _draw(self, step: int) -> None:
        images, labels = self.preview
        figure = training_figure(images.numpy(), labels.numpy(), self.predict(images).numpy())
        save_png(os.path.join(self.save_dir, f"train_{step}.png"), Image.fromarray(figure))
        with self.writer.as_default(step=step):
            tf.summary.image("data|mask|pred", figure[None], step=step)

    def on_train_begin(self, state: StepState) -> None:
        if not state.resumed:
            self._draw(state.step)

    def on_step(self, state: StepState) -> None:
        self._draw(state.step)

    def on_train_end(self, state: StepState) -> None:
        if state.stop_signal is not None and state.step % self.every and state.step != state.num_steps:
            self._draw(state.step)
