"""Export for serving and phones, verified: SavedModel (TF Serving) and TFLite files.

* SavedModel, preprocessing inside (RGB->BGR, mean), Caffe-exact pooling and Interp, the test-time
  protocol baked in (``predict.test_time_probabilities``, the very function evaluation runs):
  ``serving_default`` takes ``images`` uint8 [N, H, W, 3] RGB of any size and returns ``labels``
  uint8 [N, H, W] and ``probabilities`` float32 [N, H, W, C]; ``segment_encoded`` takes
  ``image_bytes`` string [N] (JPEG or PNG) and returns ``labels_png_bytes`` string [N] (grayscale
  PNGs of class indices).  TF Serving's REST API base64-encodes exactly the string tensors whose
  names end in ``_bytes``, hence both names.  It loads with TensorFlow alone.
* TFLite for a fixed square size S: input float32 [1, S, S, 3] RGB values 0..255, output
  probabilities [1, S, S, C]; ``none`` (fp32), ``float16`` (fp16 weights) or ``dynamic`` (int8
  dynamic-range weights).  ``TFLiteSegmenter`` runs one on an image of any size (padded with the
  mean colour to S, or downscaled first if larger; cropped back; probabilities resized back).
* ``verify_*``: the written files are loaded back and run on check images; the share of pixels
  whose label equals the in-process predictor's is the artifact's agreement.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..core._tf import tf
from ..core.constants import TFLITE_QUANTIZATIONS as QUANTIZATIONS
from ..core.errors import DeepLabError
from ..crf.params import CRFParams
from ..crf.tf_crf import dense_crf
from ..data.images import IMG_MEAN
from ..evaluation.predict import Predictor, preprocess_tensor, test_time_probabilities
from ..model.largefov import DeepLabLargeFOV

if TYPE_CHECKING:  # the settings sit above deploy: only their type is named here
    from ..settings import ExportConfig

__all__ = ["QUANTIZATIONS", "MIN_AGREEMENT", "ServingModule", "save_saved_model", "convert_tflite", "reference_labels",
           "TFLiteSegmenter", "saved_model_agreement", "tflite_agreement", "tflite_name", "export_model"]

# Least share of pixels whose label must equal the in-process predictor's, per artifact.
MIN_AGREEMENT = {"saved_model": 1.0, "none": 0.999, "float16": 0.995, "dynamic": 0.98}


class ServingModule(tf.Module):
    """The model with preprocessing and the test-time protocol, as two serving signatures."""

    def __init__(self, model: DeepLabLargeFOV, scales: Sequence[float] = (1.0,), flip: bool = False,
                 pad_to: Optional[int] = None, crf: Optional[CRFParams] = None):
        super().__init__(name="deeplab_lfov_serving")
        self.model = model
        self.scales, self.flip, self.pad_to = tuple(float(s) for s in scales), bool(flip), pad_to
        self.crf = crf

    def _probabilities(self, rgb: tf.Tensor) -> tf.Tensor:
        probs = test_time_probabilities(self.model, preprocess_tensor(rgb), scales=self.scales, flip=self.flip,
                                        pad_to=self.pad_to)
        if self.crf is not None:  # the TensorFlow dense CRF, image by image
            probs = tf.map_fn(lambda pair: dense_crf(pair[0], pair[1], self.crf), (rgb, probs),
                              fn_output_signature=tf.float32)
        return probs

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        probabilities = self._probabilities(images)
        labels = tf.cast(tf.argmax(probabilities, axis=-1), tf.uint8)
        return {"labels": labels, "probabilities": probabilities}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def segment_encoded(self, image_bytes: tf.Tensor) -> Dict[str, tf.Tensor]:
        def one(encoded):
            rgb = tf.io.decode_image(encoded, channels=3, expand_animations=False)
            probabilities = self._probabilities(rgb[None])
            labels = tf.cast(tf.argmax(probabilities, axis=-1), tf.uint8)[0]
            return tf.io.encode_png(labels[..., None])
        return {"labels_png_bytes": tf.map_fn(one, image_bytes, fn_output_signature=tf.string)}

    def tflite_function(self, size: int):
        """The concrete function converted to TFLite: RGB float32 [1, S, S, 3] -> probabilities."""
        def probabilities(images):
            net_inputs = tf.reverse(images, axis=[-1]) - tf.constant(IMG_MEAN)
            return {"probabilities": test_time_probabilities(self.model, net_inputs, scales=self.scales,
                                                             flip=self.flip)}
        return tf.function(probabilities).get_concrete_function(tf.TensorSpec([1, size, size, 3], tf.float32,
                                                                               name="images"))


def save_saved_model(module: ServingModule, path: str) -> str:
    """Write the SavedModel at ``path`` (a folder)."""
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve,
                                                  "segment_encoded": module.segment_encoded})
    return path


def tflite_name(size: int, quantization: str) -> str:
    return f"deeplab_lfov_{size}x{size}_{quantization}.tflite"


def convert_tflite(module: ServingModule, size: int, quantization: str) -> bytes:
    """The TFLite flatbuffer of ``module`` at ``size`` x ``size`` with the given weight quantisation."""
    if quantization not in QUANTIZATIONS:
        raise DeepLabError(f"--tflite_quantize: unknown quantisation {quantization!r} ({', '.join(QUANTIZATIONS)})")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.tflite_function(size)], module)
    if quantization in ("float16", "dynamic"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


class TFLiteSegmenter:
    """Runs an exported ``.tflite`` on RGB images of any size; probabilities at the image's size."""

    def __init__(self, path: str, threads: Optional[int] = None):
        from ..core.runtime import quiet_stderr
        with quiet_stderr():  # the interpreter's deprecation notice and its XNNPACK line
            self.interpreter = tf.lite.Interpreter(model_path=path, num_threads=threads or os.cpu_count())
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.size = int(self.input["shape"][1])
        self._quiet = quiet_stderr  # the first invoke announces the delegate

    def fit(self, rgb: np.ndarray) -> np.ndarray:
        """The image itself if it fits in S x S, else downscaled to fit (aspect ratio kept)."""
        height, width = rgb.shape[:2]
        if max(height, width) <= self.size:
            return rgb
        scale = self.size / max(height, width)
        return np.asarray(Image.fromarray(rgb).resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                                      Image.BILINEAR))

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


