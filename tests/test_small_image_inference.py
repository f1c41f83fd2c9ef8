"""The inference path's shortcuts (issue 20, small-image inference) give the same numbers, bit for bit.

* Caffe's max pooling of a tensor whose size is known only at run time (the ``Predictor``'s and the
  SavedModel's graphs) picks, per ``size % stride``, TF's 'SAME' or an explicit padding instead of
  copying the input with ``tf.pad``: the same maxima as the static path, values and gradients;
* ``Predictor.labels`` runs preprocessing, the net, softmax and argmax in one graph: the labels are
  those of ``np.argmax`` of ``Predictor.probabilities``, ties included;
* ``Predictor(constant_filters=True)`` (3x3 and larger filters as graph constants) computes the
  variables' probabilities.
"""

import numpy as np
import pytest

from deeplab_lfov.core._tf import tf
from deeplab_lfov.evaluation.predict import Predictor
from deeplab_lfov.model import DeepLabLargeFOV
from deeplab_lfov.model.ops import caffe_max_pool


@pytest.mark.parametrize("kernel,stride,pad", [(3, 2, 1), (3, 1, 1), (3, 2, 0), (2, 2, 0), (5, 3, 2)])
def test_max_pool_of_unknown_size_is_the_static_one_bit_for_bit(kernel, stride, pad):
    dynamic = tf.function(lambda x: caffe_max_pool(x, kernel, stride, pad),
                          input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    rows_only = tf.function(lambda x: caffe_max_pool(x, kernel, stride, pad),
                            input_signature=[tf.TensorSpec([2, None, 8, 3], tf.float32)])
    for height in range(2, 12):
        for width in (5, 8):
            x = tf.constant(np.random.RandomState(height * 10 + width).normal(size=(2, height, width, 3)), tf.float32)
            expected = caffe_max_pool(x, kernel, stride, pad).numpy()
            np.testing.assert_array_equal(dynamic(x).numpy(), expected)
            if width == 8:
                got = rows_only(x)
                assert got.shape[2] == expected.shape[2]  # the known side keeps its static size
                np.testing.assert_array_equal(got.numpy(), expected)


@pytest.mark.parametrize("hw", [(9, 7), (10, 8), (9, 8)])
def test_max_pool_of_unknown_size_has_the_static_gradient(hw):
    x = tf.constant(np.random.RandomState(1).normal(size=(1,) + hw + (4,)), tf.float32)

    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = caffe_max_pool(x, 3, 2, 1)
            loss = tf.reduce_sum(tf.square(y))  # gradient 2y, exact: only the routing can differ
        return tape.gradient(loss, x)

    dynamic = tf.function(gradient, input_signature=[tf.TensorSpec([1, None, None, 4], tf.float32)])
    np.testing.assert_array_equal(dynamic(x).numpy(), gradient(x).numpy())


def test_predictor_graph_copies_no_input_for_the_max_pools():
    """The pools of an any-size graph read their input in place: the only pad is pool5a's (average)."""
    predictor = Predictor(DeepLabLargeFOV(width_multiplier=0.125, seed=0))
    graph = predictor._forward.get_concrete_function().graph
    ops = [op.type for op in graph.get_operations()]
    assert ops.count("PadV2") == 0 and ops.count("Pad") == 1  # max pools pad -inf (PadV2); pool5a zeros (Pad)


@pytest.mark.parametrize("hw", [(33, 33), (40, 52), (45, 61)])
def test_predictor_labels_are_argmax_of_its_probabilities(hw):
    model = DeepLabLargeFOV(width_multiplier=0.125, seed=5)
    predictor = Predictor(model)
    rgbs = [np.random.RandomState(i).randint(0, 255, size=hw + (3,), dtype=np.uint8) for i in range(2)]
    expected = np.argmax(predictor.probabilities_batch(rgbs), axis=-1).astype(np.uint8)
    got = predictor.labels_batch(rgbs)
    assert got.dtype == np.uint8 and got.shape == (2,) + hw
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(predictor.labels(rgbs[1]), expected[1])
    # other dtypes take the probabilities' path, as preprocess reads them
    np.testing.assert_array_equal(predictor.labels(rgbs[0].astype(np.float32) + 0.25),
                                  np.argmax(predictor.probabilities(rgbs[0].astype(np.float32) + 0.25), -1))


def test_tf_argmax_picks_the_first_of_equal_maxima_as_numpy():
    rng = np.random.RandomState(0)
    probs = rng.randint(0, 3, size=(1, 7, 9, 21)).astype(np.float32) / 4  # many ties
    np.testing.assert_array_equal(tf.argmax(tf.constant(probs), axis=-1, output_type=tf.int32).numpy(),
                                  np.argmax(probs, axis=-1))


@pytest.mark.parametrize("name", ["largefov", pytest.param("resnet101", marks=pytest.mark.slow)])
def test_constant_filters_give_the_variables_numbers_bit_for_bit(name):
    from deeplab_lfov.model import build_net
    from deeplab_lfov.model.deeplab_segmenter import constant_filters
    net = build_net(name, 21, width_multiplier=0.125 if name == "largefov" else 1 / 16, seed=2)
    with_constants = Predictor(net, constant_filters=True)
    plain = Predictor(net)
    # LargeFOV at an odd and an even size (its pools pad differently), both graphs; ResNet-101 (with MSC:
    # 6 s to compile a graph) at one size, its probabilities
    for hw in [(41, 41), (40, 52)] if name == "largefov" else [(40, 52)]:
        rgb = np.random.RandomState(hw[1]).randint(0, 255, size=hw + (3,), dtype=np.uint8)
        np.testing.assert_array_equal(with_constants.probabilities(rgb), plain.probabilities(rgb))
        if name == "largefov":
            np.testing.assert_array_equal(with_constants.labels(rgb), plain.labels(rgb))
    filters = constant_filters(net)  # the 3x3 and larger filters only; 1x1 convolutions keep their variables
    assert filters and set(filters) == {n for n, conv in net.convs.items() if conv.w.shape[0] >= 3}
