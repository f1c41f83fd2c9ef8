"""Export for serving and phones, verified: SavedModel (TF Serving) and TFLite files.

* SavedModel, preprocessing inside (RGB->BGR, mean), Caffe-exact pooling and Interp, the test-time
  protocol baked in (``predict.test_time_probabilities``, the very function evaluation runs):
  ``serving_default`` takes ``images`` uint8 [N, H, W, 3] RGB of any size and returns ``labels``
  uint8 [N, H, W] and ``probabilities`` float32 [N, H, W, C]; ``segment_encoded`` takes
  ``image_bytes`` string [N] (JPEG, PNG or BMP) and returns ``labels_png_bytes`` string [N] (grayscale
  PNGs of class indices).  TF Serving's REST API base64-encodes exactly the string tensors whose
  names end in ``_bytes``, hence both names.  It loads with TensorFlow alone, and carries its classes:
  ``class_names`` (string) and ``class_colors`` (uint8 [C, 3]) variables and ``assets/classes.txt``.
* **One request never takes the server down**: a request is refused with ``InvalidArgument`` (what TF
  Serving answers with HTTP 400) before anything is allocated for it when it holds more than
  ``max_pixels`` pixels (``--max_pixels``, baked in at export): ``serving_default`` counts N x H x W;
  ``segment_encoded`` reads each image's size from its header (``tf.io.extract_jpeg_shape``; PNG's IHDR;
  BMP's info header) and decodes it only if it is within the limit, so a 12 KB PNG declaring
  10000 x 10000 pixels costs nothing.  Other formats (GIF, WebP) are refused.
* TFLite for a fixed square size S: signature ``serving_default``, input ``images`` float32
  [1, S, S, 3] RGB values 0..255, outputs ``labels`` uint8 [1, S, S] and ``probabilities`` float32
  [1, S, S, C] (the tensors carry those names too); ``none`` (fp32), ``float16`` (fp16 weights) or
  ``dynamic`` (int8 dynamic-range weights).  ``TFLiteSegmenter`` runs one on an image of any size (padded
  with the mean colour to S, or downscaled first if larger; cropped back; probabilities resized back).
* ``export_model`` verifies and publishes **each artifact on its own**: it is written into a staging
  folder, loaded back and run on check images; the share of pixels whose label equals the in-process
  predictor's is its agreement, which must reach its threshold (``MIN_AGREEMENT``, or
  ``--min_agreement``).  One that passes is moved into place in one atomic step
  (``core.publish``: an older version is replaced, never removed first); one that fails leaves the
  earlier version of its file as it was.  Beside them: ``classes.txt``, one ``<file>.labels.txt`` per
  TFLite file, and ``model.json`` (classes, pre-processing, inputs and outputs, agreement, size,
  latency of every artifact in the folder).
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import fcntl
import json
import os
import shutil
import statistics
import tempfile
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..core._tf import tf
from ..core.constants import TFLITE_QUANTIZATIONS as QUANTIZATIONS
from ..core.errors import DeepLabError
from ..core.files import write_text_atomic
from ..core.publish import publish, recover_leftovers
from ..crf.params import CRFParams
from ..crf.tf_crf import dense_crf
from ..data.images import IMG_MEAN
from ..evaluation.predict import Predictor, preprocess_tensor, test_time_probabilities
from ..model.largefov import DeepLabLargeFOV

if TYPE_CHECKING:  # the settings sit above deploy: only their type is named here
    from ..settings import ExportConfig

__all__ = ["QUANTIZATIONS", "MIN_AGREEMENT", "DEFAULT_MAX_PIXELS", "ServingModule", "save_saved_model",
           "convert_tflite", "reference_labels", "tflite_interpreter", "TFLiteSegmenter", "saved_model_agreement",
           "tflite_agreement", "tflite_name", "labels_name", "Artifact", "ExportReport", "export_model", "check_images",
           "MODEL_JSON", "STAGING_PREFIX"]

# Least share of pixels whose label must equal the in-process predictor's, per artifact (``--min_agreement``
# overrides them); the SavedModel at a precision other than fp32 needs 99.5%.
MIN_AGREEMENT = {"saved_model": 1.0, "none": 0.999, "float16": 0.995, "dynamic": 0.98}
REDUCED_PRECISION_AGREEMENT = 0.995

# The most pixels one request may hold (``--max_pixels``): 25 MP, a 6000 x 4000 photo.
DEFAULT_MAX_PIXELS = 25_000_000

MODEL_JSON = "model.json"
CLASSES_TXT = "classes.txt"
STAGING_PREFIX = ".export-"
_MEAN_RGB = [round(float(v), 3) for v in IMG_MEAN[::-1]]


# ---------------------------------------------------------------------------------------- SavedModel
def _bytes_at(head: tf.Tensor, start: int, count: int, big_endian: bool) -> tf.Tensor:
    """The unsigned integer of ``count`` bytes of ``head`` (int64 bytes) from ``start``."""
    value = tf.constant(0, tf.int64)
    order = range(start, start + count) if big_endian else range(start + count - 1, start - 1, -1)
    for i in order:
        value = value * 256 + head[i]
    return value


def declared_pixels(encoded: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """(known format, pixels) an encoded JPEG, PNG or BMP declares in its header; nothing is decoded.

    PNG: width and height are the big-endian 32-bit numbers at bytes 16..24 (the IHDR chunk, always
    first); BMP: the little-endian signed 32-bit numbers at bytes 18..26; JPEG: its SOF marker, read by
    ``tf.io.extract_jpeg_shape``.
    """
    padded = tf.strings.join([tf.strings.substr(encoded, 0, 32), tf.constant(b"\0" * 32)])
    head = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 0, 32), tf.uint8), tf.int64)

    def starts_with(signature: bytes, at: int = 0) -> tf.Tensor:
        return tf.reduce_all(tf.equal(head[at:at + len(signature)], tf.constant(list(signature), tf.int64)))

    is_png = tf.logical_and(starts_with(b"\x89PNG\r\n\x1a\n"), starts_with(b"IHDR", 12))
    is_jpeg = starts_with(b"\xff\xd8\xff")
    is_bmp = starts_with(b"BM")

    def signed(value):
        return tf.abs(tf.where(value >= 2 ** 31, value - 2 ** 32, value))

    png = _bytes_at(head, 16, 4, True) * _bytes_at(head, 20, 4, True)
    bmp = signed(_bytes_at(head, 18, 4, False)) * signed(_bytes_at(head, 22, 4, False))
    jpeg = tf.cond(is_jpeg, lambda: tf.reduce_prod(tf.cast(tf.io.extract_jpeg_shape(encoded)[:2], tf.int64)),
                   lambda: tf.constant(0, tf.int64))
    pixels = tf.where(is_png, png, tf.where(is_bmp, bmp, jpeg))
    return tf.reduce_any(tf.stack([is_png, is_jpeg, is_bmp])), pixels


class ServingModule(tf.Module):
    """The model with preprocessing and the test-time protocol, as two serving signatures.

    ``max_pixels`` bounds every request before anything is allocated for it (see the module docstring);
    ``classes`` (a ``ClassList``) travel with the model as variables and an asset file.
    """

    def __init__(self, model: DeepLabLargeFOV, scales: Sequence[float] = (1.0,), flip: bool = False,
                 pad_to: Optional[int] = None, crf: Optional[CRFParams] = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, classes=None, assets_dir: Optional[str] = None):
        super().__init__(name="deeplab_lfov_serving")
        self.model = model
        self.scales, self.flip, self.pad_to = tuple(float(s) for s in scales), bool(flip), pad_to
        self.crf = crf
        self.max_pixels = int(max_pixels)
        if classes is not None:
            names = classes.names_for(model.num_classes)
            self.class_names = tf.Variable(names, trainable=False, name="class_names")
            self.class_colors = tf.Variable(np.asarray(classes.colors[:len(names)], np.uint8), trainable=False,
                                            name="class_colors")
            if assets_dir:
                path = os.path.join(assets_dir, CLASSES_TXT)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(classes.to_text())
                self.classes_file = tf.saved_model.Asset(path)

    def _limit_message(self, what: str) -> str:
        return (f"{what}: more than {self.max_pixels:,} pixels in one request, the limit this model was exported "
                f"with (util/export_model.py --max_pixels); downscale the image or split the batch")

    def _probabilities(self, rgb: tf.Tensor) -> tf.Tensor:
        probs = test_time_probabilities(self.model, preprocess_tensor(rgb), scales=self.scales, flip=self.flip,
                                        pad_to=self.pad_to)
        if self.crf is not None:  # the TensorFlow dense CRF, image by image
            probs = tf.map_fn(lambda pair: dense_crf(pair[0], pair[1], self.crf), (rgb, probs),
                              fn_output_signature=tf.float32)
        return probs

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        shape = tf.cast(tf.shape(images), tf.int64)
        check = tf.debugging.assert_less_equal(shape[0] * shape[1] * shape[2], tf.constant(self.max_pixels, tf.int64),
                                               message=self._limit_message("images (N x H x W)"))
        with tf.control_dependencies([check]):
            probabilities = self._probabilities(tf.identity(images))
        labels = tf.cast(tf.argmax(probabilities, axis=-1), tf.uint8)
        return {"labels": labels, "probabilities": probabilities}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def segment_encoded(self, image_bytes: tf.Tensor) -> Dict[str, tf.Tensor]:
        def one(encoded):
            known, pixels = declared_pixels(encoded)
            checks = [tf.debugging.Assert(known, ["image_bytes: not a JPEG, PNG or BMP image"]),
                      tf.debugging.assert_less_equal(pixels, tf.constant(self.max_pixels, tf.int64),
                                                     message=self._limit_message("image_bytes (its header's "
                                                                                 "width x height)"))]
            with tf.control_dependencies(checks):  # nothing is decoded before the header passed
                rgb = tf.io.decode_image(tf.identity(encoded), channels=3, expand_animations=False)
            probabilities = self._probabilities(rgb[None])
            labels = tf.cast(tf.argmax(probabilities, axis=-1), tf.uint8)[0]
            return tf.io.encode_png(labels[..., None])
        return {"labels_png_bytes": tf.map_fn(one, image_bytes, fn_output_signature=tf.string)}

    def tflite_function(self, size: int):
        """The concrete function converted to TFLite: RGB float32 ``images`` [1, S, S, 3] -> ``labels``,
        ``probabilities``."""
        def segment(images):
            net_inputs = tf.reverse(images, axis=[-1]) - tf.constant(IMG_MEAN)
            probabilities = test_time_probabilities(self.model, net_inputs, scales=self.scales, flip=self.flip)
            return {"labels": tf.cast(tf.argmax(probabilities, axis=-1), tf.uint8), "probabilities": probabilities}
        return tf.function(segment).get_concrete_function(tf.TensorSpec([1, size, size, 3], tf.float32,
                                                                         name="images"))


def save_saved_model(module: ServingModule, path: str) -> str:
    """Write the SavedModel at ``path`` (a folder)."""
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve,
                                                  "segment_encoded": module.segment_encoded})
    return path


# -------------------------------------------------------------------------------------------- TFLite
def tflite_name(size: int, quantization: str) -> str:
    return f"deeplab_lfov_{size}x{size}_{quantization}.tflite"


def labels_name(tflite: str) -> str:
    """The labels file beside a ``.tflite``: one class name per line, line i = class i."""
    return tflite[:-len(".tflite")] + ".labels.txt"


def _name_signature_tensors(flatbuffer: bytes) -> bytes:
    """The flatbuffer with its signature's tensors named as the signature names them (``images``,
    ``labels``, ``probabilities`` instead of ``serving_default_images:0``, ``PartitionedCall:1``)."""
    try:
        from tensorflow.lite.tools import flatbuffer_utils
    except ImportError:  # the signature names are there anyway
        return flatbuffer
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    for signature in model.signatureDefs or []:
        tensors = model.subgraphs[signature.subgraphIndex].tensors
        for tensor in list(signature.inputs or []) + list(signature.outputs or []):
            tensors[tensor.tensorIndex].name = tensor.name
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def convert_tflite(module: ServingModule, size: int, quantization: str) -> bytes:
    """The TFLite flatbuffer of ``module`` at ``size`` x ``size`` with the given weight quantisation."""
    if quantization not in QUANTIZATIONS:
        raise DeepLabError(f"--tflite_quantize: unknown quantisation {quantization!r} ({', '.join(QUANTIZATIONS)})")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.tflite_function(size)], module)
    if quantization in ("float16", "dynamic"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return _name_signature_tensors(converter.convert())


def fit_to(rgb: np.ndarray, size: int) -> np.ndarray:
    """``rgb`` itself if it fits in ``size`` x ``size``, else downscaled to fit (bilinear, aspect ratio kept)."""
    height, width = rgb.shape[:2]
    if max(height, width) <= size:
        return rgb
    scale = size / max(height, width)
    return np.asarray(Image.fromarray(rgb).resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                                  Image.BILINEAR))


def tflite_interpreter(path: str, threads: Optional[int] = None):
    """A TFLite interpreter of the file at ``path``, its tensors allocated: LiteRT's (``ai_edge_litert``,
    ``requirements-tflite.txt``), else TensorFlow's ``tf.lite.Interpreter`` (deprecated and due to leave
    TensorFlow; the same API).  TensorFlow's is also the fallback when LiteRT cannot allocate the file (an
    older LiteRT than the converter that wrote it: an operation version it does not know)."""
    threads = threads or os.cpu_count()
    try:
        from ai_edge_litert.interpreter import Interpreter as LiteRT
    except ImportError:
        LiteRT = None
    problem = "running a .tflite file needs the LiteRT interpreter, which this TensorFlow no longer carries: " \
              "pip install ai-edge-litert"
    if LiteRT is not None:
        interpreter = LiteRT(model_path=path, num_threads=threads)
        try:
            interpreter.allocate_tensors()
            return interpreter
        except (RuntimeError, ValueError) as e:
            problem = f"LiteRT cannot run this file ({' '.join(str(e).split())}); a newer ai-edge-litert may"
    tf_lite = getattr(tf.lite, "Interpreter", None)
    if tf_lite is None:
        raise DeepLabError(f"{path}: {problem}") from None
    interpreter = tf_lite(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


class TFLiteSegmenter:
    """Runs an exported ``.tflite`` on RGB images of any size; probabilities at the image's size."""

    def __init__(self, path: str, threads: Optional[int] = None):
        from ..core.runtime import quiet_stderr
        with quiet_stderr():  # the interpreter's XNNPACK line (and tf.lite's deprecation notice)
            self.interpreter = tflite_interpreter(path, threads)
        self.input = self.interpreter.get_input_details()[0]
        outputs = self.interpreter.get_output_details()  # 'probabilities' (older files have no 'labels')
        self.output = next((o for o in outputs if o["name"] == "probabilities"),
                           next((o for o in outputs if len(o["shape"]) == 4), outputs[0]))
        self.size = int(self.input["shape"][1])
        self._quiet = quiet_stderr  # the first invoke announces the delegate

    def fit(self, rgb: np.ndarray) -> np.ndarray:
        """The image itself if it fits in S x S, else downscaled to fit (aspect ratio kept)."""
        return fit_to(rgb, self.size)

    def probabilities_of_fitted(self, small: np.ndarray) -> np.ndarray:
        """Probabilities of an image that fits in S x S (see ``fit``), at its size."""
        canvas = np.empty((1, self.size, self.size, 3), np.float32)
        canvas[:] = IMG_MEAN[::-1]  # the mean colour in RGB: zero once the model subtracts the mean
        canvas[0, :small.shape[0], :small.shape[1]] = small
        self.interpreter.set_tensor(self.input["index"], canvas)
        with self._quiet():
            self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])[0, :small.shape[0], :small.shape[1]]

    def probabilities(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, C) probabilities of an RGB uint8 image of any size."""
        from .collection import upsample_rows
        small = self.fit(rgb)
        probs = self.probabilities_of_fitted(small)
        if small is rgb:
            return probs
        return np.concatenate([block for _, block in upsample_rows(probs, *rgb.shape[:2])])

    def labels(self, rgb: np.ndarray) -> np.ndarray:
        return np.argmax(self.probabilities(rgb), axis=-1).astype(np.uint8)


# ------------------------------------------------------------------------------------------ verifying
def _agreement(pairs) -> float:
    same = total = 0
    for ours, reference in pairs:
        same += int(np.sum(ours == reference))
        total += reference.size
    return same / max(total, 1)


def reference_labels(predictor: Predictor, images: Sequence[np.ndarray], crf: Optional[CRFParams] = None):
    """The in-process labels of ``images``: the predictor's, refined by the TensorFlow CRF if given."""
    if crf is None:
        return [predictor.labels(rgb) for rgb in images]
    from ..crf.tf_crf import TFDenseCRF
    refine = TFDenseCRF(crf)
    return [refine(rgb, predictor.probabilities(rgb)).argmax(-1) for rgb in images]


