"""The closed-form dF/dh fast path equals the nested-tape path to float64 round-off."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradrnn

FEATURES, UNITS, HIDDEN, BATCH, STEPS = 3, 4, (6, 5), 3, 8


def twin_layers(activation="tanh", **kwargs):
    """A closed-form layer and a nested-tape layer with the same float64 weights."""
    layers = [
        tf_gradrnn.GradientRNN(
            UNITS,
            hidden_units=HIDDEN,
            activation=activation,
            state_gradient=mode,
            return_sequences=True,
            return_state=True,
            dtype="float64",
            **kwargs,
        )
        for mode in ("closed_form", "tape")
    ]
    for layer in layers:
        layer.build((None, None, FEATURES))
    rng = np.random.default_rng(0)
    weights = [0.7 * rng.standard_normal(w.shape) for w in layers[0].get_weights()]
    for layer in layers:
        layer.set_weights(weights)
    assert layers[0].cell.uses_closed_form and not layers[1].cell.uses_closed_form
    return layers


def outputs_and_gradients(layer, x, mask=None, function=None):
    target = np.random.default_rng(2).standard_normal((BATCH, STEPS))

    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y, h = layer(x, mask=mask)
            loss = tf.reduce_sum((y[..., 0] - target) ** 2) + tf.reduce_sum(tf.sin(h))
        grads = tape.gradient(loss, [x, *layer.trainable_weights])
        return [y, h, *grads]

    if function is not None:
        run = function(run)
    return [t.numpy() for t in run(tf.constant(x))]


def assert_all_close(actual, expected, rtol=1e-12):
    for a, e in zip(actual, expected, strict=True):
        scale = max(np.max(np.abs(e)), 1e-30)
        assert np.max(np.abs(a - e)) <= rtol * scale, np.max(np.abs(a - e)) / scale


ACTIVATIONS = ["tanh", "sigmoid", "softplus", "linear"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("variant", ["plain", "masked", "go_backwards"])
def test_closed_form_equals_nested_tape(activation, variant):
    kwargs = {"go_backwards": True} if variant == "go_backwards" else {}
    fast, tape = twin_layers(activation, **kwargs)
    x = np.random.default_rng(1).standard_normal((BATCH, STEPS, FEATURES))
    mask = None
    if variant == "masked":
        mask = np.arange(STEPS)[None, :] < np.array([[8], [5], [2]])
    assert_all_close(outputs_and_gradients(fast, x, mask), outputs_and_gradients(tape, x, mask))


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_closed_form_compiled_equals_eager_nested_tape(jit_compile):
    fast, tape = twin_layers()
    x = np.random.default_rng(1).standard_normal((BATCH, STEPS, FEATURES))
    function = lambda fn: tf.function(fn, jit_compile=jit_compile)  # noqa: E731
    assert_all_close(
        outputs_and_gradients(fast, x, function=function), outputs_and_gradients(tape, x)
    )


def test_bare_cell_uses_the_closed_form_too():
    cell = tf_gradrnn.GradientRNNCell(UNITS, hidden_units=HIDDEN, dtype="float64")
    tape_cell = tf_gradrnn.GradientRNNCell(
        UNITS, hidden_units=HIDDEN, state_gradient="tape", dtype="float64"
    )
    for c in (cell, tape_cell):
        c.build((None, FEATURES))
    tape_cell.set_weights(cell.get_weights())
    x = np.random.default_rng(1).standard_normal((BATCH, FEATURES))
    h = np.random.default_rng(2).standard_normal((BATCH, UNITS))
    y_fast, (h_fast,) = cell(x, [h])
    y_tape, (h_tape,) = tape_cell(x, [h])
    assert_all_close([y_fast.numpy(), h_fast.numpy()], [y_tape.numpy(), h_tape.numpy()])


def test_auto_falls_back_to_the_tape():
    assert not tf_gradrnn.GradientRNNCell(UNITS, activation="gelu").uses_closed_form
    custom = keras.layers.Dense(1)
    assert not tf_gradrnn.GradientRNNCell(UNITS, potential=custom).uses_closed_form
    assert tf_gradrnn.GradientRNNCell(UNITS).uses_closed_form


def test_closed_form_request_that_cannot_be_met_is_refused():
    with pytest.raises(ValueError, match="state_gradient='closed_form' needs an MLPPotential"):
        tf_gradrnn.GradientRNN(UNITS, activation="gelu", state_gradient="closed_form")
    with pytest.raises(ValueError, match="state_gradient must be one of"):
        tf_gradrnn.GradientRNN(UNITS, state_gradient="fast")


def test_state_gradient_survives_config_round_trip():
    layer = tf_gradrnn.GradientRNN(UNITS, state_gradient="tape")
    assert tf_gradrnn.GradientRNN.from_config(layer.get_config()).cell.state_gradient == "tape"
