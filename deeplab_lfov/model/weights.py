"""Weights in and out, under the classic port's names (``conv1_1/w`` ... ``fc8_voc12/b``).

``load_weights`` reads every form a user may hold and returns ``{name: numpy array}``:

* TensorFlow checkpoints: name-based TF1 ones (V2 ``.index``/``.data`` pairs and the legacy V1
  single file, as the classic ``model.ckpt-init``), this project's training snapshots
  (object-based, ``model/conv1_1/w/.ATTRIBUTES/VARIABLE_VALUE``) and a directory (its latest);
* a ``.caffemodel`` (through ``caffe_import``, no Caffe needed);
* the classic ``net_weights.ckpt`` pickle, through an unpickler that builds numpy arrays and
  nothing else, so a crafted file cannot run code.

``assign_weights`` checks names and shapes against a model and reports every mismatch at once.
``save_weights`` writes a name-based checkpoint readable by both this project and TF1 code.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import re
import tempfile
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from ..core._tf import tf
from ..core.errors import DeepLabError

__all__ = [
    "convert_caffemodel",
    "Conversion",
    "load_weights",
    "assign_weights",
    "save_weights",
    "write_skeleton",
    "widths_from_weights",
    "build_model",
    "load_safe_pickle",
    "resolve_checkpoint",
    "checkpoint_shapes",
]

# A classic name: a layer (conv1_1 ... fc8_voc12, or fc8_<anything>) and w or b.
_NAME = re.compile(r"(?:^|/)((?:conv\d_\d|fc6|fc7|fc8[A-Za-z0-9_]*)/[wb])(?:/\.ATTRIBUTES/VARIABLE_VALUE)?$")


# ------------------------------------------------------------------------------- safe pickle
class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles containers of numpy arrays; any other global is refused before it is looked up."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # Python 2 pickles store array bytes this way
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")


def load_safe_pickle(path: str) -> Dict[str, np.ndarray]:
    """Read the classic port's ``net_weights.ckpt`` (a dict of name -> numpy array) safely."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        obj = _ArraysOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise DeepLabError(f"{path}: unsafe or invalid pickle ({e}); convert the caffemodel with "
                           f"util/extract_params.py instead") from None
    except Exception as e:  # malformed pickles raise many types
        raise DeepLabError(f"{path}: not a readable weights pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict) or not all(
            isinstance(k, str) and isinstance(v, np.ndarray) and v.dtype != object for k, v in obj.items()):
        raise DeepLabError(f"{path}: expected a dict of name -> numpy array (the classic net_weights.ckpt)")
    return {k: np.asarray(v, np.float32) for k, v in obj.items()}


# ------------------------------------------------------------------------------- checkpoints
def resolve_checkpoint(path: str) -> str:
    """Map a directory to its latest checkpoint and check that a checkpoint prefix exists."""
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:  # no 'checkpoint' state file: accept a single checkpoint in the folder
            prefixes = sorted({f[:-len(".index")] for f in os.listdir(path) if f.endswith(".index")})
            if len(prefixes) != 1:
                raise DeepLabError(f"{path}: directory holds {'no' if not prefixes else 'several'} "
                                   f"TensorFlow checkpoints and no 'checkpoint' file naming the latest")
            latest = os.path.join(path, prefixes[0])
        return latest
    if os.path.exists(path) or os.path.exists(path + ".index"):
        return path
    raise DeepLabError(f"{path}: no such file or checkpoint (looked for {path} and {path}.index)")


def _is_pickle(path: str) -> bool:
    """A pickle starts with a protocol header (0x80, 2..5) or a protocol-0/1 opening opcode, and
    ends with the STOP opcode; TensorFlow's checkpoint files do not look like that."""
    if not os.path.isfile(path) or os.path.getsize(path) < 3:
        return False
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(-1, os.SEEK_END)
        tail = f.read(1)
    opens = (head[:1] == b"\x80" and 2 <= head[1] <= 5) or head[:1] in (b"(", b"}", b"]")
    return opens and tail == b"."