def _timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def _over_limit_png(max_pixels: int) -> bytes:
    """A 33-byte PNG header declaring one pixel more than ``max_pixels`` (and no pixel data)."""
    import struct
    import zlib
    width = max_pixels + 1
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, 1, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)


def saved_model_agreement(path: str, references: Sequence[np.ndarray], images: Sequence[np.ndarray],
                          max_pixels: Optional[int] = None) -> Dict[str, float]:
    """Agreement of a loaded SavedModel's labels with the in-process ``references``, through both signatures,
    and ``latency`` (median seconds of one ``serving_default`` call on a check image).

    ``segment_encoded`` is sent lossless PNG bytes of the same pixels (JPEG decoders differ slightly).  With
    ``max_pixels``, a PNG header declaring one pixel more must be refused (``refuses_over_limit``: 1 or 0).
    """
    loaded = tf.saved_model.load(path)
    serve, encoded = loaded.signatures["serving_default"], loaded.signatures["segment_encoded"]
    direct, seconds = [], []
    for rgb in images:
        result, took = _timed(lambda x: serve(images=tf.constant(x[None]))["labels"].numpy()[0], rgb)
        direct.append(result)
        seconds.append(took)
    pngs = [tf.io.encode_png(tf.constant(rgb)).numpy() for rgb in images]
    decoded = [tf.io.decode_png(encoded(image_bytes=tf.constant([png]))["labels_png_bytes"][0]).numpy()[..., 0]
               for png in pngs]
    result = {"serving_default": _agreement(zip(direct, references)),
              "segment_encoded": _agreement(zip(decoded, references)),
              "latency": statistics.median(seconds) if seconds else 0.0}
    if max_pixels is not None:
        try:
            encoded(image_bytes=tf.constant([_over_limit_png(max_pixels)]))
            result["refuses_over_limit"] = 0.0
        except tf.errors.InvalidArgumentError:
            result["refuses_over_limit"] = 1.0
    return result


