"""Deployment under hostile and unlucky conditions: a decompression bomb and fuzzed encoded images sent to the
served model, a full disk during an export, exports killed half-way, two exports at once."""

import hashlib
import os
import signal
import struct
import subprocess
import sys
import time
import zlib

import pytest

from helpers import FIXTURES, ROOT, SUBPROCESS_ENV, assert_one_line_error, run_cli

CAFFEMODEL = os.path.join(FIXTURES, "slim.caffemodel")


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit grey PNG of ``width`` x ``height`` black pixels: 12 KB for 10000 x 10000."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    packer = zlib.compressobj(9)
    row = b"\0" * ((width + 7) // 8 + 1)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


# A model server's process: TensorFlow alone, 3 GB of address space.  It answers a normal request, the bomb, a
# batch over the limit, then every fuzzed encoded image of a folder, then the normal request again.
SERVER = r"""
import io, os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
import numpy as np, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
encoded, serve = loaded.signatures["segment_encoded"], loaded.signatures["serving_default"]
normal = tf.io.encode_png(tf.constant(np.random.RandomState(0).randint(0, 255, (45, 61, 3), np.uint8))).numpy()
def labels_shape():
    return tuple(tf.io.decode_png(encoded(image_bytes=tf.constant([normal]))["labels_png_bytes"][0]).shape)
print("before", labels_shape(), flush=True)
for name, call in (("bomb", lambda: encoded(image_bytes=tf.constant([open(sys.argv[2], "rb").read()]))),
                   ("batch", lambda: serve(images=tf.zeros([1, 5000, 5001, 3], tf.uint8)))):
    try:
        call()
        print(name, "ACCEPTED", flush=True)
    except tf.errors.InvalidArgumentError as e:
        print(name, "refused:", " ".join(e.message.split())[:400], flush=True)
answers = {"answered": 0, "refused": 0}
for case in sorted(os.listdir(sys.argv[3])):
    data = open(os.path.join(sys.argv[3], case), "rb").read()
    try:
        png = encoded(image_bytes=tf.constant([data]))["labels_png_bytes"][0]
        tf.io.decode_png(png)
        answers["answered"] += 1
    except tf.errors.InvalidArgumentError:
        answers["refused"] += 1
    except Exception as e:
        print("fuzz", case, type(e).__name__, " ".join(str(e).split())[:300], flush=True)
print("answers", answers["answered"], answers["refused"], flush=True)
print("after", labels_shape(), flush=True)
"""


def encoded_cases(folder, n: int, seed: int = 0) -> None:
    """``n`` encoded images for ``segment_encoded``: tests/fuzz.py's image seeds and mutations (flipped,
    truncated, inserted bytes, PNG headers declaring huge sizes), and JPEG and BMP headers declaring huge sizes."""
    import io
    import random

    import numpy as np
    from fuzz import _image_case
    from PIL import Image
    rng = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        kind = rng.randrange(6)
        if kind == 0:  # a JPEG or BMP whose header declares up to 60000 x 60000
            rgb = np.random.RandomState(i).randint(0, 255, (rng.randrange(1, 40), rng.randrange(1, 40), 3), np.uint8)
            out = io.BytesIO()
            fmt = rng.choice(["JPEG", "BMP"])
            Image.fromarray(rgb).save(out, format=fmt)
            data = bytearray(out.getvalue())
            side = rng.choice([9000, 20000, 60000, 65535])
            if fmt == "JPEG":
                at = data.index(b"\xff\xc0") + 5  # SOF0: precision, then height and width
                data[at:at + 4] = struct.pack(">HH", side, side)
            else:
                data[18:26] = struct.pack("<ii", side, rng.choice([side, -side]))
            data = bytes(data)
        else:
            data = _image_case(rng, "images")
        with open(os.path.join(folder, f"{i:05d}"), "wb") as f:
            f.write(data)


@pytest.mark.slow  # > ~8 s on 2 cores; make test and CI run it
def test_a_decompression_bomb_sent_to_the_saved_model_is_refused_and_the_server_keeps_serving(tmp_path, capsys):
    """Also the fuzz harness of encoded images (DEEPLAB_FUZZ_N cases, 25 by default; 2000 is the full size): each
    is answered or refused with InvalidArgument, in a server process capped at 3 GB that keeps serving."""
    code, out, err = run_cli("util/export_model.py", [CAFFEMODEL, "--output_dir", tmp_path / "export", "--formats",
                                                      "saved_model"], capsys)  # the default --max_pixels: 25 MP
    assert code == 0, err
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb(10000, 10000))
    assert bomb.stat().st_size < 13_000  # 12 KB that decode to 100 MP (300 MB as RGB, 1.2 GB as float)
    n = int(os.environ.get("DEEPLAB_FUZZ_N", 25))
    encoded_cases(tmp_path / "fuzz", n, seed=int(os.environ.get("DEEPLAB_FUZZ_SEED", 0)))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", SERVER, str(tmp_path / "export" / "saved_model"), str(bomb),
                           str(tmp_path / "fuzz")], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=300 + 2 * n)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert not [line for line in proc.stdout.splitlines() if line.startswith("fuzz ")], proc.stdout
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines["before"] == lines["after"] == "(45, 61, 1)"  # the same process still serves
    for name in ("bomb", "batch"):
        assert lines[name].startswith("refused:"), lines[name]
        assert "more than 25,000,000 pixels" in lines[name] and "--max_pixels" in lines[name]
    answered, refused = map(int, lines["answers"].split())
    assert answered + refused == n and answered and refused


