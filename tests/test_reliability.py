"""Bad data, crashes and signals: nothing is lost, every problem is reported."""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import ROOT, SUBPROCESS_ENV, assert_one_line_error, make_dataset, run_cli


@pytest.fixture
def broken_list(tmp_path):
    """Six good entries, then five defects of different kinds (list lines 7-11)."""
    list_path = make_dataset(str(tmp_path), 6)
    seg = tmp_path / "SegmentationClassAug"
    jpg = tmp_path / "JPEGImages"
    (jpg / "corrupt.jpg").write_bytes(open(jpg / "img_0.jpg", "rb").read()[:300])
    Image.fromarray((np.zeros((120, 160, 3)) + [128, 0, 0]).astype(np.uint8)).save(seg / "rgb.png")
    Image.fromarray(np.full((120, 160), 40, np.uint8), mode="L").save(seg / "range.png")
    Image.fromarray(np.zeros((100, 100), np.uint8), mode="L").save(seg / "small.png")
    with open(list_path, "a") as f:
        f.write("/JPEGImages/missing.jpg /SegmentationClassAug/img_0.png\n")
        f.write("/JPEGImages/corrupt.jpg /SegmentationClassAug/img_0.png\n")
        f.write("/JPEGImages/img_1.jpg /SegmentationClassAug/rgb.png\n")
        f.write("/JPEGImages/img_2.jpg /SegmentationClassAug/range.png\n")
        f.write("/JPEGImages/img_3.jpg /SegmentationClassAug/small.png\n")
    return tmp_path, list_path


def _train_args(root, list_path, **extra):
    args = {"--data_dir": root, "--data_list": list_path, "--snapshot_dir": root / "snap",
            "--save_dir": root / "img", "--input_size": "48,48", "--batch_size": "2", "--num_steps": "2",
            "--width_multiplier": "0.125", "--save_pred_every": "1"}
    args.update(extra)
    return [str(x) for kv in args.items() for x in kv]