def _tflite_references(predictor: Predictor, images: Sequence[np.ndarray], size: int):
    """(images fitted to S x S, the in-process labels of each, padded to S as the TFLite file pads)."""
    fitted = [fit_to(rgb, size) for rgb in images]
    reference = Predictor(predictor.model, scales=predictor.scales, flip=predictor.flip, pad_to=size)
    return fitted, [reference.labels(small) for small in fitted]


def tflite_agreement(path: str, predictor: Predictor, images: Sequence[np.ndarray],
                     references: Optional[Tuple[List[np.ndarray], List[np.ndarray]]] = None) -> float:
    """Agreement of a ``.tflite`` (run through ``TFLiteSegmenter``) with ``predictor`` padded to its size."""
    return _tflite_check(path, predictor, images, references)[0]


def _tflite_check(path: str, predictor: Predictor, images: Sequence[np.ndarray], references=None):
    """(agreement, median seconds of one invoke) of a ``.tflite``."""
    segmenter = TFLiteSegmenter(path)
    fitted, expected = references or _tflite_references(predictor, images, segmenter.size)
    ours, seconds = [], []
    for small in fitted:
        probs, took = _timed(segmenter.probabilities_of_fitted, small)
        ours.append(probs.argmax(-1))
        seconds.append(took)
    return _agreement(zip(ours, expected)), statistics.median(seconds) if seconds else 0.0


