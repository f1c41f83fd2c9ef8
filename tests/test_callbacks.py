"""The training loop calls each callback at exactly the steps it asked for, with the step's loss; validation keeps
the best snapshot through kills and full disks; figures and the best fail in one line."""

import math
import os
import re
import signal

import numpy as np
import pytest
import tensorflow as tf

from deeplab_lfov.settings import TrainConfig
from deeplab_lfov.training.callbacks import Callback, StepState, run_loop
from deeplab_lfov.training.trainer import train
from helpers import make_dataset, spawn_training, train_args


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


def test_validation_logs_mean_iou_to_tensorboard_and_keeps_the_best(data):
    import json

    root, list_path = data
    root = root / "val_run"
    root.mkdir()
    lines = []
    config = TrainConfig(data_dir=str(data[0]), data_list=list_path, snapshot_dir=str(root / "snap"),
                         save_dir=str(root / "img"), restore_from=None, input_size=(48, 48), batch_size=2,
                         num_steps=6, width_multiplier=0.125, save_pred_every=100, print_every=100,
                         learning_rate=3e-3, val_list=list_path, val_every=2, save_num_images=0)
    train(config, log=lines.append)
    logged = {int(s): float(m) for s, m in (re.match(r"validation at step (\d+): mean IoU ([0-9.]+)", line).groups()
                                             for line in lines if line.startswith("validation"))}
    assert sorted(logged) == [2, 4, 6]
    best = json.loads((root / "snap" / "best" / "best.json").read_text())
    # the best kept is the best logged (logged values are rounded to 4 decimals: equal ones may differ below)
    assert best["step"] in logged and best["mean_iou"] == pytest.approx(max(logged.values()), abs=1e-4)
    assert logged[best["step"]] == max(logged.values())
    from deeplab_lfov.model.weights import load_weights
    assert load_weights(str(root / "snap" / "best"))["fc8_voc12/b"].shape == (21,)
    events = [e for e in os.listdir(root / "snap" / "logs")]
    values = {}
    for event in tf.compat.v1.train.summary_iterator(str(root / "snap" / "logs" / events[0])):
        for value in event.summary.value:
            if value.tag == "val/mean_iou":
                values[event.step] = float(tf.make_ndarray(value.tensor))
    assert values == pytest.approx(logged, abs=1e-4)
    # Resuming keeps the best so far: the resumed run starts from it, and replaces it only if it does better.
    train(TrainConfig(**{**config.as_record(), "input_size": (48, 48), "scale_range": (0.75, 1.25), "num_steps": 7,
                         "learning_rate": 1e-9}), log=lines.append)
    after = json.loads((root / "snap" / "best" / "best.json").read_text())
    line = next(x for x in reversed(lines) if x.startswith("validation at step 7"))
    assert after["mean_iou"] >= best["mean_iou"] and (after == best or after["step"] == 7)
    assert f"at step {after['step']})" in line


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.slow  # > ~8 s on 2 cores; make test and CI run it
def test_sigterm_or_sigint_writes_a_snapshot_at_the_current_step(tmp_path, sig):
    list_path = make_dataset(str(tmp_path), 2)
    args = train_args(tmp_path, list_path, **{"--num_steps": "100000", "--save_pred_every": "100000",
                                               "--print_every": "1", "--save_num_images": "0"})
    proc = spawn_training(args)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("step 3 "):
            proc.send_signal(sig)
            break
    rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, rest
    step = int(re.search(rf"Stopped by signal {int(sig)} at step (\d+)", rest).group(1))
    assert step >= 3
    assert tf.train.latest_checkpoint(str(tmp_path / "snap")).endswith(f"model.ckpt-{step}")


def _validation(best_dir, log=None):
    from deeplab_lfov.model.weights import build_model, load_weights
    from deeplab_lfov.training.callbacks import Validation
    from helpers import FIXTURES
    model = build_model(load_weights(os.path.join(FIXTURES, "slim.caffemodel")))
    return Validation(2, model, [], 21, 255, str(best_dir), None, log or (lambda line: None))


def _best_folder(folder, step, miou, complete=True):
    import json

    from deeplab_lfov.model.weights import save_weights
    save_weights(str(folder / "model.ckpt"), {"x": np.zeros(1, np.float32)})
    if complete:
        (folder / "best.json").write_text(json.dumps({"step": step, "mean_iou": miou}))