def test_five_defects_give_five_lines_and_exit_2(broken_list, capsys):
    root, list_path = broken_list
    code, out, err = run_cli("train.py", _train_args(root, list_path), capsys)
    reported = [line for line in out.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(reported) == 5, out
    expect = {7: "missing.jpg: image not found", 8: "corrupt.jpg: cannot decode image",
              9: "rgb.png: label is an RGB colour image", 10: "range.png: label values 40 outside 0..20",
              11: "small.png: label size 100x100 differs from image size 160x120"}
    for line, (number, text) in zip(reported, expect.items()):
        assert f"train.txt:{number}: " in line and text in line, line
    assert "--skip_bad" in err and "Traceback" not in err
    assert not os.path.exists(root / "snap" / "checkpoint")  # training never started

    code, out, err = run_cli("util/check_data.py", ["--data_dir", root, "--data_list", list_path], capsys)
    assert code == 2 and len([l for l in err.splitlines() if re.match(r"error: .*train.txt:\d+: ", l)]) == 5


def test_skip_bad_trains_on_the_rest(broken_list, capsys):
    root, list_path = broken_list
    code, out, err = run_cli("train.py", _train_args(root, list_path) + ["--skip_bad"], capsys)
    assert code == 0, err
    assert "Skipping 5 unusable entries; training on 6." in out
    assert len([l for l in out.splitlines() if l.startswith("skipped: ")]) == 5
    assert tf.train.latest_checkpoint(str(root / "snap")).endswith("model.ckpt-2")


def test_empty_list_and_unwritable_snapshot_dir(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    code, _, err = run_cli("train.py", _train_args(tmp_path, tmp_path / "empty.txt"), capsys)
    assert_one_line_error(code, err, "empty.txt", "empty")

    list_path = make_dataset(str(tmp_path), 1)
    (tmp_path / "a_file").write_text("x")
    code, _, err = run_cli("train.py", _train_args(tmp_path, list_path, **{"--snapshot_dir": tmp_path / "a_file" / "s"}),
                           capsys)
    assert_one_line_error(code, err, "a_file/s", "--snapshot_dir is not writable")


def test_nan_loss_stops_with_the_step_and_keeps_the_last_snapshot(tmp_path, capsys):
    list_path = make_dataset(str(tmp_path), 2)
    args = _train_args(tmp_path, list_path, **{"--learning_rate": "1e30", "--num_steps": "20",
                                               "--save_pred_every": "100"})
    code, out, err = run_cli("train.py", args, capsys)
    assert_one_line_error(code, err)
    match = re.search(r"loss is (nan|inf) at step (\d+): training stopped[^;]*; the last good snapshot is (\S+)", err)
    assert match, err
    assert match.group(3).endswith("model.ckpt-0")
    assert tf.train.latest_checkpoint(str(tmp_path / "snap")).endswith("model.ckpt-0")


def _spawn_training(args):
    return subprocess.Popen([sys.executable, "train.py"] + args, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=SUBPROCESS_ENV)


def _wait_for(predicate, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.stdout.read()}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("timed out")


def test_sigkill_after_a_snapshot_resumes_and_ends_at_the_same_step(tmp_path):
    list_path = make_dataset(str(tmp_path), 2)
    args = _train_args(tmp_path, list_path, **{"--num_steps": "400", "--save_pred_every": "2",
                                               "--print_every": "50", "--save_num_images": "0"})
    proc = _spawn_training(args)
    # The snapshot's files land first, then the 'checkpoint' index is switched to them.
    _wait_for(lambda: (tf.train.latest_checkpoint(str(tmp_path / "snap")) or "").endswith("-2"), proc)
    proc.kill()
    proc.wait(timeout=30)
    latest = tf.train.latest_checkpoint(str(tmp_path / "snap"))
    killed_at = int(latest.rsplit("-", 1)[1])
    assert killed_at >= 2 and tf.train.load_checkpoint(latest)  # the index points at a whole snapshot
    done = subprocess.run([sys.executable, "train.py"] + args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=SUBPROCESS_ENV)
    assert done.returncode == 0, done.stderr
    assert f"Resuming from {latest}" in done.stdout and f"from step {killed_at} to 400" in done.stdout
    assert "Training finished at step 400" in done.stdout
    assert not [f for f in os.listdir(tmp_path / "snap") if "_temp" in f or f.endswith(".tmp")]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_writes_a_snapshot_at_the_current_step(tmp_path, sig):
    list_path = make_dataset(str(tmp_path), 2)
    args = _train_args(tmp_path, list_path, **{"--num_steps": "100000", "--save_pred_every": "100000",
                                               "--print_every": "1", "--save_num_images": "0"})
    proc = _spawn_training(args)
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


def test_image_bombs_are_refused(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from deeplab_lfov.errors import DeepLabError
    from deeplab_lfov.images import read_image
    path = tmp_path / "bomb.png"
    PILImage.new("RGB", (400, 300)).save(path)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 10_000)  # Pillow's limit, scaled down for the test
    with pytest.raises(DeepLabError, match="bomb.png: refused, too many pixels"):
        read_image(str(path))


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
    code, _, err = run_cli("train.py", _train_args(tmp_path, list_path, **{"--num_steps": "4", "--save_pred_every": "2"}),
                           capsys)
    assert_one_line_error(code, err, "cannot write snapshot 2", "No space left on device", "model.ckpt-0")
    assert not [f for f in os.listdir(tmp_path / "snap") if "_temp" in f]
    assert tf.train.latest_checkpoint(str(tmp_path / "snap")).endswith("model.ckpt-0")


def test_png_writes_leave_nothing_behind_when_the_disk_is_full(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from deeplab_lfov.colormap import save_mask

    def full_disk(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PILImage.Image, "save", full_disk)
    with pytest.raises(OSError):
        save_mask(str(tmp_path / "mask.png"), np.zeros((4, 4), np.uint8))
    assert os.listdir(tmp_path) == []