def check_images(folder: Optional[str], limit: int = 8) -> List[np.ndarray]:
    """The images exports are verified on: ``folder``'s first ``limit`` images, else synthetic ones."""
    from ..data.images import read_image
    if folder:
        from ..data.inputs import collect
        items = collect(folder).items  # FIFOs, name clashes and files that are not images are left out
        if not items:
            raise DeepLabError(f"--check_images {folder}: no readable images there")
        return [read_image(item.path) for item in items[:limit]]
    from ..data.sample_data import make_pair
    rng = np.random.RandomState(2016)
    return [make_pair(rng)[0] for _ in range(limit)]


# ------------------------------------------------------------------------------------------ exporting
@dataclasses.dataclass
class Artifact:
    """One exported file or folder: what its verification found, and whether it was published."""

    name: str  # "saved_model", "deeplab_lfov_513x513_none.tflite"
    kind: str  # "saved_model" or the TFLite quantisation
    need: float
    agreement: Optional[float] = None  # the lowest over its signatures
    details: Dict[str, float] = dataclasses.field(default_factory=dict)
    size: Optional[int] = None  # bytes
    latency: Optional[float] = None  # median seconds of one check image
    published: bool = False
    reason: str = ""  # why it was not published
    info: Dict[str, object] = dataclasses.field(default_factory=dict)  # its entry of model.json