def _open_tf_checkpoint(path: str):
    """(reader, {classic name: checkpoint key}) of a TensorFlow checkpoint, optimizer slots left out."""
    try:
        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DeepLabError(f"{path}: not a readable TensorFlow checkpoint ({first})") from None
    keys = {}
    for key in shapes:
        if "OPTIMIZER_SLOT" in key or "/.OPTIMIZER" in key or key.startswith("optimizer/"):
            continue
        match = _NAME.search(key)
        if match:
            name = match.group(1)
            if name in keys:
                raise DeepLabError(f"{path}: two variables map to {name}; is it a checkpoint of one model?")
            keys[name] = key
    if not keys:
        raise DeepLabError(f"{path}: no DeepLab variables (conv1_1/w ... fc8_voc12/b) in this checkpoint")
    return reader, keys


def _read_tf_checkpoint(path: str) -> Dict[str, np.ndarray]:
    reader, keys = _open_tf_checkpoint(path)
    return {name: np.asarray(reader.get_tensor(key), np.float32) for name, key in keys.items()}


def checkpoint_shapes(path: str) -> Dict[str, Tuple[int, ...]]:
    """``{classic name: shape}`` of a TensorFlow checkpoint, read from its index (no tensor data)."""
    reader, keys = _open_tf_checkpoint(resolve_checkpoint(path))
    shapes = reader.get_variable_to_shape_map()
    return {name: tuple(shapes[key]) for name, key in keys.items()}


def load_weights(path: str) -> Dict[str, np.ndarray]:
    """All weights stored at ``path`` as ``{classic name: float32 array}``."""
    if path.endswith(".caffemodel"):
        from .caffe_import import caffe_to_tf_weights, read_caffemodel
        return caffe_to_tf_weights(read_caffemodel(path)[1])
    if _is_pickle(path):
        return load_safe_pickle(path)
    return _read_tf_checkpoint(resolve_checkpoint(path))


def _fc8_name(weights: Mapping[str, np.ndarray]) -> Optional[str]:
    names = sorted({k.split("/")[0] for k in weights if k.startswith("fc8")})
    if len(names) > 1:
        raise DeepLabError(f"several classifier layers in the weights: {', '.join(names)}")
    return names[0] if names else None


def widths_from_weights(weights: Mapping[str, object]) -> Tuple[Dict[str, int], Optional[int]]:
    """Conv widths and number of classes that a set of weights implies (fc8 may be absent).

    Values are arrays or bare shapes (as ``checkpoint_shapes`` gives).
    """
    from .largefov import conv_layers, layer_table
    widths = {}
    for layer in conv_layers(layer_table()):
        key = f"{layer.name}/w"
        if layer.name.startswith("fc8"):
            fc8 = _fc8_name(weights)
            key = f"{fc8}/w" if fc8 else None
        shape = tuple(getattr(weights[key], "shape", weights[key])) if key in weights else ()
        if len(shape) == 4:
            widths[layer.name] = int(shape[-1])
    return widths, widths.pop("fc8_voc12", None)


def assign_weights(model, weights: Mapping[str, np.ndarray], *, skip_last: bool = False,
                   source: str = "weights") -> None:
    """Copy ``weights`` into ``model``; every missing or mis-shaped variable is reported at once.

    ``skip_last`` leaves fc8 as initialised (``--not_restore_last``: a new number of classes).
    A classifier stored under another ``fc8*`` name is accepted for ``fc8_voc12``.
    """
    weights = dict(weights)
    fc8 = _fc8_name(weights)
    if fc8 and fc8 != "fc8_voc12":
        for suffix in ("w", "b"):
            if f"{fc8}/{suffix}" in weights:
                weights[f"fc8_voc12/{suffix}"] = weights.pop(f"{fc8}/{suffix}")
    problems = []
    pending = []
    for name, var in model.named_variables().items():
        if skip_last and name.startswith("fc8"):
            continue
        if name not in weights:
            problems.append(f"{name} missing")
            continue
        have = tuple(weights[name].shape)
        want = tuple(var.shape)
        if have != want:
            problems.append(f"{name} has shape {list(have)}, model expects {list(want)}")
        else:
            pending.append((var, weights[name]))
    if problems:
        hint = " (use --not_restore_last for a different number of classes)" if all(
            p.startswith("fc8") for p in problems) else ""
        raise DeepLabError(f"{source}: does not fit the model: {'; '.join(problems)}{hint}")
    for var, value in pending:
        var.assign(value)


