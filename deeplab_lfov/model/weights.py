"""Weights in and out, under the classic port's names (``conv1_1/w`` ... ``fc8_voc12/b``) and Caffe's for
the DeepLab-v2 nets (``res2a_branch2a/w``, ``bn2a_branch2a/moving_mean`` ..., ``fc1_voc12_c0/b``).

``load_weights`` reads every form a user may hold and returns ``{name: numpy array}``:

* TensorFlow checkpoints: name-based TF1 ones (V2 ``.index``/``.data`` pairs and the legacy V1
  single file, as the classic ``model.ckpt-init``), this project's training snapshots
  (object-based, ``model/conv1_1/w/.ATTRIBUTES/VARIABLE_VALUE``) and a directory (its latest);
* a ``.caffemodel`` (through ``caffe_import``, no Caffe needed);
* the classic ``net_weights.ckpt`` pickle, through an unpickler that builds numpy arrays and
  nothing else, so a crafted file cannot run code.

DrSleep's tensorflow-deeplab-resnet checkpoints (``deeplab_resnet.ckpt``: ``conv1/weights``,
``bn_conv1/moving_mean``, ``gamma``, ``beta``, ``fc1_voc12_c0/biases``) read as the same names.

``assign_weights`` checks names and shapes against a model and reports every mismatch at once.
``save_weights`` writes a name-based checkpoint readable by both this project and TF1 code, with the
model's name and MSC setting recorded in it; ``weights_record`` reads that record back (or a snapshot
directory's ``run.json``), and ``build_model`` builds the net the weights describe.
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
    "weights_record",
    "resolve_model",
    "save_model",
    "load_model",
    "peek_num_classes",
    "check_classifier_classes",
]

# A weight's name: a layer (conv1_1 ... fc8_voc12 or fc8_<anything>, fc6_1 ..., conv1, res2a_branch2a ...,
# bn_conv1 ..., fc1_voc12_c0 ...) and its variable (w/b, DrSleep's weights/biases, BatchNorm's four).
_NAME = re.compile(r"(?:^|/)((?:conv\d_\d|conv1|fc6(?:_\d)?|fc7(?:_\d)?|fc8[A-Za-z0-9_]*|res\d[a-z0-9]*_branch\w+|"
                   r"fc1_voc12\w*|bn\w+)/(?:w|b|weights|biases|moving_mean|moving_variance|gamma|beta))"
                   r"(?:/\.ATTRIBUTES/VARIABLE_VALUE)?$")
_TF1_SUFFIX = {"weights": "w", "biases": "b"}  # DrSleep's (slim) names -> ours

# The model record every checkpoint this project writes carries (string tensors).
_RECORD = {"model": "_deeplab/model", "msc": "_deeplab/msc", "classes": "_deeplab/classes"}
MAX_ARRAY_BYTES = 2 * 1024 ** 3  # one weight array; DeepLab's largest (fc6 of VGG-16 at 4096 wide) is 411 MB
CLASSES_FILE = "classes.json"  # a snapshot directory's classes (its object-based snapshots carry none)
MAX_RECORDED_CLASSES = 65536


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
            found = super().find_class(module, name)
            return _bounded_reconstruct(found) if name == "_reconstruct" else found
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")


def _bounded_reconstruct(reconstruct):
    """numpy's ``_reconstruct(subtype, shape, dtype)`` allocates ``shape`` before any data is read: a
    100-byte pickle can ask for gigabytes.  The declared size is checked first."""
    def guarded(subtype, shape, dtype):
        try:
            count = int(np.prod([int(d) for d in shape], dtype=np.float64)) if shape else 1
            itemsize = np.dtype(dtype).itemsize
        except (TypeError, ValueError) as e:
            raise pickle.UnpicklingError(f"a malformed array header ({e})") from None
        if count * itemsize > MAX_ARRAY_BYTES:
            raise pickle.UnpicklingError(f"an array declares {count:,} elements of {itemsize} bytes; refusing arrays "
                                         f"over {MAX_ARRAY_BYTES:,} bytes")
        return reconstruct(subtype, shape, dtype)
    return guarded


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
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()):
        raise DeepLabError(f"{path}: expected a dict of name -> numpy array (the classic net_weights.ckpt)")
    for key, value in obj.items():
        if value.dtype.kind not in "fiu":  # object, string, structured ... arrays are no weights
            raise DeepLabError(f"{path}: {key[:60]} holds {value.dtype} values, not numbers; expected the classic "
                               f"net_weights.ckpt (name -> float array)")
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
    match = re.match(r"(.+)\.(?:index|data-\d{5}-of-\d{5})$", path)
    if match and os.path.exists(match.group(1) + ".index"):  # one of a checkpoint's files: its prefix
        return match.group(1)
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
            layer, variable = match.group(1).rsplit("/", 1)
            name = f"{layer}/{_TF1_SUFFIX.get(variable, variable)}"
            if name in keys:
                raise DeepLabError(f"{path}: two variables map to {name}; is it a checkpoint of one model?")
            keys[name] = key
    if not keys:
        raise DeepLabError(f"{path}: no DeepLab variables (conv1_1/w ... fc8_voc12/b) in this checkpoint")
    return reader, keys


def _read_tf_checkpoint(path: str) -> Dict[str, np.ndarray]:
    reader, keys = _open_tf_checkpoint(path)
    _check_declared_tensors(path, reader, keys)
    try:
        return {name: np.asarray(reader.get_tensor(key), np.float32) for name, key in keys.items()}
    except (tf.errors.OpError, ValueError, RuntimeError, IndexError, MemoryError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DeepLabError(f"{path}: the checkpoint's data cannot be read ({first}); the file is truncated or "
                           f"corrupt") from None


def _check_declared_tensors(path: str, reader, keys: Mapping[str, str]) -> None:
    """Before any tensor is read (reading allocates what the index declares): every weight is a float
    tensor of a bounded size, and together they fit in the checkpoint's data files."""
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    total = 0
    for name, key in keys.items():
        dtype = dtypes[key]
        if not dtype.is_floating:
            raise DeepLabError(f"{path}: {name} holds {dtype.name} values, not a weight tensor")
        nbytes = int(np.prod(shapes[key], dtype=np.float64)) * dtype.size
        if nbytes > MAX_ARRAY_BYTES:
            raise DeepLabError(f"{path}: {name} declares {list(shapes[key])} ({nbytes:,} bytes); refusing tensors "
                               f"over {MAX_ARRAY_BYTES:,} bytes")
        total += nbytes
    stored = sum(os.path.getsize(f) for f in _data_files(path))
    if stored and total > stored:
        raise DeepLabError(f"{path}: the index declares {total:,} bytes of weights but the data files hold "
                           f"{stored:,}: the checkpoint is truncated or corrupt")