@dataclasses.dataclass
class ExportReport:
    """What ``export_model`` did: the artifacts in order, the side files written, leftovers cleaned."""

    output_dir: str
    artifacts: List[Artifact]
    files: List[str] = dataclasses.field(default_factory=list)
    cleaned: List[str] = dataclasses.field(default_factory=list)
    problems: List[str] = dataclasses.field(default_factory=list)  # side files that could not be written

    @property
    def failed(self) -> List[Artifact]:
        return [a for a in self.artifacts if not a.published]


def minimum_agreements(config: ExportConfig) -> Dict[str, float]:
    """The threshold of each artifact kind: ``MIN_AGREEMENT``, then ``--min_agreement``."""
    need = dict(MIN_AGREEMENT)
    if config.precision != "fp32":
        need["saved_model"] = REDUCED_PRECISION_AGREEMENT
    need.update(dict(config.min_agreement))
    return need


class _DirectoryLock:
    """An exclusive ``flock`` on the output folder itself for the export (no lock file is left)."""

    def __init__(self, directory: str):
        self.directory = directory
        self.fd: Optional[int] = None

    def __enter__(self):
        try:
            os.makedirs(self.directory, exist_ok=True)
            self.fd = os.open(self.directory, os.O_RDONLY)
        except OSError as e:
            raise DeepLabError(f"{self.directory}: --output_dir is not writable ({e.strerror or e})") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self.fd)
            self.fd = None
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise DeepLabError(f"{self.directory}: --output_dir is in use by another export; wait for it to "
                                   f"end or use another --output_dir") from None
            raise DeepLabError(f"{self.directory}: cannot lock --output_dir ({e.strerror or e})") from None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _write_reason(error: BaseException) -> str:
    if isinstance(error, OSError):
        return f"cannot write it ({error.strerror or error})"
    text = str(getattr(error, "message", "") or error).strip().splitlines()
    return f"cannot write it ({text[0] if text else type(error).__name__})"


