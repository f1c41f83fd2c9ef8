"""Read the weights of a ``.caffemodel`` without Caffe.

A caffemodel is a serialized ``caffe.NetParameter``.  We declare the handful of its messages we
need (names, types and blobs of layers; the field numbers are those of ``caffe.proto``) in a
private descriptor pool and let the ``protobuf`` package parse the file; every other field is
skipped as unknown.  Both layouts are read:

* current: ``NetParameter.layer`` (field 100), ``BlobProto.shape``;
* legacy V1: ``NetParameter.layers`` (field 2, enum layer types), blobs with
  ``num/channels/height/width`` (biases stored as 1x1x1xN).

Files are untrusted input: the size is bounded before reading, every blob's element count is
checked against its declared shape before anything is reshaped, and nothing is executed.

``caffe_to_tf_weights`` maps the blobs to this package's names: convolutions to ``<name>/w`` (HWIO)
and ``<name>/b``, DeepLab-v2 ResNet's BatchNorm/Scale pairs to the four frozen batch-norm tensors
``<bn>/moving_mean``, ``<bn>/moving_variance``, ``<bn>/gamma``, ``<bn>/beta``, and it drops the MSC
caffemodel's shared tower copies after checking them.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from ..core.errors import DeepLabError

__all__ = ["read_caffemodel", "caffe_to_tf_weights", "caffemodel_weights", "read_with_pycaffe", "DEPLOY_PROTOTXT",
           "MAX_CAFFEMODEL_BYTES", "MAX_BLOB_ELEMENTS"]

# The published DeepLab-LargeFOV caffemodel is ~80 MB; VGG-16 with 4096-wide fc layers ~550 MB.
MAX_CAFFEMODEL_BYTES = 2 * 1024 ** 3
MAX_BLOB_ELEMENTS = 512 * 1024 ** 2 // 4  # 512 MB of float32 in one blob

# The LargeFOV deploy net, shipped inside the package (util/deploy.prototxt of a checkout links to it).
DEPLOY_PROTOTXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "largefov_deploy.prototxt")

_F = descriptor_pb2.FieldDescriptorProto


def _message(name: str, fields) -> descriptor_pb2.DescriptorProto:
    msg = descriptor_pb2.DescriptorProto(name=name)
    for field_name, number, ftype, label, type_name in fields:
        f = msg.field.add(name=field_name, number=number, type=ftype, label=label)
        if type_name:
            f.type_name = type_name
    return msg


def _build_classes():
    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    fdp = descriptor_pb2.FileDescriptorProto(
        name="deeplab_lfov/caffe_subset.proto", package="deeplab_lfov_caffe", syntax="proto2")
    fdp.message_type.extend([
        _message("BlobShape", [("dim", 1, _F.TYPE_INT64, rep, None)]),
        _message("BlobProto", [
            ("num", 1, _F.TYPE_INT32, opt, None), ("channels", 2, _F.TYPE_INT32, opt, None),
            ("height", 3, _F.TYPE_INT32, opt, None), ("width", 4, _F.TYPE_INT32, opt, None),
            ("data", 5, _F.TYPE_FLOAT, rep, None),
            ("shape", 7, _F.TYPE_MESSAGE, opt, ".deeplab_lfov_caffe.BlobShape"),
            ("double_data", 8, _F.TYPE_DOUBLE, rep, None)]),
        _message("LayerParameter", [
            ("name", 1, _F.TYPE_STRING, opt, None), ("type", 2, _F.TYPE_STRING, opt, None),
            ("blobs", 7, _F.TYPE_MESSAGE, rep, ".deeplab_lfov_caffe.BlobProto")]),
        # V1LayerParameter.type is an enum in caffe.proto; an int32 reads the same varint.
        _message("V1LayerParameter", [
            ("name", 4, _F.TYPE_STRING, opt, None), ("type", 5, _F.TYPE_INT32, opt, None),
            ("blobs", 6, _F.TYPE_MESSAGE, rep, ".deeplab_lfov_caffe.BlobProto")]),
        _message("NetParameter", [
            ("name", 1, _F.TYPE_STRING, opt, None),
            ("layers", 2, _F.TYPE_MESSAGE, rep, ".deeplab_lfov_caffe.V1LayerParameter"),
            ("layer", 100, _F.TYPE_MESSAGE, rep, ".deeplab_lfov_caffe.LayerParameter")]),
    ])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    descriptor = pool.FindMessageTypeByName("deeplab_lfov_caffe.NetParameter")
    if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.22
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


_NetParameter = _build_classes()

# V1LayerParameter.LayerType values of the layers that carry weights (V1 has no BatchNorm or Scale).
_V1_TYPES = {4: "Convolution", 14: "InnerProduct", 39: "Deconvolution"}


def _blob_array(blob, path: str, layer: str, index: int) -> np.ndarray:
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
    else:
        shape = tuple(int(d) for d in (blob.num, blob.channels, blob.height, blob.width))
    if any(d < 0 for d in shape):
        raise DeepLabError(f"{path}: layer {layer!r} blob {index} has a negative dimension {shape}")
    count = int(np.prod(shape, dtype=np.float64)) if shape else 0
    if count > MAX_BLOB_ELEMENTS:
        raise DeepLabError(f"{path}: layer {layer!r} blob {index} claims {count} elements {shape}; "
                           f"refusing blobs over {MAX_BLOB_ELEMENTS} elements")
    stored = len(blob.data) or len(blob.double_data)
    if stored != count:
        raise DeepLabError(f"{path}: layer {layer!r} blob {index} has {stored} values for shape "
                           f"{shape} ({count} expected): the file is corrupt")
    values = blob.data if len(blob.data) else blob.double_data
    return np.asarray(values, dtype=np.float32).reshape(shape)


def read_caffemodel(path: str, *, types: Optional[Dict[str, str]] = None) -> Tuple[str, Dict[str, List[np.ndarray]]]:
    """Parse a caffemodel into ``(net_name, {layer_name: [blob arrays in Caffe layout]})``.

    Only layers that carry blobs are returned, in file order.  A dict passed as ``types`` receives
    each of those layers' Caffe type (``"Convolution"``, ``"BatchNorm"``, ``"Scale"``; V1 files' enums
    as their names where known).  Raises ``DeepLabError`` for a missing, oversized, truncated or
    malformed file.
    """
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise DeepLabError(f"{path}: cannot read caffemodel: {e.strerror or e}") from None
    if size > MAX_CAFFEMODEL_BYTES:
        raise DeepLabError(f"{path}: {size} bytes is larger than any DeepLab caffemodel "
                           f"({MAX_CAFFEMODEL_BYTES} bytes at most); refusing to read it")
    if size == 0:
        raise DeepLabError(f"{path}: the file is empty, not a caffemodel")
    with open(path, "rb") as f:
        data = f.read()
    net = _NetParameter()
    try:
        net.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise DeepLabError(f"{path}: not a valid caffemodel (truncated or corrupt protobuf: {e})") from None
    del data
    layers: Dict[str, List[np.ndarray]] = {}
    for layer in list(net.layer) + list(net.layers):
        if not layer.blobs:
            continue
        if layer.name in layers:
            raise DeepLabError(f"{path}: layer {layer.name!r} appears twice")
        layers[layer.name] = [_blob_array(b, path, layer.name, i) for i, b in enumerate(layer.blobs)]
        if types is not None:
            types[layer.name] = (_V1_TYPES.get(layer.type, str(layer.type)) if isinstance(layer.type, int)
                                 else layer.type)
    if not layers:
        raise DeepLabError(f"{path}: no layer with weights found; is this a caffemodel "
                           f"(and not a prototxt or solverstate)?")
    return net.name, layers


# The shared towers of DeepLab-v2's MSC caffemodel: conv1_res05, bn_conv1_res075, fc1_voc12_res05_c0 ...
_MSC_COPY = re.compile(r"_res0(?:5|75)(?=_|$)")


def _drop_msc_copies(layers: Dict[str, List[np.ndarray]], source: str) -> Dict[str, List[np.ndarray]]:
    """The layers without the MSC towers' copies, each checked equal to its original first.

    The released ``DeepLabv2_ResNet101`` MSC caffemodel repeats every layer for the 0.5 and 0.75
    towers (Caffe shares them by ``param { name }``); a copy that differs from its original would mean
    the towers were not one net, which ``MSC`` cannot represent.
    """
    kept = {name: blobs for name, blobs in layers.items() if not _MSC_COPY.search(name)}
    for name, blobs in layers.items():
        if name in kept:
            continue
        original = _MSC_COPY.sub("", name, count=1)
        if original not in kept:
            raise DeepLabError(f"{source}: layer {name!r} looks like a multi-scale copy of {original!r}, "
                               f"which the file does not hold")
        same = len(blobs) == len(kept[original]) and all(
            a.shape == b.shape and np.array_equal(a, b) for a, b in zip(blobs, kept[original]))
        if not same:
            raise DeepLabError(f"{source}: layer {name!r} differs from {original!r}: the multi-scale towers of "
                               f"this caffemodel do not share their weights")
    return kept


def _vector(blob: np.ndarray, source: str, layer: str, index: int) -> np.ndarray:
    if sum(d > 1 for d in blob.shape) > 1:
        raise DeepLabError(f"{source}: layer {layer!r} blob {index} has shape {tuple(blob.shape)}; "
                           f"a BatchNorm or Scale blob is a vector")
    return blob.reshape(-1)


def _batch_norm(name: str, blobs: List[np.ndarray], source: str) -> Dict[str, np.ndarray]:
    """Caffe BatchNorm blobs (mean * f, variance * f, [f]) -> ``<bn>/moving_mean``, ``<bn>/moving_variance``."""
    vectors = [_vector(b, source, name, i) for i, b in enumerate(blobs)]
    if len(vectors) not in (2, 3) or vectors[0].shape != vectors[1].shape or (
            len(vectors) == 3 and vectors[2].size != 1):
        raise DeepLabError(f"{source}: BatchNorm layer {name!r} has blobs {[tuple(b.shape) for b in blobs]}; "
                           f"expected mean (C), variance (C) and the moving-average factor (1)")
    factor = float(vectors[2][0]) if len(vectors) == 3 else 1.0
    inverse = 0.0 if factor == 0 else 1.0 / factor  # Caffe: a zero factor zeroes the statistics
    return {f"{name}/moving_mean": (vectors[0] * inverse).astype(np.float32),
            f"{name}/moving_variance": (vectors[1] * inverse).astype(np.float32)}


def _scale(name: str, blobs: List[np.ndarray], source: str) -> Dict[str, np.ndarray]:
    """Caffe Scale blobs (gamma[, beta]) -> ``bn<X>/gamma``, ``bn<X>/beta`` of layer ``scale<X>``."""
    vectors = [_vector(b, source, name, i) for i, b in enumerate(blobs)]
    if len(vectors) not in (1, 2) or (len(vectors) == 2 and vectors[0].shape != vectors[1].shape):
        raise DeepLabError(f"{source}: Scale layer {name!r} has blobs {[tuple(b.shape) for b in blobs]}; "
                           f"expected gamma (C) and beta (C)")
    bn = "bn" + name[len("scale"):]
    beta = vectors[1] if len(vectors) == 2 else np.zeros_like(vectors[0])  # bias_term: false
    return {f"{bn}/gamma": vectors[0].astype(np.float32), f"{bn}/beta": beta.astype(np.float32)}


def _is_kind(name: str, blobs: List[np.ndarray], types: Optional[Dict[str, str]], kind: str, prefix: str) -> bool:
    if types and name in types:
        return types[name] == kind
    return name.startswith(prefix) and all(sum(d > 1 for d in b.shape) <= 1 for b in blobs)


def caffe_to_tf_weights(layers: Dict[str, List[np.ndarray]], *, types: Optional[Dict[str, str]] = None,
                        source: str = "caffemodel") -> Dict[str, np.ndarray]:
    """Caffe blobs to this package's names and layouts: ``{"conv1_1/w": HWIO, "conv1_1/b": (out,),
    "bn_conv1/moving_mean": (C,), ...}``.

    * Convolutions (and InnerProducts, as 1x1s): filters go from Caffe's [out, in, kh, kw] to
      [kh, kw, in, out]; biases are flattened (V1 files store them as 1x1x1xN).
    * BatchNorm ``bn<X>``: ``bn<X>/moving_mean`` and ``bn<X>/moving_variance``, the stored sums divided
      by the moving-average factor blob (a zero factor gives zeros, as Caffe computes).
    * Scale ``scale<X>``: ``bn<X>/gamma`` and ``bn<X>/beta`` (``scale_conv1`` -> ``bn_conv1``).
    * The MSC caffemodel's tower copies (``*_res05*``, ``*_res075*``) are dropped once checked equal to
      their originals (``DeepLabError`` naming the layer otherwise).

    Layer kinds come from ``types`` (``read_caffemodel(path, types=...)`` fills it) where given, else from
    the names (``bn*``/``scale*`` with vector blobs).  Other layers are passed over by the caller's name
    matching.  ``source`` (the file) starts every error message.
    """
    out = {}
    for name, blobs in _drop_msc_copies(layers, source).items():
        if len(blobs) < 1:
            continue
        if _is_kind(name, blobs, types, "BatchNorm", "bn"):
            out.update(_batch_norm(name, blobs, source))
            continue
        if _is_kind(name, blobs, types, "Scale", "scale"):
            out.update(_scale(name, blobs, source))
            continue
        w = blobs[0]
        if w.ndim == 2:  # InnerProduct weights [out, in]: a 1x1 convolution
            w = w[:, :, None, None]
        if w.ndim != 4:
            continue
        out[f"{name}/w"] = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
        if len(blobs) > 1:
            out[f"{name}/b"] = blobs[1].reshape(-1)
    return out


def caffemodel_weights(path: str) -> Dict[str, np.ndarray]:
    """``caffe_to_tf_weights`` of the file at ``path``, its layer types known and errors naming it."""
    types: Dict[str, str] = {}
    _, layers = read_caffemodel(path, types=types)
    return caffe_to_tf_weights(layers, types=types, source=path)


def read_with_pycaffe(caffemodel: str, pycaffe_path: str, prototxt: Optional[str] = None) -> Dict[str, np.ndarray]:
    """The weights of ``caffemodel`` read by the user's own PyCaffe build found in ``pycaffe_path`` (optional;
    ``prototxt`` defaults to the LargeFOV deploy net shipped with the package), as ``caffe_to_tf_weights`` gives."""
    prototxt = prototxt or DEPLOY_PROTOTXT
    if not os.path.isfile(prototxt):
        raise DeepLabError(f"{prototxt}: net definition not found; pass --prototxt")
    try:  # the user's own PyCaffe build from that folder, never a pip package
        spec = importlib.machinery.PathFinder.find_spec("caffe", [pycaffe_path])
        if spec is None:
            raise ImportError(f"no 'caffe' package in {pycaffe_path}")
        caffe = importlib.util.module_from_spec(spec)
        sys.modules["caffe"] = caffe
        spec.loader.exec_module(caffe)
        net = caffe.Net(prototxt, caffemodel, caffe.TEST)
    except Exception as e:
        raise DeepLabError(f"{caffemodel}: PyCaffe from {pycaffe_path} failed: {e}") from None
    return caffe_to_tf_weights({name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()})
