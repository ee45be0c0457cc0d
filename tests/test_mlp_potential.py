"""MLPPotential: the scalar network, its public weight order, and its closed-form gradient."""

import numpy as np
import pytest
import tensorflow as tf

from tf_gradrnn import MLPPotential

FEATURES, STATE, BATCH = 3, 4, 5


def built_potential(activation="tanh", hidden_units=(6, 5)):
    potential = MLPPotential(hidden_units, activation=activation, dtype="float64")
    potential.build((None, FEATURES + STATE))
    rng = np.random.default_rng(0)
    potential.set_weights([0.7 * rng.standard_normal(w.shape) for w in potential.get_weights()])
    return potential


def test_one_scalar_per_sample():
    assert MLPPotential((8,))(np.zeros((BATCH, 7), "float32")).shape == (BATCH, 1)


def test_weights_come_in_public_order():
    potential = built_potential()
    shapes = [w.shape for w in potential.get_weights()]
    assert shapes == [(FEATURES + STATE, 6), (6,), (6, 5), (5,), (5, 1), (1,)]


def test_hidden_units_may_be_one_int_or_a_numpy_array():
    assert MLPPotential(8).hidden_units == (8,)
    assert MLPPotential(np.array([4, 2])).hidden_units == (4, 2)


@pytest.mark.parametrize("hidden_units", [(), (4, 0), (2.0,)], ids=str)
def test_bad_hidden_units(hidden_units):
    with pytest.raises(ValueError, match="hidden_units must"):
        MLPPotential(hidden_units)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus", "linear"])
def test_closed_form_gradient_and_its_derivatives_equal_the_nested_tape(activation):
    potential = built_potential(activation)
    assert potential.has_closed_form_gradient
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal((BATCH, FEATURES)))
    h = tf.constant(rng.standard_normal((BATCH, STATE)))
    wrt = [x, h, *potential.trainable_weights]

    def closed_form():
        closed = potential.closed_form_gradient(FEATURES)
        return closed.value_and_gradient(closed.project(x), h)

    def nested_tape():
        with tf.GradientTape() as inner:
            inner.watch(h)
            value = potential(tf.concat([x, h], axis=-1))[:, 0]
        return value, inner.gradient(value, h)

    results = []
    for value_and_gradient in (closed_form, nested_tape):
        with tf.GradientTape() as outer:
            outer.watch([x, h])
            value, gradient = value_and_gradient()
            loss = tf.reduce_sum(tf.sin(gradient)) + tf.reduce_sum(value)
        results.append([value, gradient, *outer.gradient(loss, wrt)])
    for closed, tape in zip(*results, strict=True):
        np.testing.assert_allclose(closed, tape, rtol=1e-12, atol=1e-14)


def test_closed_form_gradient_can_take_the_weights_as_tensors():
    potential = built_potential()
    x, h = tf.ones((BATCH, FEATURES), tf.float64), tf.ones((BATCH, STATE), tf.float64)
    doubled = [2.0 * w for w in potential.get_weights()]
    closed = potential.closed_form_gradient(FEATURES, [tf.constant(w) for w in doubled])
    value, gradient = closed.value_and_gradient(closed.project(x), h)
    potential.set_weights(doubled)
    own = potential.closed_form_gradient(FEATURES)
    expected_value, expected_gradient = own.value_and_gradient(own.project(x), h)
    np.testing.assert_array_equal(value, expected_value)
    np.testing.assert_array_equal(gradient, expected_gradient)


def test_no_closed_form_for_other_activations():
    potential = MLPPotential((4,), activation="gelu")
    assert not potential.has_closed_form_gradient
    with pytest.raises(ValueError, match="no closed-form gradient for activation 'gelu'"):
        potential.closed_form_gradient(FEATURES)