def _too_low(name: str, kind: str, agreement: float, need: float) -> str:
    accept = max(0.0, np.floor(agreement * 1000) / 1000)
    return (f"{name} agrees with the evaluated model on {100 * agreement:.3f}% of pixels, below its {100 * need:g}% "
            f"(--min_agreement {kind}={accept:g} accepts it)")


def _write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _stage(output_dir: str) -> str:
    return tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=output_dir)


def _publish_into(output_dir: str, staged: str, name: str) -> None:
    """Move ``staged`` to ``output_dir/name`` in one step; the version it replaces is removed after."""
    old = publish(staged, os.path.join(output_dir, name))
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _export_saved_model(config: ExportConfig, predictor: Predictor, images, need: float, classes,
                        log: Callable[[str], None]) -> Artifact:
    artifact = Artifact("saved_model", "saved_model", need)
    staged = _stage(config.output_dir)
    try:
        started = time.time()
        crf = config.crf_params()
        try:
            module = ServingModule(predictor.model, config.scales, config.flip, config.pad_to, crf,
                                   max_pixels=config.max_pixels, classes=classes, assets_dir=staged)
            path = save_saved_model(module, os.path.join(staged, "saved_model"))
        except (OSError, tf.errors.OpError) as e:  # a full disk, a folder removed
            artifact.reason = _write_reason(e)
            log(f"saved_model: {artifact.reason}")
            return artifact
        found = saved_model_agreement(path, reference_labels(predictor, images, crf), images, config.max_pixels)
        artifact.details = {k: found[k] for k in ("serving_default", "segment_encoded")}
        artifact.agreement, artifact.latency, artifact.size = min(artifact.details.values()), found["latency"], _size(path)
        log(f"saved_model: serving_default {100 * found['serving_default']:.3f}%, segment_encoded "
            f"{100 * found['segment_encoded']:.3f}% of pixels as evaluated (need {100 * need:g}%; "
            f"{time.time() - started:.0f} s)")
        if artifact.agreement < need:
            artifact.reason = _too_low("saved_model", "saved_model", artifact.agreement, need)
        elif not found.get("refuses_over_limit", 1.0):
            artifact.reason = f"saved_model does not refuse an image of more than --max_pixels {config.max_pixels:,}"
        else:
            _publish_into(config.output_dir, path, "saved_model")
            artifact.published = True
        artifact.info = {
            "path": "saved_model", "signatures": {
                "serving_default": {"inputs": {"images": "uint8 [N, H, W, 3] RGB"},
                                    "outputs": {"labels": "uint8 [N, H, W]", "probabilities": "float32 [N, H, W, C]"}},
                "segment_encoded": {"inputs": {"image_bytes": "string [N]: JPEG, PNG or BMP"},
                                    "outputs": {"labels_png_bytes": "string [N]: grayscale PNGs of class indices"}}},
            "max_pixels": config.max_pixels, "class_names": "variable class_names (string [C]), class_colors "
            "(uint8 [C, 3]), assets/classes.txt", "test_time": {"scales": list(config.scales), "flip": config.flip,
                                                                 "pad_to": config.pad_to, "precision": config.precision,
                                                                 "crf": bool(crf)}}
        return artifact
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _export_tflite(config: ExportConfig, module: ServingModule, predictor: Predictor, images, quantization: str,
                   need: float, names: Optional[Sequence[str]], references, log: Callable[[str], None]) -> Artifact:
    """One ``.tflite`` (and its labels file) staged, verified and, if it passes, published."""
    size = config.tflite_size
    name = tflite_name(size, quantization)
    artifact = Artifact(name, quantization, need)
    staged = _stage(config.output_dir)
    try:
        started = time.time()
        path = os.path.join(staged, name)
        try:
            _write_bytes(path, convert_tflite(module, size, quantization))
            if names is not None:
                _write_bytes(os.path.join(staged, labels_name(name)), "".join(f"{n}\n" for n in names).encode())
        except (OSError, tf.errors.OpError) as e:
            artifact.reason = _write_reason(e)
            log(f"{name}: {artifact.reason}")
            return artifact
        artifact.agreement, artifact.latency = _tflite_check(path, predictor, images, references)
        artifact.size = os.path.getsize(path)
        log(f"{name}: {100 * artifact.agreement:.3f}% of pixels as evaluated (need {100 * need:g}%; "
            f"{artifact.size / 1e6:.1f} MB; {time.time() - started:.0f} s)")
        if artifact.agreement < need:
            artifact.reason = _too_low(name, quantization, artifact.agreement, need)
        else:
            if names is not None:  # the labels first: a published file never lacks its labels
                os.replace(os.path.join(staged, labels_name(name)), os.path.join(config.output_dir, labels_name(name)))
            os.replace(path, os.path.join(config.output_dir, name))
            artifact.published = True
        artifact.info = {
            "path": name, "quantization": quantization, "labels_file": labels_name(name) if names is not None else None,
            "signature": "serving_default",
            "input": {"name": "images", "dtype": "float32", "shape": [1, size, size, 3], "channel_order": "RGB",
                      "value_range": [0, 255], "normalisation": "none: the model subtracts the mean itself",
                      "mean_rgb": _MEAN_RGB,
                      "padding": f"the image at the top left of a {size}x{size} canvas filled with mean_rgb (zero "
                                 f"once the mean is subtracted); an image larger than {size} on a side is first "
                                 f"downscaled (bilinear, aspect ratio kept) so that its longer side is {size}"},
            "outputs": {"labels": {"dtype": "uint8", "shape": [1, size, size]},
                        "probabilities": {"dtype": "float32", "shape": [1, size, size, module.model.num_classes]}},
            "postprocessing": "crop the outputs to the image's region of the canvas; resize the probabilities to the "
                              "image's size (bilinear) and take their argmax for full-size labels",
            "test_time": {"scales": list(config.scales), "flip": config.flip}}
        return artifact
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _float32_copy(model):
    """TFLite is converted from a float32 copy of the net; quantisation decides its precision."""
    from ..model import build_net
    fp32 = build_net(model.model_name, model.num_classes, widths={n: int(c.w.shape[-1]) for n, c in model.convs.items()},
                     msc=model.msc)
    for name, var in fp32.named_variables().items():
        var.assign(model.named_variables()[name])
    return fp32


