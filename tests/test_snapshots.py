"""The snapshot directory belongs to one live run: lock, run record, resume checks."""

import hashlib
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from deeplab_lfov.core.errors import DeepLabError
from deeplab_lfov.training.snapshots import SnapshotStore, compare_settings
from helpers import ROOT, SUBPROCESS_ENV, assert_one_line_error, make_dataset, run_cli, spawn_training, train_args, wait_for


def _args(root, list_path, **extra):
    return train_args(root, list_path, **{"--save_pred_every": "2", "--log_dir": root / "logs",
                                          "--learning_rate": "1e-3", **extra})


def _state(directory):
    """Every file of the directory with its size, mtime and content hash."""
    out = {}
    for dirpath, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[path] = (os.path.getsize(path), os.stat(path).st_mtime_ns, hashlib.sha1(f.read()).hexdigest())
    return out


@pytest.mark.slow  # > ~8 s on 2 cores; make test and CI run it
def test_a_second_run_on_the_same_directory_is_refused_and_a_killed_run_leaves_no_lock(tmp_path):
    list_path = make_dataset(str(tmp_path), 2)
    first = subprocess.Popen([sys.executable, "train.py"] + _args(tmp_path, list_path, **{
        "--num_steps": "100000", "--save_pred_every": "100000", "--print_every": "100000"}),
        cwd=ROOT, env=SUBPROCESS_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not os.path.exists(tmp_path / "snap" / "checkpoint"):  # the step-0 snapshot is complete
            assert first.poll() is None and time.time() < deadline, first.stdout.read() if first.poll() else "slow"
            time.sleep(0.05)
        before = _state(tmp_path / "snap")
        second = subprocess.run([sys.executable, "train.py"] + _args(tmp_path, list_path), cwd=ROOT,
                                env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=120)
        assert_one_line_error(second.returncode, second.stderr, str(tmp_path / "snap"), f"PID {first.pid}",
                              "in use by another training run")
        assert _state(tmp_path / "snap") == before  # the refused run changed no file
    finally:
        first.kill()
        first.wait(timeout=30)
    third = subprocess.run([sys.executable, "train.py"] + _args(tmp_path, list_path, **{"--num_steps": "1"}),
                           cwd=ROOT, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "Resuming from" in third.stdout and "model.ckpt-0" in third.stdout
    assert "resuming with --num_steps 1 (was 100000)" in third.stdout


def test_the_lock_is_per_directory_and_released_at_exit(tmp_path):
    with SnapshotStore(str(tmp_path / "a")):
        with pytest.raises(DeepLabError, match=rf"in use by another training run \(PID {os.getpid()} on "):
            SnapshotStore(str(tmp_path / "a")).acquire()
        with SnapshotStore(str(tmp_path / "b")):  # another directory: free
            pass
    with SnapshotStore(str(tmp_path / "a")):  # released
        pass
    with SnapshotStore(str(tmp_path / "a"), chief=False):  # workers other than the chief do not lock
        with SnapshotStore(str(tmp_path / "a"), chief=False):
            pass


def test_resume_prints_changed_settings_and_refuses_fixed_ones(tmp_path, capsys):
    list_path = make_dataset(str(tmp_path), 2)
    code, out, err = run_cli("train.py", _args(tmp_path, list_path), capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "snap" / "run.json").read_text())
    assert record["settings"]["learning_rate"] == 1e-3 and record["settings"]["input_size"] == [48, 48]
    assert record["versions"]["tensorflow"] and record["started"] and isinstance(record["command"], list)

    code, out, err = run_cli("train.py", _args(tmp_path, list_path, **{"--num_classes": "5"}), capsys)
    assert_one_line_error(code, err, "--num_classes 5 (was 21)")
    code, out, err = run_cli("train.py", _args(tmp_path, list_path, **{"--optimizer": "sgd"}), capsys)
    assert_one_line_error(code, err, "--optimizer sgd (was adam)")
    assert json.loads((tmp_path / "snap" / "run.json").read_text()) == record  # refused runs leave the record

    code, out, err = run_cli("train.py", _args(tmp_path, list_path, **{"--learning_rate": "0.0001",
                                                                       "--num_steps": "3"}), capsys)
    assert code == 0, err
    assert "resuming with --learning_rate 0.0001 (was 0.001)" in out
    assert re.search(r"from step 2 to 3", out)
    assert json.loads((tmp_path / "snap" / "run.json").read_text())["settings"]["learning_rate"] == 1e-4


def test_compare_settings_is_a_pure_function():
    changes, conflicts = compare_settings({"a": 1, "b": [1, 2], "c": "x"}, {"a": 2, "b": [1, 2], "c": "y", "d": 0},
                                          fixed=("c",))
    assert changes == ["--a 2 (was 1)"] and conflicts == ["--c y (was x)"]


def test_a_failed_save_removes_partial_files(tmp_path):
    store = SnapshotStore(str(tmp_path))
    (tmp_path / "model.ckpt-7_temp").mkdir()
    (tmp_path / "model.ckpt-7.data-00000-of-00001.tmp").write_text("x")
    (tmp_path / "model.ckpt-6.index").write_text("kept")
    store.remove_partial()
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt-6.index"]


@pytest.mark.slow  # ~30-60 s on 2 cores; still run in CI
def test_sigkill_after_a_snapshot_resumes_and_ends_at_the_same_step(tmp_path):
    list_path = make_dataset(str(tmp_path), 2)
    args = train_args(tmp_path, list_path, **{"--num_steps": "400", "--save_pred_every": "2",
                                               "--print_every": "50", "--save_num_images": "0"})
    proc = spawn_training(args)
    # The snapshot's files land first, then the 'checkpoint' index is switched to them.
    wait_for(lambda: (tf.train.latest_checkpoint(str(tmp_path / "snap")) or "").endswith("-2"), proc)
    proc.kill()
    proc.wait(timeout=30)
    latest = tf.train.latest_checkpoint(str(tmp_path / "snap"))
    killed_at = int(latest.rsplit("-", 1)[1])
    assert killed_at >= 2 and tf.train.load_checkpoint(latest)  # the index points at a whole snapshot
    # The resumed run goes a few steps further, not to 400: what it proves is where it starts and that it
    # ends normally (a shorter --num_steps is a change a resume accepts and reports).
    end = killed_at + 4
    args[args.index("--num_steps") + 1] = str(end)
    done = subprocess.run([sys.executable, "train.py"] + args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=SUBPROCESS_ENV)
    assert done.returncode == 0, done.stderr
    assert f"Resuming from {latest}" in done.stdout and f"from step {killed_at} to {end}" in done.stdout
    assert f"Training finished at step {end}" in done.stdout
    assert not [f for f in os.listdir(tmp_path / "snap") if "_temp" in f or f.endswith(".tmp")]


def test_failed_snapshot_write_leaves_no_partial_files(tmp_path, capsys, monkeypatch):
    """A save that dies half-way (as on a full disk) is a clear error, and its temp files are gone."""
    list_path = make_dataset(str(tmp_path), 2)
    real_save = tf.train.CheckpointManager.save

    def failing_save(self, checkpoint_number=None, **kw):
        if checkpoint_number == 2:
            os.makedirs(os.path.join(self.directory, "model.ckpt-2_temp"), exist_ok=True)
            raise OSError(28, "No space left on device")
        return real_save(self, checkpoint_number=checkpoint_number, **kw)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", failing_save)
    code, _, err = run_cli("train.py", train_args(tmp_path, list_path, **{"--num_steps": "4", "--save_pred_every": "2"}),
                           capsys)
    assert_one_line_error(code, err, "cannot write snapshot 2", "No space left on device", "model.ckpt-0")
    assert not [f for f in os.listdir(tmp_path / "snap") if "_temp" in f]
    assert tf.train.latest_checkpoint(str(tmp_path / "snap")).endswith("model.ckpt-0")


def test_the_lock_belongs_to_the_directory_the_run_started_with(tmp_path):
    import shutil
    directory = str(tmp_path / "snap")
    with SnapshotStore(directory) as first:
        first.attach(step=tf.Variable(0))
        assert first.save(1).endswith("model.ckpt-1")
        shutil.rmtree(directory)  # rm -rf of a live run's snapshot directory
        with SnapshotStore(directory) as second:  # a second run then locks the new directory ...
            second.attach(step=tf.Variable(0))
            with pytest.raises(DeepLabError, match="removed or replaced while this run was using it"):
                first.save(2)  # ... and the first run stops instead of writing into it
            assert second.save(5).endswith("model.ckpt-5")
            assert not [f for f in os.listdir(directory) if f.startswith("model.ckpt-2")]
            with pytest.raises(DeepLabError, match="removed or replaced"):
                first.write_record({"x": 1})
    with SnapshotStore(directory) as third:  # a directory replaced by another one: the same
        os.rename(directory, directory + ".moved")
        os.makedirs(directory)
        with open(os.path.join(directory, ".lock"), "w"):
            pass
        third.attach(step=tf.Variable(0))
        with pytest.raises(DeepLabError, match="removed or replaced"):
            third.save(1)


def test_removing_the_snapshot_directory_of_a_running_training_stops_it_with_one_line(tmp_path, capsys, monkeypatch):
    import shutil

    from deeplab_lfov.training import trainer
    from deeplab_lfov.training.callbacks import Callback

    class Remove(Callback):
        every = 1

        def on_step(self, state):
            if state.step == 1:
                shutil.rmtree(tmp_path / "snap")

    real_train = trainer.train
    monkeypatch.setattr(trainer, "train", lambda config, log=print, callbacks=(): real_train(config, log, [Remove()]))
    list_path = make_dataset(str(tmp_path), 2)
    args = train_args(tmp_path, list_path, **{"--num_steps": "4", "--save_pred_every": "2", "--log_dir":
                                              tmp_path / "logs", "--save_num_images": "0"})
    code, _, err = run_cli("train.py", args, capsys)
    assert_one_line_error(code, err, str(tmp_path / "snap"), "removed or replaced while this run was using it")
    assert not os.path.exists(tmp_path / "snap")  # not silently recreated


def _failing_setup(root, problem):
    """train.py flags (slim net, 2 steps) on a small dataset with one ``problem`` its up-front checks refuse, and
    what the error line says.  The snapshot folder, SNAPSHOT_DIR/logs and --save_dir are all new folders."""
    from PIL import Image
    list_path = make_dataset(str(root), 2)
    extra = {"--snapshot_dir": root / "runs" / "snap", "--save_dir": root / "runs" / "img"}
    if problem == "missing image":
        with open(list_path, "a") as f:
            f.write("/JPEGImages/missing.jpg /SegmentationClassAug/img_0.png\n")
        return train_args(root, list_path, **extra), "train.txt:3: "
    if problem == "label out of range":
        Image.fromarray(np.full((120, 160), 40, np.uint8), mode="L").save(root / "SegmentationClassAug" / "range.png")
        with open(list_path, "a") as f:
            f.write("/JPEGImages/img_1.jpg /SegmentationClassAug/range.png\n")
        return train_args(root, list_path, **extra), "train.txt:3: "
    if problem == "weights that do not load":  # found only by reading them, after the data check
        (root / "init.caffemodel").write_bytes(b"not a caffemodel")
        return train_args(root, list_path, **extra, **{"--restore_from": root / "init.caffemodel"}), "init.caffemodel"
    (root / "three.txt").write_text("background\ncat\ndog\n")
    if problem == "--classes and --num_classes":
        return train_args(root, list_path, **extra, **{"--classes": root / "three.txt", "--num_classes": "21"}), \
            "lists 3"
    # --classes and weights of another number of classes (their classifier kept: no --not_restore_last)
    from deeplab_lfov.model import build_net
    from deeplab_lfov.model.weights import save_model
    prefix = save_model(str(root / "weights" / "model.ckpt"), build_net("largefov", 21, width_multiplier=0.125))
    return train_args(root, list_path, **extra, **{"--classes": root / "three.txt", "--restore_from": prefix}), \
        "21 classes"


@pytest.mark.parametrize("problem", ["missing image", "label out of range", "--classes and --num_classes",
                                     "--classes and weights", "weights that do not load"])
def test_a_run_that_fails_its_checks_leaves_no_snapshot_dir_lock_or_logs(tmp_path, capsys, problem):
    args, needle = _failing_setup(tmp_path, problem)
    code, out, err = run_cli("train.py", args, capsys)
    assert code == 2 and needle in err and err.strip().splitlines()[-1].startswith("error: "), err
    assert "Traceback" not in err
    assert not os.path.exists(tmp_path / "runs")  # no snapshot folder, .lock, logs/ or --save_dir left behind
    if "classes" in problem:  # the classes are checked before any work: one line, and no list entry decoded
        assert_one_line_error(code, err, needle)
        assert "Checking" not in out

    (tmp_path / "runs" / "snap").mkdir(parents=True)  # a snapshot folder made beforehand stays, and stays empty
    code, out, err = run_cli("train.py", args, capsys)
    assert code == 2 and needle in err, err
    assert os.listdir(tmp_path / "runs") == ["snap"] and os.listdir(tmp_path / "runs" / "snap") == []


def test_a_failed_run_leaves_an_existing_snapshot_dir_as_it_was(tmp_path, capsys):
    args, needle = _failing_setup(tmp_path, "missing image")
    good_list = make_dataset(str(tmp_path), 2, name="good.txt")
    good = list(args)
    good[good.index("--data_list") + 1] = good_list
    code, out, err = run_cli("train.py", good, capsys)
    assert code == 0, err
    snap = tmp_path / "runs" / "snap"
    kept = {".lock", "checkpoint", "run.json", "classes.json", "logs"}
    assert kept <= set(os.listdir(snap)) and os.listdir(snap / "logs")  # a run that trained keeps all it wrote
    before = _state(tmp_path / "runs")

    code, out, err = run_cli("train.py", args, capsys)
    assert code == 2 and needle in err, err
    after = _state(tmp_path / "runs")
    lock = str(snap / ".lock")
    assert lock in after and after.pop(lock)  # the lock file stays (holding the last run's PID) ...
    before.pop(lock)
    assert after == before  # ... and nothing else was touched: snapshots, record, logs and figures as they were


def test_a_second_run_is_refused_at_once_while_the_first_checks_a_new_snapshot_dir(tmp_path, capsys, monkeypatch):
    """The first run locks a new snapshot directory before its checks: a second run started meanwhile is
    refused at once, changing nothing, and the first one then trains."""
    from deeplab_lfov.training import trainer
    real_initial_model = trainer._initial_model
    refused = []

    def initial_model_while_another_run_starts(config, resume_from, log):
        before = _state(config.snapshot_dir)
        assert set(before) == {os.path.join(config.snapshot_dir, ".lock")}  # only the lock (and empty logs/)
        with pytest.raises(DeepLabError, match="in use by another training run") as e:
            SnapshotStore(config.snapshot_dir).__enter__()
        refused.append(str(e.value))
        assert _state(config.snapshot_dir) == before
        return real_initial_model(config, resume_from, log)

    monkeypatch.setattr(trainer, "_initial_model", initial_model_while_another_run_starts)
    list_path = make_dataset(str(tmp_path), 2)
    code, _, err = run_cli("train.py", train_args(tmp_path, list_path), capsys)
    assert code == 0 and refused, err
    assert tf.train.latest_checkpoint(str(tmp_path / "snap")) and os.path.exists(tmp_path / "snap" / "run.json")


def test_a_run_that_fails_its_checks_takes_away_only_a_lock_file_it_created(tmp_path):
    first = SnapshotStore(str(tmp_path / "snap"))
    with first, pytest.raises(ValueError), first.checking():
        raise ValueError("a check failed")
    assert os.listdir(tmp_path / "snap") == []  # the new directory is as it was: empty
    with SnapshotStore(str(tmp_path / "snap")) as passed:  # a run that passed its checks keeps its lock file
        passed.acquire()  # holding it already: nothing to do (not "in use by" itself)
    again = SnapshotStore(str(tmp_path / "snap"))
    with again, pytest.raises(ValueError), again.checking():
        raise ValueError("a check failed")
    assert os.listdir(tmp_path / "snap") == [".lock"]  # it was there before this run: it stays


def test_acquire_locks_the_lock_file_at_the_path_when_the_one_it_opened_was_taken_away(tmp_path, monkeypatch):
    """A run that failed its checks may remove the lock file between another run's open and its lock: that
    run must not hold a lock on a file no longer in the directory (a third run would lock a new one)."""
    real_open = SnapshotStore._open_lock_file
    opened = []

    def open_then_taken_away(self, path):
        fd, created = real_open(self, path)
        if not opened:
            os.unlink(path)
        opened.append(created)
        return fd, created

    monkeypatch.setattr(SnapshotStore, "_open_lock_file", open_then_taken_away)
    with SnapshotStore(str(tmp_path / "snap")) as store:
        info = os.stat(tmp_path / "snap" / ".lock")
        assert store._lock_id == (info.st_dev, info.st_ino) and opened == [True, True]
        with pytest.raises(DeepLabError, match="in use by another training run"):
            SnapshotStore(str(tmp_path / "snap")).__enter__()


def test_a_lock_file_that_is_a_symbolic_link_is_refused_and_its_target_left_alone(tmp_path):
    (tmp_path / "snap").mkdir()
    (tmp_path / "important.txt").write_text("keep me")
    for target in (tmp_path / "important.txt", tmp_path / "nowhere"):  # a link to a file, a dangling link
        if os.path.lexists(tmp_path / "snap" / ".lock"):
            os.unlink(tmp_path / "snap" / ".lock")
        os.symlink(target, tmp_path / "snap" / ".lock")
        with pytest.raises(DeepLabError, match=r"lock file is a symbolic link; remove it"):
            SnapshotStore(str(tmp_path / "snap")).__enter__()
    assert (tmp_path / "important.txt").read_text() == "keep me" and not os.path.exists(tmp_path / "nowhere")