def _data_files(path: str):
    """The data files of a V2 checkpoint prefix (``PREFIX.data-00000-of-00001`` ...), or the V1 file."""
    directory, base = os.path.split(os.path.abspath(path))
    found = [os.path.join(directory, f) for f in os.listdir(directory or ".")
             if re.fullmatch(re.escape(base) + r"\.data-\d{5}-of-\d{5}", f)]
    return found or ([path] if os.path.isfile(path) else [])


def checkpoint_shapes(path: str) -> Dict[str, Tuple[int, ...]]:
    """``{classic name: shape}`` of a TensorFlow checkpoint, read from its index (no tensor data)."""
    reader, keys = _open_tf_checkpoint(resolve_checkpoint(path))
    shapes = reader.get_variable_to_shape_map()
    return {name: tuple(shapes[key]) for name, key in keys.items()}


def load_weights(path: str) -> Dict[str, np.ndarray]:
    """All weights stored at ``path`` as ``{classic name: float32 array}``."""
    if path.endswith(".caffemodel"):
        from .caffe_import import caffemodel_weights
        return caffemodel_weights(path)
    if _is_pickle(path):
        return load_safe_pickle(path)
    return _read_tf_checkpoint(resolve_checkpoint(path))


def _fc8_name(weights: Mapping[str, np.ndarray]) -> Optional[str]:
    """The one LargeFOV classifier layer of ``weights`` (``fc8_voc12``, or ``fc8_<anything>``), if any."""
    names = sorted({k.split("/")[0] for k in weights if k.startswith("fc8") and not re.match(r"fc8_voc12_\d$",
                                                                                               k.split("/")[0])})
    if len(names) > 1:
        raise DeepLabError(f"several classifier layers in the weights: {', '.join(names)}")
    return names[0] if names else None


