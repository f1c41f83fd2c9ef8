"""Hostile and heavy inputs to the data layer (issue 18): a file never hangs, never stops a collection, never
allocates by an unchecked header, and no value is ever silently wrong."""

import os
import re
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from PIL import Image

from deeplab_lfov.core.errors import DeepLabError
from helpers import ROOT, SUBPROCESS_ENV, assert_one_line_error, run_cli

# -- the pixel limit ------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_the_pixel_limit_holds_in_threads(tmp_path, monkeypatch):
    """Pillow's bomb warning turned into an error by ``warnings.catch_warnings`` is not thread-safe: another
    thread leaving its own ``catch_warnings`` drops the filter, and the bomb is decoded.  The header check is."""
    from deeplab_lfov.data import images
    bomb = tmp_path / "bomb.png"
    Image.new("L", (200, 100)).save(bomb)  # 20,000 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 15_000)  # what today's check relied on: a warning only
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 15_000, raising=False)
    stop = threading.Event()

    def other_library():  # any code that saves and restores the warning filters, as libraries do
        while not stop.is_set():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")

    decoded = []

    def reader():
        for _ in range(300):
            for read in (images.read_image, images.read_label):
                try:
                    read(str(bomb))
                    decoded.append(read.__name__)
                except DeepLabError as e:
                    assert "bomb.png" in str(e) and "pixels" in str(e)

    threads = [threading.Thread(target=other_library)] + [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join()
    stop.set()
    threads[0].join()
    assert decoded == []


def test_every_reader_checks_the_header_against_a_per_call_limit(tmp_path):
    from deeplab_lfov.data import images
    path = tmp_path / "big.png"
    Image.new("RGB", (400, 300)).save(path)
    assert images.MAX_IMAGE_PIXELS >= 4000 * 3000  # a 12 MP photo is an image, not a bomb
    for read in (images.read_image, images.read_label, lambda p, **kw: images.open_image(p, "image", **kw)):
        with pytest.raises(DeepLabError, match=r"big.png: 400x300 = 120,000 pixels, more than the limit of 100,000"):
            read(str(path), max_pixels=100_000)
    assert images.read_image(str(path), max_pixels=120_000).shape == (300, 400, 3)


def png_header(path, width, height, color_type=0):
    """A PNG that declares ``width`` x ``height`` 8-bit pixels and holds a few bytes of data: what an attacker
    sends (decoding it would allocate the declared size)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("width,height", [(12000, 12000), (60000, 60000)])
def test_a_huge_header_is_refused_before_any_allocation(tmp_path, width, height):
    """A tiny PNG declaring 144 MP (over the limit) or 3.6 GP (over Pillow's own hard limit too): refused from
    the header, in a process whose address space is capped at 1 GB."""
    path = tmp_path / "huge.png"
    png_header(path, width, height, color_type=2)
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "from deeplab_lfov.cli import run\n"
            "from deeplab_lfov.data.images import read_image\n"
            "run(lambda argv: read_image(sys.argv[1]) is None)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, env=SUBPROCESS_ENV, capture_output=True,
                          text=True, timeout=60)
    assert_one_line_error(proc.returncode, proc.stderr, "huge.png", f"{width * height:,} pixels",
                          "more than the limit of 89,478,485")


# -- files that are not regular files --------------------------------------------------------------------------


def _never_blocks(fn, *args, timeout=5.0):
    """``fn(*args)`` in a daemon thread: its result or exception, or a failure if it is still blocked."""
    out = {}

    def target():
        try:
            out["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001  (handed to the test)
            out["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    return thread.is_alive(), out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_named_like_an_image_never_blocks_a_reader(tmp_path):
    from deeplab_lfov.data.images import read_image, read_label
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    try:
        for read in (read_image, read_label):
            blocked, out = _never_blocks(read, str(fifo))
            assert not blocked, f"{read.__name__} blocked on a FIFO"
            assert isinstance(out.get("error"), DeepLabError) and "x.jpg: not a regular file (a FIFO)" in str(
                out["error"]), out
    finally:  # on code that blocks, a writer lets the stuck reader go
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    for special in ("/dev/null", "/dev/zero"):
        if os.path.exists(special):
            with pytest.raises(DeepLabError, match=f"{special}: not a regular file"):
                read_image(special)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_gather_skips_and_reports_non_regular_files(tmp_path):
    from deeplab_lfov.data.inputs import collect
    Image.new("RGB", (8, 6)).save(tmp_path / "a.png")
    os.mkfifo(tmp_path / "x.jpg")
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    blocked, out = _never_blocks(collect, str(tmp_path))
    assert not blocked
    found = out["value"]
    assert [item.name for item in found.items] == ["a"]
    assert sorted((os.path.basename(p.item), p.kind) for p in found.problems) == [
        ("dangling.png", "not a regular file"), ("x.jpg", "not a regular file")]
    assert any("x.jpg: not a regular file (a FIFO)" in p.message for p in found.problems)


# -- values outside what the format means ---------------------------------------------------------------------


def test_32_bit_labels_and_predictions_never_wrap(tmp_path, capsys):
    """A prediction holding label - 256 (a 32-bit TIFF under a .png name) scored Mean IoU 1.0."""
    from deeplab_lfov.data.images import read_label
    from helpers import make_dataset
    list_path = make_dataset(str(tmp_path), 2)
    (tmp_path / "preds").mkdir()
    for i in range(2):
        label = np.asarray(Image.open(tmp_path / "SegmentationClassAug" / f"img_{i}.png")).astype(np.int32)
        Image.fromarray(label - 256, mode="I").save(tmp_path / "preds" / f"img_{i}.png", format="TIFF")
    first = tmp_path / "preds" / "img_0.png"
    with pytest.raises(DeepLabError, match=r"img_0.png: label values outside 0..255: -256 \([\d,]+ pixels\)"):
        read_label(str(first))
    code, out, err = run_cli("evaluate.py", ["--data_dir", tmp_path, "--data_list", list_path, "--pred_dir",
                                             tmp_path / "preds"], capsys)
    assert code == 2 and "Mean IoU" not in out
    assert re.search(r"img_1.png: prediction values outside 0..255: -256 \([\d,]+ pixels\)", out + err)

    sixteen = tmp_path / "sixteen.png"
    Image.fromarray(np.full((4, 5), 300, np.uint16)).save(sixteen)  # a 16-bit PNG
    with pytest.raises(DeepLabError, match=r"sixteen.png: label values outside 0..255: 300 \(20 pixels\)"):
        read_label(str(sixteen))


def test_label_values_are_reported_with_their_pixel_counts():
    from deeplab_lfov.data.images import check_label_values
    label = np.zeros((4, 5), np.uint8)
    label[0, :3] = 40
    label[1, 0] = 21
    label[2] = 255
    with pytest.raises(DeepLabError, match=r"l.png: label values outside 0..20 and ignore label 255: 40 \(3 pixels\), "
                                           r"21 \(1 pixel\)"):
        check_label_values(label, 21, 255, "l.png")


def test_conversion_refuses_out_of_range_index_values(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    Image.fromarray(np.full((4, 5), -3, np.int32), mode="I").save(tmp_path / "m" / "neg.tif")
    Image.fromarray(np.zeros((4, 5), np.uint8), mode="L").save(tmp_path / "m" / "ok.png")
    code, out, err = run_cli("util/convert_labels.py", [tmp_path / "m", "--output_dir", tmp_path / "o"], capsys)
    assert code == 2 and re.search(r"neg.tif: label values outside 0..255: -3 \(20 pixels\)", err)
    assert os.listdir(tmp_path / "o") == ["ok.png"]


def test_masks_of_more_than_255_classes_are_16_bit_pngs(tmp_path):
    from deeplab_lfov.data.colormap import decode_labels, overlay, save_mask
    labels = np.array([[0, 24, 280], [255, 256, 1000]], np.int64)
    save_mask(str(tmp_path / "m.png"), labels)
    back = Image.open(tmp_path / "m.png")
    assert back.mode.startswith("I") and np.array_equal(np.asarray(back), labels)
    assert not np.array_equal(decode_labels(labels)[0, 1], decode_labels(labels)[0, 2])  # 280 is not 24's colour
    rgb = np.zeros((2, 3, 3), np.uint8)
    assert overlay(rgb, labels, [str(i) for i in range(1001)]).shape[1] >= 3
    for bad in (np.array([[-1]]), np.array([[70000]])):
        with pytest.raises(DeepLabError, match="class ids"):
            save_mask(str(tmp_path / "bad.png"), bad)
    save_mask(str(tmp_path / "small.png"), labels.clip(0, 255).astype(np.int64))
    assert Image.open(tmp_path / "small.png").mode == "P"  # 8-bit palette PNGs whenever they hold the values


# -- text files ------------------------------------------------------------------------------------------------


def test_classes_and_class_weights_files_that_are_not_utf8(tmp_path, capsys):
    from deeplab_lfov.data.classes import read_classes
    from deeplab_lfov.data.statistics import read_class_weights
    bad = tmp_path / "classes.txt"
    bad.write_bytes(b"background\nro\xffad\n")
    with pytest.raises(DeepLabError, match=r"classes.txt: not UTF-8 text: byte 0xff at offset 13 \(line 2\)"):
        read_classes(str(bad))
    (tmp_path / "m").mkdir()
    code, _, err = run_cli("util/convert_labels.py", [tmp_path / "m", "--output_dir", tmp_path / "o", "--classes",
                                                      bad], capsys)
    assert_one_line_error(code, err, "classes.txt: not UTF-8 text: byte 0xff at offset 13")
    weights = tmp_path / "w.txt"
    weights.write_bytes(b"1.0\n\xc3\x28\n")
    with pytest.raises(DeepLabError, match=r"w.txt: not UTF-8 text: byte 0xc3 at offset 4 \(line 2\)"):
        read_class_weights(str(weights), ["a", "b"])
    (tmp_path / "bom.txt").write_bytes("\ufeffbackground\nroad\n".encode())  # Notepad's UTF-8 is fine
    assert read_classes(str(tmp_path / "bom.txt")).names == ("background", "road")


@pytest.mark.parametrize("value", ["1e308", "inf", "nan", "0", "-1", "1e7"])
def test_class_weights_are_finite_positive_and_bounded(tmp_path, value):
    from deeplab_lfov.data.statistics import read_class_weights
    path = tmp_path / "w.txt"
    path.write_text(f"1.0\n{value}\n")
    with pytest.raises(DeepLabError, match=r"w.txt:2: class weight .* must be a number in \(0, 1e\+06\]"):
        read_class_weights(str(path), ["a", "b"])
    path.write_text("1.0\n1e6\n")
    assert read_class_weights(str(path), ["a", "b"]) == [1.0, 1e6]


def test_class_names_are_bounded(tmp_path):
    from deeplab_lfov.data.classes import MAX_NAME_LENGTH, read_classes
    path = tmp_path / "c.txt"
    path.write_text("background\n" + "x" * 1_000_000 + "\n")
    with pytest.raises(DeepLabError, match=rf"c.txt:2: class name of 1,000,000 characters \(at most {MAX_NAME_LENGTH}\)"):
        read_classes(str(path))
    path.write_text("background\nro\x1bad\n")
    with pytest.raises(DeepLabError, match=r"c.txt:2: class name 'ro\\x1bad' holds a control character"):
        read_classes(str(path))
    path.write_text("".join(f"c{i}\n" for i in range(256)))
    with pytest.raises(DeepLabError, match=r"c.txt:256: more than 255 classes"):
        read_classes(str(path))
    path.write_bytes(b"background\n" + b"#" * (2 << 20))
    with pytest.raises(DeepLabError, match=r"c.txt: [\d,]+ bytes, more than a classes file holds \(at most 1 MiB\)"):
        read_classes(str(path))


# -- collections: one odd file never stops the run ------------------------------------------------------------


def test_output_clashes_and_files_that_are_not_images_are_counted_not_fatal(tmp_path, capsys):
    from deeplab_lfov.data.inputs import collect, gather, not_images_phrase
    Image.new("RGB", (8, 6), (200, 0, 0)).save(tmp_path / "coffee.gif")
    Image.new("RGB", (8, 6), (200, 0, 0)).save(tmp_path / "coffee.bmp")
    Image.new("L", (8, 6)).save(tmp_path / "tea.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "phone.heic").write_bytes(b"\0\0\0\x18ftypheic")
    found = collect(str(tmp_path))
    assert [item.name for item in found.items] == ["tea"]
    assert sorted(os.path.basename(p.item) for p in found.problems) == ["coffee.bmp", "coffee.gif"]
    assert all(p.kind == "outputs would clash" and "coffee.bmp, coffee.gif would write the same outputs (coffee.png)"
               in p.message for p in found.problems)
    from deeplab_lfov.data.inputs import IMAGE_EXTENSIONS
    expected = ["notes.txt"] + ([] if ".heic" in IMAGE_EXTENSIONS else ["phone.heic"])
    assert sorted(os.path.basename(p) for p in found.not_images) == expected
    if len(expected) == 2:
        assert not_images_phrase(found.not_images) == "skipped 2 files that are not images: notes.txt, phone.heic"
    with pytest.raises(DeepLabError, match="would write the same outputs"):
        gather(str(tmp_path))  # the classic form stops at the first problem

    code, out, err = run_cli("util/convert_labels.py", [tmp_path, "--output_dir", tmp_path / "out", "--binary"],
                             capsys)
    assert code == 2 and os.listdir(tmp_path / "out") == ["tea.png"]
    assert "coffee.gif: coffee.bmp, coffee.gif would write the same outputs" in err and "2 of 3 label images" in err
    assert "Skipped" in out and "notes.txt" in out


# -- the fuzz harness (tests/fuzz.py) ----------------------------------------------------------------------------


def test_fuzzed_inputs_end_in_success_or_one_error_line():
    """Classes and class-weights files, label, prediction and input images, masks to convert: each fuzzed input
    ends in exit 0 or one ``error:`` line with exit 2, in a worker capped at 2 GB of address space.  CI runs
    25 cases per surface; ``DEEPLAB_FUZZ_N=2000`` (or ``python tests/fuzz.py --n 2000``) the full size."""
    from fuzz import DEFAULT_N, fuzz
    n = int(os.environ.get("DEEPLAB_FUZZ_N", DEFAULT_N))
    report = fuzz(n, seed=int(os.environ.get("DEEPLAB_FUZZ_SEED", 0)))
    violations = {surface: result["violations"][:5] for surface, result in report.items() if result["violations"]}
    assert not violations, violations
    assert all(sum(result["outcomes"].values()) == n for result in report.values())


def test_predictions_are_named_as_predictions_and_rgb_ones_point_to_convert_labels(tmp_path):
    from deeplab_lfov.data.images import check_label_values, read_label
    Image.new("RGB", (5, 4), (128, 0, 0)).save(tmp_path / "pred.png")
    with pytest.raises(DeepLabError, match=r"pred.png: prediction is an RGB colour image, .*util/convert_labels.py "
                                           r"MASK_DIR --output_dir LABEL_DIR --classes classes.txt") as e:
        read_label(str(tmp_path / "pred.png"), what="prediction")
    assert e.value.kind == "prediction is a colour image" and "prepare_voc" not in str(e.value)
    with pytest.raises(DeepLabError, match=r"p.png: prediction values outside 0..20 and ignore label 255: 30 \(2 "
                                           r"pixels\)") as e:
        check_label_values(np.array([[30, 30, 1]], np.uint8), 21, 255, "p.png", what="prediction")
    assert e.value.kind == "prediction values out of range"
