"""Numeric truth: against finite differences and an independent NumPy model, in float64."""

import keras
import numpy as np
import pytest
import reference
import tensorflow as tf

import tf_gradrnn

FEATURES, UNITS, HIDDEN, BATCH, STEPS = 2, 3, (5, 4), 3, 12


def make_layer(dtype="float64", **kwargs):
    kwargs = {"return_sequences": True, "return_state": True, **kwargs}
    layer = tf_gradrnn.GradientRNN(UNITS, hidden_units=HIDDEN, dtype=dtype, **kwargs)
    layer.build((None, None, FEATURES))
    # Non-zero biases so that no derivative vanishes by symmetry.
    rng = np.random.default_rng(7)
    layer.potential.set_weights(
        [0.7 * rng.standard_normal(w.shape) for w in layer.potential.get_weights()]
    )
    return layer


def sample_inputs(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, STEPS, FEATURES))
    target = rng.standard_normal((BATCH, STEPS))
    return x, target


def test_state_gradient_matches_finite_differences_of_the_potential():
    cell = tf_gradrnn.GradientRNNCell(UNITS, hidden_units=HIDDEN, dtype="float64")
    cell.build((None, FEATURES))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((BATCH, FEATURES))
    h = rng.standard_normal((BATCH, UNITS))

    y, (h_next,) = cell(x, [h])

    def summed_potential(state):
        return float(np.sum(cell.potential(np.concatenate([x, state], -1)).numpy()))

    eps = 1e-6
    numeric = np.zeros_like(h)
    for idx in np.ndindex(h.shape):
        plus, minus = h.copy(), h.copy()
        plus[idx] += eps
        minus[idx] -= eps
        numeric[idx] = (summed_potential(plus) - summed_potential(minus)) / (2 * eps)
    np.testing.assert_allclose(h_next.numpy(), numeric, rtol=1e-7, atol=1e-9)
    assert y.shape == (BATCH, 1)


def test_state_gradient_matches_compute_gradient():
    cell = tf_gradrnn.GradientRNNCell(UNITS, hidden_units=HIDDEN, dtype="float64")
    cell.build((None, FEATURES))
    x = tf.constant(np.random.default_rng(2).standard_normal((1, FEATURES)))
    h = np.random.default_rng(3).standard_normal((1, UNITS))

    def f_of_h(state):
        return cell.potential(tf.concat([x, state], -1))

    theoretical, numerical = tf.test.compute_gradient(f_of_h, [tf.constant(h)], delta=1e-6)
    _, (h_next,) = cell(x, [h])
    np.testing.assert_allclose(h_next.numpy()[0], numerical[0][0], rtol=1e-7)
    np.testing.assert_allclose(h_next.numpy()[0], theoretical[0][0], rtol=1e-12)