def widths_from_weights(weights: Mapping[str, object], source: str = "weights") -> Tuple[Dict[str, int], Optional[int]]:
    """Conv widths and number of classes that a set of weights implies (the classifier may be absent).

    Values are arrays or bare shapes (as ``checkpoint_shapes`` gives).
    """
    from . import describe_weights
    shapes = {k: tuple(getattr(v, "shape", v)) for k, v in _with_voc12_classifier(weights).items()}
    _, widths, num_classes = describe_weights(shapes, source=source)
    return widths, num_classes


def _with_voc12_classifier(weights: Mapping[str, object]) -> Dict[str, object]:
    """LargeFOV weights whose classifier has another ``fc8_*`` name (the V1 release's ``fc8_pascal``...)
    under ``fc8_voc12``."""
    weights = dict(weights)
    fc8 = _fc8_name(weights)
    if fc8 and fc8 != "fc8_voc12":
        for suffix in ("w", "b"):
            if f"{fc8}/{suffix}" in weights:
                weights[f"fc8_voc12/{suffix}"] = weights.pop(f"{fc8}/{suffix}")
    return weights


def assign_weights(model, weights: Mapping[str, np.ndarray], *, skip_last: bool = False,
                   source: str = "weights") -> None:
    """Copy ``weights`` into ``model``; every missing or mis-shaped variable is reported at once.

    ``skip_last`` leaves the classifier (``model.classifier_layers``: fc8, each ASPP branch's fc8, or
    ResNet's ``fc1_voc12_c*``) as initialised (``--not_restore_last``: a new number of classes).  A
    LargeFOV classifier stored under another ``fc8*`` name is accepted for ``fc8_voc12``.
    """
    weights = _with_voc12_classifier(weights)
    classifier = tuple(getattr(model, "classifier_layers", ("fc8_voc12",)))
    problems = []
    pending = []
    for name, var in model.named_variables().items():
        if skip_last and name.split("/")[0] in classifier:
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
            p.split("/")[0] in classifier for p in problems) else ""
        raise DeepLabError(f"{source}: does not fit the model: {'; '.join(problems[:8])}"
                           f"{f' (and {len(problems) - 8} more)' if len(problems) > 8 else ''}{hint}")
    for var, value in pending:
        var.assign(value)


def weights_record(path: str) -> Dict[str, object]:
    """What a weights file records: ``{"model": name, "msc": bool, "classes": ClassList}`` (any may be absent).

    Checkpoints written by ``save_weights`` carry it; a training snapshot is described by its
    directory's ``run.json`` and ``classes.json``; caffemodels and pickles record nothing (their layers
    still tell the family, see ``resolve_model``; the converted checkpoint records VOC's classes).
    """
    if path.endswith(".caffemodel") or _is_pickle(path):
        return {}
    prefix = resolve_checkpoint(path)
    record: Dict[str, object] = {}
    raw: Dict[str, str] = {}
    try:
        reader = tf.train.load_checkpoint(prefix)
        keys = reader.get_variable_to_shape_map()
        for field, key in _RECORD.items():
            if key in keys and keys[key] == []:  # a scalar string; anything else is not our record
                value = reader.get_tensor(key)
                raw[field] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    except (tf.errors.OpError, ValueError, RuntimeError):
        return {}
    if "model" in raw:
        record["model"] = raw["model"]
    if "msc" in raw:
        record["msc"] = raw["msc"] == "1"
    if "classes" in raw:
        record["classes"] = classes_from_json(raw["classes"], prefix)
    beside = os.path.join(os.path.dirname(os.path.abspath(prefix)), CLASSES_FILE)
    if "classes" not in record and os.path.isfile(beside):
        try:
            with open(beside, encoding="utf-8") as f:
                record["classes"] = classes_from_json(f.read(), beside)
        except (OSError, UnicodeDecodeError) as e:
            raise DeepLabError(f"{beside}: cannot read the classes the weights were trained with ({e})") from None
    if "model" not in record:
        run = os.path.join(os.path.dirname(os.path.abspath(prefix)), "run.json")
        try:
            with open(run) as f:
                settings = json.load(f).get("settings", {})
        except (OSError, ValueError, AttributeError):
            settings = {}
        if isinstance(settings, dict):
            record.update({k: settings[k] for k in ("model", "msc") if settings.get(k) is not None})
    return record