def _agreement(pairs: Iterable) -> float:
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


def saved_model_agreement(path: str, references: Sequence[np.ndarray], images: Sequence[np.ndarray]) -> Dict[str, float]:
    """Agreement of a loaded SavedModel's labels with the in-process ``references``, through both signatures.

    ``segment_encoded`` is sent lossless PNG bytes of the same pixels (JPEG decoders differ slightly).
    """
    loaded = tf.saved_model.load(path)
    serve, encoded = loaded.signatures["serving_default"], loaded.signatures["segment_encoded"]
    direct = [serve(images=tf.constant(rgb[None]))["labels"].numpy()[0] for rgb in images]
    pngs = [tf.io.encode_png(tf.constant(rgb)).numpy() for rgb in images]
    decoded = [tf.io.decode_png(encoded(image_bytes=tf.constant([png]))["labels_png_bytes"][0]).numpy()[..., 0]
               for png in pngs]
    return {"serving_default": _agreement(zip(direct, references)),
            "segment_encoded": _agreement(zip(decoded, references))}


def tflite_agreement(path: str, predictor: Predictor, images: Sequence[np.ndarray]) -> float:
    """Agreement of a ``.tflite`` (run through ``TFLiteSegmenter``) with ``predictor`` padded to its size."""
    segmenter = TFLiteSegmenter(path)
    reference = Predictor(predictor.model, scales=predictor.scales, flip=predictor.flip, pad_to=segmenter.size)
    fitted = [segmenter.fit(rgb) for rgb in images]
    return _agreement((segmenter.probabilities_of_fitted(small).argmax(-1), reference.labels(small))
                      for small in fitted)


def staging_dir(output_dir: str) -> str:
    """A temporary folder inside ``output_dir``: artifacts are moved into place only once verified."""
    os.makedirs(output_dir, exist_ok=True)
    return tempfile.mkdtemp(prefix=".export-", dir=output_dir)


def publish(staged: str, final: str) -> None:
    """Move a verified artifact into place, replacing an older one."""
    if os.path.isdir(final):
        shutil.rmtree(final)
    elif os.path.exists(final):
        os.remove(final)
    os.replace(staged, final)


def check_images(folder: Optional[str], limit: int = 8) -> List[np.ndarray]:
    """The images exports are verified on: ``folder``'s first ``limit`` images, else synthetic ones."""
    from ..data.images import read_image
    from ..data.inputs import gather
    if folder:
        items, _ = gather(folder)
        return [read_image(item.path) for item in items[:limit]]
    from ..data.sample_data import make_pair
    rng = np.random.RandomState(2016)
    return [make_pair(rng)[0] for _ in range(limit)]