def _hashes(directory):
    out = {}
    for dirpath, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                out[os.path.relpath(os.path.join(dirpath, name), directory)] = hashlib.sha1(f.read()).hexdigest()
    return out


@pytest.mark.slow  # > ~8 s on 2 cores; make test and CI run it
def test_a_full_disk_during_an_export_is_one_line_and_leaves_the_earlier_export(tmp_path, capsys, monkeypatch):
    from deeplab_lfov.deploy import export
    args = [CAFFEMODEL, "--output_dir", tmp_path, "--tflite_size", "33"]
    code, _, err = run_cli("util/export_model.py", args, capsys)
    assert code == 0, err
    before = _hashes(tmp_path)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    def save_half(module, path):  # writes part of the SavedModel, then the disk is full
        os.makedirs(os.path.join(path, "variables"))
        with open(os.path.join(path, "saved_model.pb"), "wb") as f:
            f.write(b"partial")
        full_disk()

    monkeypatch.setattr(export, "save_saved_model", save_half)
    monkeypatch.setattr(export, "_write_bytes", full_disk)
    code, out, err = run_cli("util/export_model.py", args, capsys)
    assert_one_line_error(code, err, "2 of 2 artifacts not published", "No space left on device", "nothing published")
    assert "Traceback" not in out
    assert _hashes(tmp_path) == before  # the earlier export is whole, and nothing was left beside it
    assert sorted(os.listdir(tmp_path)) == sorted({p.split(os.sep)[0] for p in before})


def test_publishing_a_folder_is_one_step_and_an_interrupted_fallback_is_recovered(tmp_path, monkeypatch):
    from deeplab_lfov.core import publish as publishing
    final, staging = tmp_path / "saved_model", tmp_path / ".export-1"
    final.mkdir()
    (final / "v").write_text("old")
    (staging / "saved_model").mkdir(parents=True)
    (staging / "saved_model" / "v").write_text("new")
    old = publishing.publish(str(staging / "saved_model"), str(final))
    assert (final / "v").read_text() == "new" and open(os.path.join(old, "v")).read() == "old"

    # Where the file system cannot exchange two folders: two renames, and a kill between them...
    (staging / "next").mkdir()
    (staging / "next" / "v").write_text("newer")
    monkeypatch.setattr(publishing, "_exchange", lambda a, b: False)
    real_replace = os.replace
    calls = []

    def killed_after_first_rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies here
        real_replace(src, dst)

    monkeypatch.setattr(publishing.os, "replace", killed_after_first_rename)
    with pytest.raises(KeyboardInterrupt):
        publishing.publish(str(staging / "next"), str(final))
    monkeypatch.setattr(publishing.os, "replace", real_replace)
    assert not final.exists()
    # ... and the next run puts the version that was there back, then removes the staging folder.
    assert publishing.recover_leftovers(str(tmp_path), ".export-") == [str(staging)]
    assert (final / "v").read_text() == "new" and sorted(os.listdir(tmp_path)) == ["saved_model"]


def test_a_killed_export_leaves_nothing_the_next_export_does_not_clean(tmp_path, capsys):
    out_dir = tmp_path / "export"
    proc = subprocess.Popen([sys.executable, "util/export_model.py", CAFFEMODEL, "--output_dir", str(out_dir),
                             "--tflite_size", "33"], cwd=ROOT, env=SUBPROCESS_ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while not (out_dir.exists() and any(n.startswith(".export-") for n in os.listdir(out_dir))):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert [n for n in os.listdir(out_dir) if n.startswith(".export-")]  # what a kill leaves
    code, out, err = run_cli("util/export_model.py", [CAFFEMODEL, "--output_dir", out_dir, "--formats", "tflite",
                                                      "--tflite_size", "33"], capsys)
    assert code == 0, err
    assert "Removed 1 staging folder left by interrupted exports" in out
    assert not [n for n in os.listdir(out_dir) if n.startswith(".")]


def test_two_exports_into_one_folder_at_once_are_refused(tmp_path, capsys):
    from deeplab_lfov.deploy.export import _DirectoryLock
    with _DirectoryLock(str(tmp_path)):
        code, _, err = run_cli("util/export_model.py", [CAFFEMODEL, "--output_dir", tmp_path, "--formats", "tflite",
                                                        "--tflite_size", "33"], capsys)
    assert_one_line_error(code, err, str(tmp_path), "in use by another export")
    assert os.listdir(tmp_path) == []


def test_republishing_the_saved_model_never_leaves_the_serving_path_empty(tmp_path, capsys, monkeypatch):
    from deeplab_lfov.core import publish as publishing
    served = tmp_path / "saved_model"
    served.mkdir()
    (served / "saved_model.pb").write_bytes(b"the version being served")
    seen = []

    def watching(function):
        def call(src, dst, *args, **kwargs):
            if os.path.abspath(dst) == str(served):
                seen.append(served.is_dir())
            return function(src, dst, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "replace", watching(os.replace))
    monkeypatch.setattr(os, "rename", watching(os.rename))
    monkeypatch.setattr(publishing, "_exchange", watching(publishing._exchange))
    code, _, err = run_cli("util/export_model.py", [CAFFEMODEL, "--output_dir", tmp_path, "--formats", "saved_model"],
                           capsys)
    assert code == 0, err
    assert seen and all(seen)  # the old version was there until the new one took its place
    assert (served / "saved_model.pb").read_bytes() != b"the version being served"
    umask = os.umask(0o022)
    os.umask(umask)
    assert os.stat(served).st_mode & 0o777 == 0o777 & ~umask  # the usual permissions, not a staging folder's