@pytest.mark.parametrize("state_gradient", ["closed_form", "tape"])
def test_forward_matches_independent_numpy_model(state_gradient):
    layer = make_layer(state_gradient=state_gradient)
    x, _ = sample_inputs()
    y, h_last = layer(x)
    y_ref, h_ref = reference.run(layer.potential.get_weights(), x)
    np.testing.assert_allclose(y.numpy()[..., 0], y_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h_last.numpy(), h_ref[:, -1], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("state_gradient", ["closed_form", "tape"])
def test_loss_gradient_matches_finite_differences_for_every_weight(state_gradient):
    layer = make_layer(state_gradient=state_gradient)
    x, target = sample_inputs()
    with tf.GradientTape() as tape:
        y, _ = layer(x)
        loss = tf.reduce_sum((y[..., 0] - target) ** 2)
    grads = tape.gradient(loss, layer.potential.trainable_weights)
    weights = layer.potential.get_weights()
    numeric = reference.finite_difference_gradients(lambda w: reference.loss(w, x, target), weights)
    assert len(grads) == len(weights) == 2 * (len(HIDDEN) + 1)
    error = reference.max_relative_error([g.numpy() for g in grads], numeric)
    print(f"largest float64 relative error against finite differences: {error:.2e}")
    assert error < 1e-6


def test_a_detached_state_would_be_caught_by_the_finite_difference_check():
    # Guards the guard: dropping the second-order path (h treated as a constant) must give
    # gradients far from the finite differences, so the test above can tell them apart.
    layer = make_layer()
    x, target = sample_inputs()
    weights = layer.potential.get_weights()
    numeric = reference.finite_difference_gradients(lambda w: reference.loss(w, x, target), weights)
    cell = layer.cell
    with tf.GradientTape() as tape:
        h = tf.zeros((BATCH, UNITS), tf.float64)
        ys = []
        for t in range(STEPS):
            y, (h,) = cell(x[:, t], [h])
            h = tf.stop_gradient(h)
            ys.append(y[:, 0])
        loss = tf.reduce_sum((tf.stack(ys, 1) - target) ** 2)
    detached = tape.gradient(loss, layer.potential.trainable_weights)
    assert reference.max_relative_error([g.numpy() for g in detached], numeric) > 1e-2


def test_gradient_with_respect_to_inputs_and_initial_state_matches_finite_differences():
    layer = make_layer()
    x, target = sample_inputs()
    h0 = np.random.default_rng(5).standard_normal((BATCH, UNITS))
    x_t, h0_t = tf.constant(x), tf.constant(h0)
    with tf.GradientTape() as tape:
        tape.watch([x_t, h0_t])
        y, _ = layer(x_t, initial_state=h0_t)
        loss = tf.reduce_sum((y[..., 0] - target) ** 2)
    dx, dh0 = tape.gradient(loss, [x_t, h0_t])
    weights = layer.potential.get_weights()

    def loss_of(inputs):
        y_ref, _ = reference.run(weights, inputs[0], inputs[1])
        return np.sum((y_ref - target) ** 2)

    numeric = reference.finite_difference_gradients(loss_of, [x, h0])
    error = reference.max_relative_error([dx.numpy(), dh0.numpy()], numeric)
    print(f"largest float64 relative error of dx, dh0: {error:.2e}")
    assert error < 1e-6


def test_closed_form_one_hidden_layer_with_constant_weights():
    # F(z) = c * sum_k tanh(a * sum(z) + b) + d with one hidden layer of k units,
    # so dF/dh_j = c * k * a * (1 - tanh(s)^2), s = a * sum(z) + b, for every j.
    # a and b are exact in float32, as Keras may build constant initial values in float32.
    a, b, c, d, k = 0.375, 0.125, 0.5, -0.2, 4
    potential = tf_gradrnn.MLPPotential(
        hidden_units=(k,),
        kernel_initializer=keras.initializers.Constant(a),
        bias_initializer=keras.initializers.Constant(b),
        dtype="float64",
    )
    layer = tf_gradrnn.GradientRNN(2, potential=potential, return_sequences=True, dtype="float64")
    layer.build((None, None, 3))
    potential.output_layer.kernel.assign(np.full((k, 1), c))
    potential.output_layer.bias.assign([d])
    x = np.array([[[0.1, 0.2, 0.3], [-0.5, 0.4, 0.0], [1.0, 1.0, -1.0]]])

    h = np.zeros(2)
    expected_y = []
    for x_t in x[0]:
        s = a * (x_t.sum() + h.sum()) + b
        expected_y.append(c * k * np.tanh(s) + d)
        h = np.full(2, c * k * a * (1 - np.tanh(s) ** 2))
    y = layer(x).numpy()[0, :, 0]
    np.testing.assert_allclose(y, expected_y, rtol=1e-14)


@pytest.mark.parametrize("state_gradient", ["closed_form", "tape"])
def test_model_fit_takes_the_full_second_order_sgd_step(state_gradient):
    # fit's data adapters cast float64 arrays to floatx, so float64 data needs floatx float64.
    keras.config.set_floatx("float64")
    layer = make_layer(return_state=False, state_gradient=state_gradient)
    inputs = keras.Input((STEPS, FEATURES), dtype="float64")
    y = layer(inputs)
    model = keras.Model(inputs, keras.layers.Reshape((STEPS,), dtype="float64")(y))
    x, target = sample_inputs()
    lr = 0.05
    before = layer.potential.get_weights()
    numeric = reference.finite_difference_gradients(
        lambda w: reference.loss(w, x, target) / (BATCH * STEPS), before
    )
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    model.fit(x, target, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    after = layer.potential.get_weights()
    for w0, w1, g in zip(before, after, numeric, strict=True):
        np.testing.assert_allclose(w1, w0 - lr * g, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("unroll", [False, True], ids=["loop", "unrolled"])
def test_gradients_agree_with_and_without_unroll(unroll):
    layer = make_layer(unroll=unroll)
    x, target = sample_inputs()
    with tf.GradientTape() as tape:
        y, _ = layer(tf.constant(x))
        loss = tf.reduce_sum((y[..., 0] - target) ** 2)
    grads = tape.gradient(loss, layer.potential.trainable_weights)
    numeric = reference.finite_difference_gradients(
        lambda w: reference.loss(w, x, target), layer.potential.get_weights()
    )
    assert reference.max_relative_error([g.numpy() for g in grads], numeric) < 1e-6


@pytest.mark.parametrize("state_gradient", ["closed_form", "tape"])
def test_first_order_only_equals_the_detached_computation(state_gradient):
    # second_order=False must give exactly the gradient of the same loss with every state
    # replaced by a constant: here, a loop of the exact cell with tf.stop_gradient on h.
    first_order = make_layer(second_order=False, state_gradient=state_gradient)
    exact = make_layer(state_gradient=state_gradient)
    exact.set_weights(first_order.get_weights())
    x, target = sample_inputs()
    with tf.GradientTape() as tape:
        y, _ = first_order(x)
        loss = tf.reduce_sum((y[..., 0] - target) ** 2)
    grads = tape.gradient(loss, first_order.potential.trainable_weights)
    with tf.GradientTape() as tape:
        h, ys = tf.zeros((BATCH, UNITS), tf.float64), []
        for t in range(STEPS):
            y_t, (h,) = exact.cell(x[:, t], [tf.stop_gradient(h)])
            ys.append(y_t[:, 0])
        loss_detached = tf.reduce_sum((tf.stack(ys, 1) - target) ** 2)
    detached = tape.gradient(loss_detached, exact.potential.trainable_weights)
    np.testing.assert_allclose(loss, loss_detached, rtol=1e-14)
    for g, d in zip(grads, detached, strict=True):
        np.testing.assert_allclose(g, d, rtol=1e-12, atol=1e-14)
    # ... and it is not the exact gradient.
    with tf.GradientTape() as tape:
        y, _ = exact(x)
        loss = tf.reduce_sum((y[..., 0] - target) ** 2)
    exact_grads = tape.gradient(loss, exact.potential.trainable_weights)
    assert reference.max_relative_error([g.numpy() for g in grads], exact_grads) > 1e-2
