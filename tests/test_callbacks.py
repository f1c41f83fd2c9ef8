"""The training loop calls each callback at exactly the steps it asked for, with the step's loss."""

import math
import os

import pytest

from conftest import make_dataset
from deeplab_lfov.callbacks import Callback, StepState, run_loop
from deeplab_lfov.settings import TrainConfig
from deeplab_lfov.training import train


class Recorder(Callback):
    def __init__(self, every, at_end=False):
        self.every, self.at_end = every, at_end
        self.events = []

    def on_train_begin(self, state):
        self.events.append(("begin", state.step))

    def on_step(self, state):
        assert math.isfinite(state.loss)
        self.events.append(("step", state.step))

    def on_train_end(self, state):
        self.events.append(("end", state.step))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cb")
    return root, make_dataset(str(root), 2)


def _config(root, list_path, num_steps, **kw):
    return TrainConfig(data_dir=str(root), data_list=list_path, snapshot_dir=str(root / "snap"),
                       save_dir=str(root / "img"), restore_from=None, input_size=(48, 48), batch_size=2,
                       num_steps=num_steps, width_multiplier=0.125, save_pred_every=4, print_every=100, **kw)


def test_a_callback_added_to_a_training_run_is_called_at_exactly_its_steps(data):
    root, list_path = data
    every3, at_end = Recorder(3), Recorder(4, at_end=True)
    assert train(_config(root, list_path, 10), log=lambda s: None, callbacks=[every3, at_end]) == 10
    assert every3.events == [("begin", 0), ("step", 3), ("step", 6), ("step", 9), ("end", 10)]
    assert at_end.events == [("begin", 0), ("step", 4), ("step", 8), ("step", 10), ("end", 10)]
    # Resuming: the callback sees the steps of the new run only.
    resumed = Recorder(5)
    assert train(_config(root, list_path, 16), log=lambda s: None, callbacks=[resumed]) == 16
    assert resumed.events == [("begin", 10), ("step", 15), ("end", 16)]
    snapshots = sorted(int(f[len("model.ckpt-"):-len(".index")]) for f in os.listdir(root / "snap")
                       if f.endswith(".index"))
    assert snapshots == [0, 4, 8, 10, 12, 16][-5:]  # the built-in snapshot callback: every 4, at the end, keep 5


def test_run_loop_reads_the_loss_only_at_due_steps():
    reads = []

    class Loss:
        def __init__(self, value):
            self.value = value

        def __float__(self):
            reads.append(self.value)
            return float(self.value)

    counter = iter(range(1, 100))
    recorder = Recorder(4)
    state = run_loop(lambda batches: Loss(next(batches)), counter, StepState(step=0, num_steps=9), [recorder])
    assert state.step == 9 and reads == [4, 8]  # no host read between due steps
    assert recorder.events == [("begin", 0), ("step", 4), ("step", 8), ("end", 9)]