def classes_to_json(classes) -> str:
    """A ``ClassList`` as the JSON weights record (names and their colours)."""
    return json.dumps({"names": list(classes.names),
                       "colors": np.asarray(classes.colors)[:len(classes.names)].astype(int).tolist()})


def classes_from_json(text: str, source: str):
    """The ``ClassList`` of a classes record, checked (a list of names, an RGB colour each) before use."""
    from ..data.classes import VOC, ClassList
    try:
        data = json.loads(text)
        names, colors = data["names"], data["colors"]
        ok = (isinstance(names, list) and isinstance(colors, list) and 0 < len(names) == len(colors)
              <= MAX_RECORDED_CLASSES and all(isinstance(n, str) and 0 < len(n) <= 200 for n in names)
              and all(isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
                      for c in colors))
    except (ValueError, TypeError, KeyError):
        ok = False
    if not ok:
        raise DeepLabError(f"{source}: the recorded classes are not a list of names with an RGB colour each")
    table = np.array(VOC.colors)
    table[:min(len(colors), 255)] = np.asarray(colors[:255], np.uint8)
    return ClassList(tuple(names), table, source=source)


def resolve_model(shapes: Mapping[str, Tuple[int, ...]], *, model: Optional[str] = None, msc: Optional[bool] = None,
                  record: Optional[Mapping[str, object]] = None, source: str = "weights") -> Tuple[str, bool]:
    """(model name, MSC) for weights of these ``shapes``: ``--model``/``--msc`` if given, else what the
    weights record, else what their layers show (``describe_weights``; MSC as in the paper's recipe).

    A ``--model`` of another family than the weights' layers, or one that contradicts the record,
    is a ``DeepLabError`` naming both.
    """
    from . import MODELS, describe_weights
    record = dict(record or {})
    guess, _, _ = describe_weights(dict(shapes), source=source)

    def family(name: str):
        return MODELS[name].backbone, MODELS[name].head  # ASPP-S and ASPP-L: one family, same shapes
    recorded = record.get("model")
    if recorded is not None and recorded not in MODELS:
        raise DeepLabError(f"{source}: records an unknown model {str(recorded)[:40]!r} ({', '.join(MODELS)})")
    if model and recorded and model != recorded:
        raise DeepLabError(f"{source}: these weights are {recorded} (their record), not --model {model}")
    name = model or recorded or guess
    if family(name) != family(guess):
        raise DeepLabError(f"{source}: these weights hold the {guess} net ({MODELS[guess].description}), not "
                           f"--model {name}")
    if msc is None:
        msc = bool(record["msc"]) if "msc" in record and name == recorded else MODELS[name].msc
    return name, bool(msc)


def build_model(weights: Mapping[str, np.ndarray], num_classes: Optional[int] = None, *,
                skip_last: bool = False, source: str = "weights", model: Optional[str] = None,
                msc: Optional[bool] = None, record: Optional[Mapping[str, object]] = None, classes_hint: str = "",
                **net_kwargs):
    """The net ``weights`` describe (``resolve_model``: its family, widths, MSC), with the weights loaded.

    ``num_classes`` defaults to the classifier's; when given and different from the classifier's, it
    is an error unless ``skip_last`` (``classes_hint`` says what to do, in the caller's flags).
    """
    from ..core.constants import NUM_CLASSES
    from . import build_net
    weights = _with_voc12_classifier(weights)
    shapes = {k: tuple(v.shape) for k, v in weights.items()}
    if not shapes:
        raise DeepLabError(f"{source}: holds no DeepLab layers (conv1_1 ... fc8_voc12, or conv1 ... fc1_voc12_c3)")
    name, msc = resolve_model(shapes, model=model, msc=msc, record=record, source=source)
    widths, stored_classes = widths_from_weights(shapes, source)
    if num_classes is None:
        num_classes = stored_classes or NUM_CLASSES
    elif not skip_last:
        check_classifier_classes(stored_classes, num_classes, source, classes_hint)
    _check_shapes_before_building(name, num_classes, widths, shapes, skip_last, source)
    net = build_net(name, num_classes, widths=widths, msc=msc, **net_kwargs)
    assign_weights(net, weights, skip_last=skip_last, source=source)
    return net