def test_a_killed_save_of_the_best_is_recovered_by_the_next_run_never_a_worse_one(tmp_path):
    import json
    snap = tmp_path / "snap"
    # What a kill between the two renames of the old _save_best left: no best/, the new best and the old one.
    for name, step, miou in ((".best-k1", 4, 0.6), (".best-k1.old", 2, 0.4)):
        (snap / name).mkdir(parents=True)
        _best_folder(snap / name, step, miou)
    (snap / ".best-k2").mkdir()
    _best_folder(snap / ".best-k2", 6, 0.9, complete=False)  # killed before its best.json: incomplete
    lines = []
    validation = _validation(snap / "best", lines.append)
    validation.on_train_begin(StepState(step=6, num_steps=10, resumed=True))
    assert validation.best == {"step": 4, "mean_iou": 0.6}
    assert json.loads((snap / "best" / "best.json").read_text())["step"] == 4
    assert sorted(os.listdir(snap)) == ["best"] and "Recovered the best snapshot (step 4" in lines[0]
    # A complete staging folder better than best/ (killed after writing, before publishing) wins too; a worse one
    # is removed.
    for name, step, miou in ((".best-k3", 8, 0.7), (".best-k4", 9, 0.5)):
        (snap / name).mkdir()
        _best_folder(snap / name, step, miou)
    validation.on_train_begin(StepState(step=9, num_steps=10, resumed=True))
    assert validation.best["step"] == 8 and sorted(os.listdir(snap)) == ["best"]


def test_the_best_is_published_in_one_step_with_the_usual_permissions(tmp_path, monkeypatch):
    import json
    import stat

    from deeplab_lfov.core import publish as publishing
    snap = tmp_path / "snap"
    snap.mkdir()
    validation = _validation(snap / "best")
    validation.on_train_begin(StepState(step=0, num_steps=10))
    validation._save_best({"step": 2, "mean_iou": 0.3})
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(snap / "best").st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    # The swap is one step: at no moment is there no best/ (watched at every rename the swap makes).
    seen = []
    real_exchange = publishing._exchange

    def watched(a, b):
        seen.append(os.path.isdir(snap / "best"))
        done = real_exchange(a, b)
        seen.append(os.path.isdir(snap / "best"))
        return done

    monkeypatch.setattr(publishing, "_exchange", watched)
    validation._save_best({"step": 4, "mean_iou": 0.5})
    assert seen == [True, True] and json.loads((snap / "best" / "best.json").read_text())["step"] == 4
    assert sorted(os.listdir(snap)) == ["best"]


def test_a_full_disk_while_writing_the_best_or_a_figure_is_one_line_and_keeps_what_was_there(tmp_path, capsys,
                                                                                              monkeypatch):
    import json

    from deeplab_lfov.model import weights
    from helpers import assert_one_line_error, run_cli
    list_path = make_dataset(str(tmp_path), 2)
    args = train_args(tmp_path, list_path, **{"--num_steps": "4", "--save_pred_every": "2", "--val_list": list_path,
                                              "--val_every": "2", "--save_num_images": "0"})
    real_save = weights.save_model
    calls = []

    def full_on_second(prefix, model, classes=None):
        calls.append(prefix)
        if len(calls) == 2:
            os.makedirs(os.path.dirname(prefix), exist_ok=True)
            open(prefix + ".data-00000-of-00001", "wb").close()
            raise OSError(28, "No space left on device")
        return real_save(prefix, model, classes=classes)

    monkeypatch.setattr(weights, "save_model", full_on_second)
    monkeypatch.setattr("deeplab_lfov.evaluation.metrics.scores", lambda confusion: {"mean_iou": 0.1 * len(calls)})
    code, _, err = run_cli("train.py", args, capsys)
    assert_one_line_error(code, err, str(tmp_path / "snap" / "best"), "cannot write the best snapshot of step 4",
                          "No space left on device", "the previous best (step 2")
    assert json.loads((tmp_path / "snap" / "best" / "best.json").read_text())["step"] == 2
    assert not [n for n in os.listdir(tmp_path / "snap") if n.startswith(".best-")]
    assert tf.train.latest_checkpoint(str(tmp_path / "snap")).endswith("model.ckpt-4")

    def no_space(path, image):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("deeplab_lfov.training.callbacks.save_png", no_space)
    args = train_args(tmp_path / "fig", make_dataset(str(tmp_path / "fig"), 2), **{"--num_steps": "2"})
    code, _, err = run_cli("train.py", args, capsys)
    assert_one_line_error(code, err, str(tmp_path / "fig" / "img" / "train_0.png"), "No space left on device",
                          "model.ckpt-0")
    assert tf.train.latest_checkpoint(str(tmp_path / "fig" / "snap")).endswith("model.ckpt-0")