def _model_json(config: ExportConfig, predictor: Predictor, classes, report: ExportReport) -> Dict[str, object]:
    """``model.json``: this export's published artifacts, and the earlier ones still in the folder."""
    path = os.path.join(config.output_dir, MODEL_JSON)
    try:
        with open(path, encoding="utf-8") as f:
            previous = json.load(f)
        earlier = previous.get("artifacts", {}) if isinstance(previous, dict) else {}
    except (OSError, ValueError):
        earlier = {}
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    model = predictor.model
    source = {"weights": os.path.abspath(config.model_weights), "model": getattr(model, "model_name", None),
              "msc": getattr(model, "msc", None), "num_classes": int(model.num_classes)}
    artifacts = {name: entry for name, entry in earlier.items()
                 if isinstance(entry, dict) and os.path.exists(os.path.join(config.output_dir, name))}
    for artifact in report.artifacts:
        if artifact.published:
            artifacts[artifact.name] = {**artifact.info, "exported": now, **source,
                                        "agreement": round(artifact.agreement, 6), "needed": artifact.need,
                                        "agreement_by_signature": {k: round(v, 6) for k, v in artifact.details.items()}
                                        or None, "size_bytes": artifact.size,
                                        "latency_seconds": round(artifact.latency, 4)}
    names = classes.names_for(model.num_classes) if classes is not None else None
    return {
        "about": "DeepLab (arXiv:1606.00915) exported by deeplab_lfov util/export_model.py; see README, Deploy",
        "classes": None if names is None else {
            "names": names, "colors": np.asarray(classes.colors[:len(names)]).astype(int).tolist(), "file": CLASSES_TXT},
        "preprocessing": {"channel_order": "RGB", "value_range": [0, 255], "mean_rgb": _MEAN_RGB,
                          "inside_the_model": "RGB to BGR and the mean subtraction: send plain RGB values"},
        "artifacts": artifacts,
    }