def build_model(weights: Mapping[str, np.ndarray], num_classes: Optional[int] = None, *,
                skip_last: bool = False, source: str = "weights", **model_kwargs):
    """A ``DeepLabLargeFOV`` whose widths follow ``weights``, with the weights loaded.

    ``num_classes`` defaults to fc8's; when given and different from fc8's, it is an error unless
    ``skip_last``.
    """
    from ..core.constants import NUM_CLASSES
    from .largefov import DeepLabLargeFOV
    widths, stored_classes = widths_from_weights(weights)
    if num_classes is None:
        num_classes = stored_classes or NUM_CLASSES
    if not widths:
        raise DeepLabError(f"{source}: holds no DeepLab-LargeFOV layers (conv1_1 ... fc8_voc12)")
    model = DeepLabLargeFOV(num_classes=num_classes, widths=widths, **model_kwargs)
    assign_weights(model, weights, skip_last=skip_last, source=source)
    return model


def save_weights(prefix: str, weights: Mapping[str, np.ndarray]) -> str:
    """Write a name-based (TF1-style V2) checkpoint at ``prefix``, atomically.

    The files are written under a temporary prefix in the same directory and renamed into place,
    data first and index last, so a reader never sees an index pointing at a partial file.
    """
    directory = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(directory, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=".tmp-", dir=directory)
    tmp_prefix = os.path.join(tmp_dir, "ckpt")
    try:
        names = list(weights)
        tf.raw_ops.SaveV2(prefix=tmp_prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                          tensors=[tf.constant(np.asarray(weights[n], np.float32)) for n in names])
        for fname in sorted(os.listdir(tmp_dir), key=lambda s: s.endswith(".index")):
            os.replace(os.path.join(tmp_dir, fname), prefix + fname[len("ckpt"):])
    finally:
        for fname in os.listdir(tmp_dir):
            os.remove(os.path.join(tmp_dir, fname))
        os.rmdir(tmp_dir)
    return prefix


def write_skeleton(path: str, weights: Mapping[str, np.ndarray]) -> None:
    """The classic ``net_skeleton`` (list of [name, shape]) as JSON, a format that runs no code."""
    from ..core.files import write_text_atomic
    skeleton = [[name, list(map(int, value.shape))] for name, value in weights.items()]
    write_text_atomic(path, json.dumps(skeleton, indent=1))


@dataclasses.dataclass(frozen=True)
class Conversion:
    """What ``convert_caffemodel`` wrote: the checkpoint prefix, layers, parameters, whether fc8 was there."""

    prefix: str
    layers: int
    params: int
    has_classifier: bool


def convert_caffemodel(caffemodel: str, output_dir: str, *, pycaffe_path: Optional[str] = None,
                       prototxt: Optional[str] = None) -> Conversion:
    """``util/extract_params.py``: a ``.caffemodel`` to ``OUTPUT_DIR/deeplab_lfov.ckpt`` and ``net_skeleton.json``.

    Read with the protobuf parser (``caffe_import``), or with the user's PyCaffe when ``pycaffe_path`` is
    given; the weights are built into the net they describe first, so a file of another net fails here.
    """
    from .caffe_import import caffe_to_tf_weights, read_caffemodel, read_with_pycaffe
    if pycaffe_path:
        weights = read_with_pycaffe(caffemodel, pycaffe_path, prototxt)
    else:
        weights = caffe_to_tf_weights(read_caffemodel(caffemodel)[1])
    has_fc8 = any(k.startswith("fc8") for k in weights)
    model = build_model(weights, skip_last=not has_fc8, source=caffemodel)
    converted = {k: v.numpy() for k, v in model.named_variables().items() if has_fc8 or not k.startswith("fc8")}
    try:
        os.makedirs(output_dir, exist_ok=True)
        prefix = save_weights(os.path.join(output_dir, "deeplab_lfov.ckpt"), converted)
        write_skeleton(os.path.join(output_dir, "net_skeleton.json"), converted)
    except OSError as e:
        raise DeepLabError(f"{output_dir}: cannot write the checkpoint ({e.strerror or e})") from None
    return Conversion(prefix, len(converted) // 2, model.count_params(), has_fc8)
