"""What every public layer owes a Keras user, in the spirit of Keras' own layer harness
(`keras/src/testing/test_case.py::run_layer_test`): build from a shape, symbolic and eager calls
whose shapes match `compute_output_shape`, a config round trip, a training step, and masking.
Mixed-precision policies, the harness' last check, are tested in test_mixed_precision.py over the
same layers (tests/public_layers.py)."""

import copy

import keras
import numpy as np
import pytest
from public_layers import BATCH, LAYERS, RECURRENT, as_list, fit_one_batch, inputs

from tf_gradrnn._keras_internals import keras_mask

NAMES = list(LAYERS)


def make(name):
    return LAYERS[name][0]()


def input_shape(name, batch=None):
    return (batch, *LAYERS[name][1])


def shapes(output_shape) -> list:
    """`compute_output_shape`'s result as a list of tuples (ScalarGradient has two outputs)."""
    if isinstance(output_shape, list) or isinstance(output_shape[0], (tuple, list)):
        return [tuple(s) for s in output_shape]
    return [tuple(output_shape)]


@pytest.mark.parametrize("name", NAMES)
def test_builds_from_a_shape(name):
    layer = make(name)
    layer.build(input_shape(name))
    assert layer.built
    assert layer.trainable_weights and len(layer.weights) == len(layer.trainable_weights)
    assert all(np.all(np.isfinite(w)) for w in layer.get_weights())


@pytest.mark.parametrize("name", NAMES)
def test_symbolic_call_matches_compute_output_shape_and_the_eager_call(name):
    layer = make(name)
    x = keras.Input(input_shape(name)[1:])
    symbolic = layer(x)
    expected = shapes(layer.compute_output_shape(input_shape(name)))
    assert [tuple(o.shape) for o in as_symbolic_list(symbolic)] == expected
    data = inputs(name)
    model = keras.Model(x, symbolic)
    for graph, eager in zip(
        as_list(model.predict(data, verbose=0)), as_list(layer(data)), strict=True
    ):
        np.testing.assert_allclose(graph, eager, rtol=1e-6, atol=1e-6)


def as_symbolic_list(outputs) -> list:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


@pytest.mark.parametrize("name", NAMES)
def test_eager_call_matches_compute_output_shape(name):
    layer = make(name)
    outputs = as_list(layer(inputs(name)))
    expected = shapes(layer.compute_output_shape(input_shape(name, BATCH)))
    assert [o.shape for o in outputs] == expected
    assert all(np.all(np.isfinite(o)) for o in outputs)


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip_gives_the_same_config_and_outputs(name):
    layer = make(name)
    config = layer.get_config()
    restored = type(layer).from_config(copy.deepcopy(config))  # Keras' RNN pops "cell"
    assert restored.get_config() == config
    x = inputs(name)
    expected = as_list(layer(x))
    restored.build(input_shape(name))
    restored.set_weights(layer.get_weights())
    for actual, wanted in zip(as_list(restored(x)), expected, strict=True):
        np.testing.assert_array_equal(actual, wanted)


@pytest.mark.parametrize("name", NAMES)
def test_a_training_step_changes_the_weights_with_a_finite_loss(name):
    layer = make(name)
    x = keras.Input(input_shape(name)[1:])
    loss, before, after = fit_one_batch(keras.Model(x, layer(x)), inputs(name))
    assert np.isfinite(loss)
    changed = [not np.array_equal(b, a) for b, a in zip(before, after, strict=True)]
    # Only H's gradient reaches a Hamiltonian layer's outputs, never H's constant term.
    assert sum(changed) >= len(changed) - (1 if "Hamiltonian" in name else 0)


@pytest.mark.parametrize("name", NAMES)
def test_masking_support(name):
    layer = make(name)
    # Keras' convention: a layer that does not say it supports masking drops a mask with a
    # warning; the recurrent layers consume it and pass it on with return_sequences.
    assert layer.supports_masking == (name in RECURRENT)
    if name not in RECURRENT:
        return
    data = inputs(name)
    data[0, 3:] = 0.0
    masked = keras.layers.Masking(0.0)(data)
    outputs = layer(masked)
    np.testing.assert_array_equal(keras_mask(outputs), keras_mask(masked))