def _json_text(value) -> str:
    """JSON indented by object, with each list of plain values on one line."""
    flat: List[str] = []

    def mark(node):
        if isinstance(node, dict):
            return {k: mark(v) for k, v in node.items()}
        if isinstance(node, list):
            if all(not isinstance(v, (dict, list)) for v in node):
                flat.append(json.dumps(node, ensure_ascii=False))
                return f"@@list{len(flat) - 1}@@"
            return [mark(v) for v in node]
        return node

    text = json.dumps(mark(value), indent=1, ensure_ascii=False)
    for i, one_line in enumerate(flat):
        text = text.replace(f'"@@list{i}@@"', one_line, 1)
    return text + "\n"


def export_model(config: ExportConfig, predictor: Predictor, images: Sequence[np.ndarray],
                 log: Callable[[str], None] = print, classes=None) -> ExportReport:
    """Stage, verify and publish each artifact ``config`` asks for, on its own; see the module docstring.

    Every artifact is written to a staging folder inside ``config.output_dir``, loaded back and run on
    ``images``; its pixel agreement with ``predictor`` (the in-process model, refined by the TensorFlow
    CRF with ``--crf``) must reach its threshold (``minimum_agreements``).  One that passes is published at
    once; one that fails (too low, or not writable: a full disk) is reported and leaves the earlier file
    in place.  Then ``classes.txt`` (``classes``, a ``ClassList``: the model's) and ``model.json``.  The
    folder is locked for the export; folders of interrupted exports are cleaned first.
    """
    need = minimum_agreements(config)
    with _DirectoryLock(config.output_dir):
        report = ExportReport(config.output_dir, [], cleaned=recover_leftovers(config.output_dir, STAGING_PREFIX))
        classes = classes if classes is not None else config.class_list if config.classes else None
        if "saved_model" in config.formats:
            report.artifacts.append(_export_saved_model(config, predictor, images, need["saved_model"], classes, log))
        if "tflite" in config.formats:
            if config.crf:
                log("TFLite files hold no CRF: TFLite lacks the lattice's operations (Unique, sparse products); "
                    "run crf_tf.dense_crf or pydensecrf on their probabilities")
            module = ServingModule(_float32_copy(predictor.model), config.scales, config.flip)
            references = _tflite_references(predictor, images, config.tflite_size)  # once for every quantisation
            names = classes.names_for(predictor.model.num_classes) if classes is not None else None
            for quantization in config.tflite_quantize:
                report.artifacts.append(_export_tflite(config, module, predictor, images, quantization,
                                                       need[quantization], names, references, log))
        if any(a.published for a in report.artifacts):
            side = {}
            if classes is not None:  # the class names and colours travel with the model
                side[CLASSES_TXT] = classes.to_text()
            side[MODEL_JSON] = _json_text(_model_json(config, predictor, classes, report))
            for name, text in side.items():
                path = os.path.join(config.output_dir, name)
                try:
                    write_text_atomic(path, text)
                    report.files.append(path)
                except OSError as e:
                    report.problems.append(f"{path}: cannot write it ({e.strerror or e})")
    return report