def check_classifier_classes(stored_classes: Optional[int], num_classes: int, source: str, hint: str = "") -> None:
    """Weights whose classifier has ``stored_classes`` outputs (None: no classifier) cannot be loaded whole
    into a net of ``num_classes``: one line saying so, ``hint`` saying what to do in the caller's flags."""
    if stored_classes and num_classes != stored_classes:
        raise DeepLabError(f"{source}: these weights have {stored_classes} classes, not {num_classes}"
                           f"{hint or ' (pass the --classes file they were trained with, or none)'}")


def _check_shapes_before_building(name: str, num_classes: int, widths: Mapping[str, int],
                                  shapes: Mapping[str, Tuple[int, ...]], skip_last: bool, source: str) -> None:
    """The net ``widths`` imply must be of a sane size, and every weight must fit it, before a variable is
    allocated: untrusted weights declaring one very wide layer would otherwise cost gigabytes first."""
    from . import MAX_NET_VALUES, classifier_layers, variable_shapes
    expected = variable_shapes(name, num_classes, widths=widths)
    skipped = set(classifier_layers(name)) if skip_last else set()
    values = sum(int(np.prod(s, dtype=np.float64)) for s in expected.values())
    if values > MAX_NET_VALUES:
        raise DeepLabError(f"{source}: these weights describe a {name} net of {values:,} values (the largest DeepLab "
                           f"net has 44 M); refusing to build it")
    wrong = [f"{n} has shape {list(shapes[n])}, model expects {list(s)}" for n, s in expected.items()
             if n in shapes and tuple(shapes[n]) != s and n.split("/")[0] not in skipped]
    if wrong:
        raise DeepLabError(f"{source}: does not fit a {name} net: {'; '.join(wrong[:4])}"
                           f"{f' (and {len(wrong) - 4} more)' if len(wrong) > 4 else ''}")


def peek_num_classes(path: str) -> Optional[int]:
    """The number of classes a TensorFlow checkpoint's classifier has, from its index alone (no tensor is
    read); None for other weight files, or when it cannot tell (the loader reports that later)."""
    try:
        if path.endswith(".caffemodel") or _is_pickle(path):
            return None
        return widths_from_weights(checkpoint_shapes(path), path)[1]
    except DeepLabError:
        return None


def load_model(path: str, num_classes: Optional[int] = None, *, model: Optional[str] = None,
               msc: Optional[bool] = None, record: Optional[Mapping[str, object]] = None, **net_kwargs):
    """The net stored at ``path`` (any form ``load_weights`` reads), built as its record (``weights_record``,
    read here unless the caller has it) or layers say (``--model``/``--msc`` where given), weights loaded."""
    return build_model(load_weights(path), num_classes, source=path, model=model, msc=msc,
                       record=weights_record(path) if record is None else record, **net_kwargs)


def save_weights(prefix: str, weights: Mapping[str, np.ndarray], *, model: Optional[str] = None,
                 msc: Optional[bool] = None, classes=None) -> str:
    """Write a name-based (TF1-style V2) checkpoint at ``prefix``, atomically; ``model``/``msc`` and the
    ``classes`` (a ``ClassList``: names and colours) are recorded in it as string tensors
    (``_deeplab/model``, ``_deeplab/msc``, ``_deeplab/classes``; TF1 code ignores them).

    The files are written under a temporary prefix in the same directory and renamed into place,
    data first and index last, so a reader never sees an index pointing at a partial file.
    """
    directory = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(directory, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=".tmp-", dir=directory)
    tmp_prefix = os.path.join(tmp_dir, "ckpt")
    try:
        names = list(weights)
        tensors = [tf.constant(np.asarray(weights[n], np.float32)) for n in names]
        for field, value in (("model", model), ("msc", None if msc is None else ("1" if msc else "0")),
                             ("classes", None if classes is None else classes_to_json(classes))):
            if value is not None:
                names.append(_RECORD[field])
                tensors.append(tf.constant(value))
        tf.raw_ops.SaveV2(prefix=tmp_prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors)
        for fname in sorted(os.listdir(tmp_dir), key=lambda s: s.endswith(".index")):
            os.replace(os.path.join(tmp_dir, fname), prefix + fname[len("ckpt"):])
    finally:
        for fname in os.listdir(tmp_dir):
            os.remove(os.path.join(tmp_dir, fname))
        os.rmdir(tmp_dir)
    return prefix