def export_model(config: ExportConfig, predictor: Predictor, images: Sequence[np.ndarray],
                 log: Callable[[str], None] = print, classes=None) -> List[Tuple[str, str]]:
    """Stage, verify and publish what ``config`` asks for; returns the published (name, path) pairs.

    Every artifact is written to a staging folder beside ``config.output_dir``, loaded back and run on
    ``images``; its pixel agreement with ``predictor`` (the in-process model, refined by the TensorFlow
    CRF with ``--crf``) must reach ``MIN_AGREEMENT``.  Only when all pass are they moved into
    ``output_dir``; a failure raises ``DeepLabError`` and leaves nothing behind.  ``classes`` (a
    ``ClassList``, the model's) is written beside them as ``classes.txt``.
    """
    staged = staging_dir(config.output_dir)
    published: List[Tuple[str, str]] = []
    strict = config.precision == "fp32"
    try:
        if "saved_model" in config.formats:
            started = time.time()
            crf = config.crf_params()
            module = ServingModule(predictor.model, config.scales, config.flip, config.pad_to, crf)
            path = save_saved_model(module, os.path.join(staged, "saved_model"))
            agreement = saved_model_agreement(path, reference_labels(predictor, images, crf), images)
            need = MIN_AGREEMENT["saved_model"] if strict else 0.995
            log(f"saved_model: serving_default {100 * agreement['serving_default']:.3f}%, segment_encoded "
                f"{100 * agreement['segment_encoded']:.3f}% of pixels as evaluated (need {100 * need:g}%; "
                f"{time.time() - started:.0f} s)")
            if min(agreement.values()) < need:
                raise DeepLabError(f"saved_model: agrees with the evaluated model on only "
                                   f"{100 * min(agreement.values()):.3f}% of pixels; nothing exported")
            published.append(("saved_model", path))
        if "tflite" in config.formats:
            if config.crf:
                log("TFLite files hold no CRF: TFLite lacks the lattice's operations (Unique, sparse products); "
                    "run crf_tf.dense_crf or pydensecrf on their probabilities")
            module = ServingModule(_float32_copy(predictor.model), config.scales, config.flip)
            for quantization in config.tflite_quantize:
                published.append(_export_tflite(module, predictor, images, staged, config.tflite_size, quantization,
                                                log))
        classes = classes if classes is not None else config.class_list if config.classes else None
        if classes is not None:  # the class names and colours travel with the model
            with open(os.path.join(staged, "classes.txt"), "w", encoding="utf-8") as f:
                f.write(classes.to_text())
            published.append(("classes.txt", os.path.join(staged, "classes.txt")))
        for name, path in published:
            publish(path, os.path.join(config.output_dir, name))
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return [(name, os.path.join(config.output_dir, name)) for name, _ in published]


def _float32_copy(model):
    """TFLite is converted from a float32 copy of the net; quantisation decides its precision."""
    from ..model import build_net
    fp32 = build_net(model.model_name, model.num_classes, widths={n: int(c.w.shape[-1]) for n, c in model.convs.items()},
                     msc=model.msc)
    for name, var in fp32.named_variables().items():
        var.assign(model.named_variables()[name])
    return fp32


def _export_tflite(module: ServingModule, predictor: Predictor, images: Sequence[np.ndarray], staged: str, size: int,
                   quantization: str, log: Callable[[str], None]) -> Tuple[str, str]:
    """One ``.tflite`` written into ``staged`` and verified: (name, staged path)."""
    started = time.time()
    name = tflite_name(size, quantization)
    path = os.path.join(staged, name)
    with open(path, "wb") as f:
        f.write(convert_tflite(module, size, quantization))
    agreement = tflite_agreement(path, predictor, images)
    need = MIN_AGREEMENT[quantization]
    log(f"{name}: {100 * agreement:.3f}% of pixels as evaluated (need {100 * need:g}%; "
        f"{os.path.getsize(path) / 1e6:.1f} MB; {time.time() - started:.0f} s)")
    if agreement < need:
        raise DeepLabError(f"{name}: agrees with the evaluated model on only {100 * agreement:.3f}% of "
                           f"pixels (needs {100 * need:g}%); nothing exported")
    return name, path
