"""Fuzzing the data layer's surfaces: every input ends in success or in one ``error:`` line with exit code 2.

Surfaces (what a user hands the programs):

* ``classes``: ``--classes`` files (``read_classes``);
* ``weights``: ``--class_weights`` files (``read_class_weights``);
* ``labels``: label images (``read_label`` + ``check_label_values``, what ``check_data.py`` and training run);
* ``predictions``: prediction masks as ``evaluate.py --pred_dir`` reads them (the same reader, fed 16- and
  32-bit masks as models of many classes write them);
* ``images``: input images (``read_image``, what inference, training and the checks run);
* ``masks``: colour, binary and index masks to convert (``convert_mask`` with and without a tolerance),
  and every tenth case ``util/convert_labels.py`` on a folder of them (one problem per bad file, the rest
  converted).

Inputs are valid seeds and their mutations: random and flipped bytes, truncations, text that is not
UTF-8, huge and non-finite numbers, long names, control characters, headers declaring huge sizes
(with valid checksums), files of the wrong format under an image name.  The cases run in one worker
process whose address space is capped (``resource.setrlimit(RLIMIT_AS)``, 2 GB by default); each is
run as a program runs (``cli.run``), and its exit code and output are checked: exit 0, or exit 2 with
one ``error:`` line (for a collection: one per bad file and the summary), never a traceback.  A crash of
the worker (a signal, an abort) is reported with the case it was running.

    python tests/fuzz.py                        # DEEPLAB_FUZZ_N cases per surface (default 25: seconds)
    python tests/fuzz.py --n 2000 --seed 7      # the full size
    DEEPLAB_FUZZ_N=2000 python -m pytest tests/test_hostile_data.py -k fuzz

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import traceback
import zlib
from typing import Callable, Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SURFACES = ("classes", "weights", "labels", "predictions", "images", "masks")
DEFAULT_N = 25
CAP_BYTES = 2 << 30


# -- inputs ----------------------------------------------------------------------------------------------------

_NUMBERS = ["1", "0.5", "0", "-1", "1e308", "1e-320", "inf", "-inf", "nan", "NaN", "1e6", "1000001", "1_000", "0x10",
            "\u0661\u0662", "\uff11", "1e", "--1", "1" * 5000, "3.4028235e38", "2.5", "1e-6"]
_NAMES = ["background", "road", "tree", "x" * 101, "x" * 200_000, "a\x00b", "ro\x1bad", "\u0440\u043e\u0430\u0434",
          "\u8def", "a\u200bb", "#comment", "\ufeffbom", "e\u0301", "\U0001f600"]


def _text_case(rng: random.Random, weights: bool) -> bytes:
    """A classes file (or a class-weights file): valid, or broken in one of many ways."""
    kind = rng.randrange(10)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 3000)))
    if kind == 1:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(200))).encode("utf-8",
                                                                                                 "surrogatepass")
    lines = []
    for i in range(rng.choice([1, 2, 3, 3, 21, 255, 256, 400])):
        name = rng.choice(_NAMES) if rng.random() < 0.2 else f"c{i}"
        if weights:
            fields = [rng.choice(_NUMBERS)] if rng.random() < 0.7 else [name, rng.choice(_NUMBERS)]
        else:
            fields = [name] + ([str(rng.randrange(-5, 300)) for _ in range(rng.choice([0, 3, 3, 3, 2, 4]))]
                               if rng.random() < 0.6 else [])
        lines.append(" ".join(fields))
    text = rng.choice(["\n", "\r\n", "\r"]).join(lines) + rng.choice(["", "\n"])
    data = text.encode("utf-8")
    if kind == 2:
        data = text.encode(rng.choice(["utf-16", "latin-1", "cp1252"]), "replace")
    elif kind == 3:
        position = rng.randrange(len(data) + 1)
        data = data[:position] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80\x80"]) + data[position:]
    elif kind == 4:
        data = b"\xef\xbb\xbf" + data
    elif kind == 5:
        data = data[:rng.randrange(len(data) + 1)]
    return data


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_declaring(width: int, height: int, color_type: int, depth: int = 8) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 256))
            + _chunk(b"IEND", b""))


def _seed_images(rng: random.Random, surface: str) -> bytes:
    """A small valid image file of a mode and format the surface meets."""
    import numpy as np
    from PIL import Image
    h, w = rng.randrange(1, 40), rng.randrange(1, 40)
    nrng = np.random.RandomState(rng.randrange(1 << 30))
    if surface in ("labels", "predictions"):
        choice = rng.choice(["P", "L", "1", "I;16", "I", "I-neg", "RGB", "LA", "F"] +
                            (["I;16-big", "I-big", "I-256"] if surface == "predictions" else []))
    elif surface == "masks":
        choice = rng.choice(["RGB-palette", "RGB-palette", "RGB-jpeg", "RGBA", "L-binary", "P", "RGB-noise", "I;16"])
    else:
        choice = rng.choice(["RGB", "RGBA", "L", "P", "P-transparent", "1", "CMYK", "I;16", "I", "F", "LA", "YCbCr"])
    palette = np.array([(10, 10, 10), (200, 100, 50), (20, 180, 20), (224, 224, 192)], np.uint8)
    if choice in ("P", "L"):
        image = Image.fromarray(nrng.randint(0, 25, (h, w)).astype(np.uint8), choice if choice == "L" else None)
        image = image if choice == "L" else image.convert("P")
    elif choice == "1":
        image = Image.fromarray(nrng.rand(h, w) > 0.5)
    elif choice.startswith("I;16"):
        top = 70000 if choice.endswith("big") else 300
        image = Image.fromarray(nrng.randint(0, min(top, 65535), (h, w)).astype(np.uint16))
    elif choice.startswith("I"):
        low, high = {"I": (0, 30), "I-neg": (-300, 30), "I-big": (0, 1 << 20), "I-256": (-256, -235)}[choice]
        image = Image.fromarray(nrng.randint(low, high, (h, w)).astype(np.int32), "I")
    elif choice == "F":
        image = Image.fromarray(nrng.rand(h, w).astype(np.float32), "F")
    elif choice in ("RGB-palette", "RGB-jpeg", "RGBA"):
        rgb = palette[nrng.randint(0, 3 if choice != "RGBA" else 4, (h, w))]
        image = Image.fromarray(rgb).convert("RGBA" if choice == "RGBA" else "RGB")
    elif choice == "L-binary":
        image = Image.fromarray((nrng.rand(h, w) > 0.5).astype(np.uint8) * 255, "L")
    elif choice == "RGB-noise":
        image = Image.fromarray(nrng.randint(0, 256, (h, w, 3)).astype(np.uint8))
    else:
        rgb = Image.fromarray(nrng.randint(0, 256, (h, w, 3)).astype(np.uint8))
        image = rgb.convert({"P-transparent": "P", "RGB": "RGB"}.get(choice, choice))
    formats = {"F": ["TIFF"], "I": ["TIFF", "PNG"], "I-neg": ["TIFF"], "I-256": ["TIFF"], "I-big": ["TIFF"],
               "CMYK": ["JPEG", "TIFF"], "YCbCr": ["TIFF"], "RGB-jpeg": ["JPEG"], "LA": ["PNG", "TIFF"],
               "1": ["PNG", "BMP", "TIFF"]}
    fmt = rng.choice(formats.get(choice, ["PNG", "PNG", "TIFF", "BMP", "GIF", "WEBP", "PPM"]))
    out = io.BytesIO()
    try:
        extra = {"transparency": 0} if choice == "P-transparent" and fmt == "PNG" else {}
        image.save(out, format=fmt, **extra)
    except (OSError, ValueError, KeyError):
        out = io.BytesIO()
        image.save(out, format="TIFF")
    return out.getvalue()


def _image_case(rng: random.Random, surface: str) -> bytes:
    """A seed image, or a mutation of one."""
    data = _seed_images(rng, surface)
    kind = rng.randrange(10)
    if kind <= 2:
        return data
    if kind == 3:  # flipped bytes
        buf = bytearray(data)
        for _ in range(rng.randrange(1, 20)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        return bytes(buf)
    if kind == 4:  # truncated
        return data[:rng.randrange(len(data))]
    if kind == 5:  # a header declaring a huge (or odd) size, checksums valid
        side = rng.choice([0, 1, 65535, 9000, 20000, 60000, (1 << 31) - 1])
        return _png_declaring(side, rng.choice([1, side, 3]), rng.choice([0, 2, 3, 4, 6]),
                              rng.choice([1, 2, 4, 8, 16]))
    if kind == 6:  # garbage after a valid magic
        return data[:rng.randrange(1, 16)] + bytes(rng.randrange(256) for _ in range(rng.randrange(500)))
    if kind == 7:
        return rng.choice([b"", b"\0" * 100, b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
                           b"GIF89a" + b"\xff" * 30, b"BM" + b"\xff" * 60, b"II*\0" + b"\xff" * 60])
    if kind == 8:  # bytes inserted
        position = rng.randrange(len(data) + 1)
        return data[:position] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))) + data[position:]
    return data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 256)))


# -- running one case as a program runs -----------------------------------------------------------------------


def _as_program(fn: Callable[[], object]):
    """(exit code, stdout, stderr, traceback or None) of ``fn`` run through ``cli.run``."""
    from deeplab_lfov.cli import run
    out, err = io.StringIO(), io.StringIO()
    code, trace = 0, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run(lambda argv: (fn(), 0)[1])
        except SystemExit as e:
            code = e.code
        except BaseException:  # noqa: BLE001  (a traceback is what the fuzzer looks for)
            trace = traceback.format_exc()
    return code, out.getvalue(), err.getvalue(), trace


def _is_progress(line: str) -> bool:
    import re
    return re.match(r"^\w+: [\d,]+/[\d,]+ ", line) is not None


def _violation(code, out, err, trace, collection: bool):
    """None if the outcome keeps the contract, else what is wrong."""
    if trace:
        return f"traceback: {trace.strip().splitlines()[-1]}"
    lines = [line for line in err.splitlines() if line.strip() and not _is_progress(line)]
    if code == 0:
        return None if not any(line.startswith("error:") for line in lines) else "exit 0 with an error line"
    if code != 2:
        return f"exit code {code}"
    if "Traceback" in err:
        return "a traceback on stderr"
    if not lines or not lines[-1].startswith("error: "):
        return "exit 2 without a final error: line"
    if collection:
        strays = [line for line in lines if not line.startswith("error: ") and "look JPEG-compressed" not in line]
        return f"stray lines: {strays[:2]}" if strays else None
    return None if len(lines) == 1 else f"{len(lines)} lines: {lines[:3]}"


def _same_values(path: str, values) -> None:
    """The oracle of labels: what the reader returned equals the file's values as Pillow decodes them, in int64
    (a 32-bit -256 read as 0 is a silently wrong value, not an error)."""
    import numpy as np
    from PIL import Image
    with Image.open(path) as image:
        if image.mode in ("P", "L", "1", "I", "I;16", "I;16B", "I;16L"):
            raw = np.asarray(image).astype(np.int64)
            assert raw.shape == values.shape and np.array_equal(raw, values.astype(np.int64)), "a value changed"


def _case(surface: str, rng: random.Random, folder: str, index: int):
    """(runner, is a collection) of case ``index`` of ``surface``; its files are written under ``folder``."""
    from deeplab_lfov.data.classes import read_classes
    from deeplab_lfov.data.convert import convert_mask
    from deeplab_lfov.data.images import check_label_values, read_image, read_label
    from deeplab_lfov.data.statistics import read_class_weights
    path = os.path.join(folder, f"case{index}")
    if surface in ("classes", "weights"):
        with open(path + ".txt", "wb") as f:
            f.write(_text_case(rng, surface == "weights"))
        if surface == "classes":
            return (lambda: read_classes(path + ".txt")), False
        return (lambda: read_class_weights(path + ".txt", ["c0", "c1", "c2"])), False
    ext = rng.choice([".png", ".jpg", ".tif", ".bmp", ".gif"])
    with open(path + ext, "wb") as f:
        f.write(_image_case(rng, surface))
    if surface in ("labels", "predictions"):
        def label():
            values = read_label(path + ext)
            check_label_values(values, 21, 255, path + ext)
            _same_values(path + ext, values)
        return label, False
    if surface == "images":
        return (lambda: read_image(path + ext)), False
    classes_file = os.path.join(folder, "classes.txt")
    if not os.path.exists(classes_file):
        with open(classes_file, "w") as f:
            f.write("background 10 10 10\nroad 200 100 50\ntree 20 180 20\n")
    classes = read_classes(classes_file)
    if index % 10 == 9:  # the program on a folder of the last cases
        from deeplab_lfov.cli import convert_labels
        masks = os.path.join(folder, f"folder{index}")
        os.makedirs(masks)
        for j in range(max(0, index - 4), index + 1):
            for name in os.listdir(folder):
                if name.startswith(f"case{j}."):
                    os.replace(os.path.join(folder, name), os.path.join(masks, name))
        argv = [masks, "--output_dir", os.path.join(folder, f"out{index}"), "--classes", classes_file, "--workers", "2"]
        if rng.random() < 0.3:
            argv = [masks, "--output_dir", os.path.join(folder, f"out{index}"), "--binary", "--workers", "2"]
        return (lambda: convert_labels.main(argv)), True
    tolerance = rng.choice([0.0, 0.0, 8.0, 32.0])
    binary = rng.random() < 0.2
    return (lambda: convert_mask(path + ext, classes, 3, binary=binary, tolerance=tolerance)), False


def worker(surfaces: List[str], n: int, seed: int, progress_path: str) -> Dict:
    """Run ``n`` cases of each surface in this process; returns the outcomes (and the violations)."""
    report = {}
    for surface in surfaces:
        rng = random.Random(f"{seed}-{surface}")
        outcomes: collections.Counter = collections.Counter()
        violations = []
        with tempfile.TemporaryDirectory(prefix=f"fuzz-{surface}-") as folder:
            for index in range(n):
                runner, is_collection = _case(surface, rng, folder, index)
                with open(progress_path, "w") as f:
                    f.write(f"{surface} case {index} (seed {seed})")
                code, out, err, trace = _as_program(runner)
                problem = _violation(code, out, err, trace, is_collection)
                if problem:
                    violations.append({"case": index, "problem": problem, "stderr": err[-500:]})
                    outcomes["violation"] += 1
                elif code == 0:
                    outcomes["ok"] += 1
                else:
                    outcomes["error: line"] += 1
        report[surface] = {"outcomes": dict(outcomes), "violations": violations}
    return report


def fuzz(n: int = DEFAULT_N, seed: int = 0, surfaces=SURFACES, cap_bytes: int = CAP_BYTES, timeout: float = 3600):
    """Run the worker in a subprocess under an address-space cap; returns its report, or raises on a crash."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as folder:
        progress = os.path.join(folder, "progress")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", "--n", str(n), "--seed",
                               str(seed), "--surfaces", ",".join(surfaces), "--cap_bytes", str(cap_bytes),
                               "--progress", progress], capture_output=True, text=True, env=env, timeout=timeout)
        if proc.returncode != 0 or not proc.stdout.strip():
            where = open(progress).read() if os.path.exists(progress) else "before the first case"
            raise RuntimeError(f"the fuzz worker died (exit {proc.returncode}) at {where}: {proc.stderr[-2000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=int(os.environ.get("DEEPLAB_FUZZ_N", DEFAULT_N)),
                        help="cases per surface (default: $DEEPLAB_FUZZ_N or 25)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--surfaces", default=",".join(SURFACES))
    parser.add_argument("--cap_bytes", type=int, default=CAP_BYTES, help="address-space cap of the worker")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--progress", default=os.devnull, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    surfaces = [s for s in args.surfaces.split(",") if s]
    if args.worker:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (args.cap_bytes, args.cap_bytes))
        print(json.dumps(worker(surfaces, args.n, args.seed, args.progress)))
        return 0
    report = fuzz(args.n, args.seed, surfaces, args.cap_bytes)
    bad = 0
    for surface, result in report.items():
        print(f"{surface:12s} {result['outcomes']}")
        for v in result["violations"][:10]:
            print(f"  case {v['case']}: {v['problem']}")
        bad += len(result["violations"])
    print(f"{bad} violations in {len(report) * args.n} cases")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