def save_model(prefix: str, model, classes=None) -> str:
    """``save_weights`` of a built net, with its name, MSC setting and ``classes`` recorded."""
    return save_weights(prefix, {k: v.numpy() for k, v in model.named_variables().items()},
                        model=getattr(model, "model_name", None), msc=getattr(model, "msc", None), classes=classes)


def write_skeleton(path: str, weights: Mapping[str, np.ndarray]) -> None:
    """The classic ``net_skeleton`` (list of [name, shape]) as JSON, a format that runs no code."""
    from ..core.files import write_text_atomic
    skeleton = [[name, list(map(int, value.shape))] for name, value in weights.items()]
    write_text_atomic(path, json.dumps(skeleton, indent=1))


@dataclasses.dataclass(frozen=True)
class Conversion:
    """What ``convert_caffemodel`` wrote: the checkpoint prefix, conv layers, parameters, whether the
    classifier was there, and the net."""

    prefix: str
    layers: int  # convolutions
    params: int
    has_classifier: bool
    model: str = "largefov"
    msc: bool = False


def convert_caffemodel(caffemodel: str, output_dir: str, *, pycaffe_path: Optional[str] = None,
                       prototxt: Optional[str] = None, model: Optional[str] = None,
                       msc: Optional[bool] = None) -> Conversion:
    """``util/extract_params.py``: a ``.caffemodel`` to ``OUTPUT_DIR/deeplab_lfov.ckpt`` and ``net_skeleton.json``.

    Read with the protobuf parser (``caffe_import``), or with the user's PyCaffe when ``pycaffe_path`` is
    given; the weights are built into the net they describe first (``--model``/``--msc`` decide where the
    layers cannot: ASPP-S and ASPP-L hold the same shapes), so a file of another net fails here, and the
    checkpoint records that net.
    """
    from .caffe_import import caffemodel_weights, read_with_pycaffe
    if pycaffe_path:
        weights = read_with_pycaffe(caffemodel, pycaffe_path, prototxt)
    else:
        weights = caffemodel_weights(caffemodel)
    from . import classifier_layers
    shapes = {k: tuple(v.shape) for k, v in _with_voc12_classifier(weights).items()}
    classifier = set(classifier_layers(resolve_model(shapes, model=model, msc=msc, source=caffemodel)[0]))
    has_classifier = any(k.split("/")[0] in classifier for k in shapes)
    net = build_model(weights, skip_last=not has_classifier, source=caffemodel, model=model, msc=msc)
    converted = {k: v.numpy() for k, v in net.named_variables().items()
                 if has_classifier or k.split("/")[0] not in classifier}
    try:
        os.makedirs(output_dir, exist_ok=True)
        from ..data.classes import VOC  # the released caffemodels are PASCAL VOC's
        prefix = save_weights(os.path.join(output_dir, "deeplab_lfov.ckpt"), converted, model=net.model_name,
                              msc=net.msc, classes=VOC if has_classifier and net.num_classes == len(VOC) else None)
        write_skeleton(os.path.join(output_dir, "net_skeleton.json"), converted)
    except OSError as e:
        raise DeepLabError(f"{output_dir}: cannot write the checkpoint ({e.strerror or e})") from None
    layers = len({k.split("/")[0] for k in converted if k.endswith("/w")})
    return Conversion(prefix, layers, net.count_params(), has_classifier, net.model_name, net.msc)
