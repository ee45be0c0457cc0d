"""Numeric truth in float64: finite differences and the independent NumPy models of
tests/reference.py, for both recurrent layers.

The eager / tf.function / XLA parity matrix of tests/test_gradient_rnn.py also compares every
GradientRNN output, final state and weight gradient with these references, closed form and
nested tape, looped and unrolled; the tests here cover what it does not.
"""

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


def loss_gradients(layer, x, target):
    with tf.GradientTape() as tape:
        y, _ = layer(x)
        loss = tf.reduce_sum((y[..., 0] - target) ** 2)
    return loss, tape.gradient(loss, layer.potential.trainable_weights)


# ---- GradientRNN ----


def test_state_is_each_samples_own_gradient_of_the_potential():
    # The Jacobian of F(x, h) (batch,) with respect to h (batch, units) by finite differences:
    # sample i's block is the cell's h_next[i]; the blocks of other samples are zero.
    cell = tf_gradrnn.GradientRNNCell(UNITS, hidden_units=HIDDEN, dtype="float64")
    cell.build((None, FEATURES))
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal((BATCH, FEATURES)))
    h = rng.standard_normal((BATCH, UNITS))

    def f_of_h(state):
        return cell.potential(tf.concat([x, state], -1))[:, 0]

    theoretical, numerical = tf.test.compute_gradient(f_of_h, [tf.constant(h)], delta=1e-6)
    _, (h_next,) = cell(x, [h])
    expected = np.zeros((BATCH, BATCH * UNITS))
    for i in range(BATCH):
        expected[i, i * UNITS : (i + 1) * UNITS] = h_next.numpy()[i]
    np.testing.assert_allclose(numerical[0], expected, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(theoretical[0], expected, rtol=1e-12, atol=1e-15)


def test_a_detached_state_would_be_caught_by_the_finite_difference_check():
    # Guards the guard: dropping the second-order path (h treated as a constant) must give
    # gradients far from the finite differences, so the parity matrix can tell them apart.
    layer = make_layer()
    x, target = sample_inputs()
    weights = layer.potential.get_weights()
    numeric = reference.finite_difference_gradients(lambda w: reference.loss(w, x, target), weights)
    with tf.GradientTape() as tape:
        h, ys = tf.zeros((BATCH, UNITS), tf.float64), []
        for t in range(STEPS):
            y, (h,) = layer.cell(x[:, t], [h])
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


@pytest.mark.parametrize("state_gradient", ["closed_form", "tape"])
def test_first_order_only_equals_the_detached_computation(state_gradient):
    # second_order=False must give exactly the gradient of the same loss with every state
    # replaced by a constant: here, a loop of the exact cell with tf.stop_gradient on h.
    first_order = make_layer(second_order=False, state_gradient=state_gradient)
    exact = make_layer(state_gradient=state_gradient)
    x, target = sample_inputs()
    loss, grads = loss_gradients(first_order, x, target)
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
    _, exact_grads = loss_gradients(exact, x, target)
    assert reference.max_relative_error([g.numpy() for g in grads], exact_grads) > 1e-2


def test_bounded_state_gradients_match_finite_differences():
    layer = tf_gradrnn.GradientRNN(3, hidden_units=(5,), state_bound=0.5, dtype="float64")
    x = np.random.default_rng(3).standard_normal((2, 10, 2))
    layer.build((None, None, 2))
    rng = np.random.default_rng(4)
    layer.set_weights([2.0 * rng.standard_normal(w.shape) for w in layer.get_weights()])

    def loss_of(weights):
        layer.set_weights(weights)
        return float(tf.reduce_sum(tf.sin(layer(x))))

    weights = layer.get_weights()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.sin(layer(x)))
    grads = [g.numpy() for g in tape.gradient(loss, layer.trainable_weights)]
    numeric = reference.finite_difference_gradients(loss_of, weights, eps=1e-6)
    assert reference.max_relative_error(grads, numeric) < 1e-6


# ---- HamiltonianRNN ----

D = 2
CASES = [("leapfrog", True), ("leapfrog", False), ("symplectic_euler", True)]
CASE_IDS = ["leapfrog_control", "leapfrog", "euler_control"]


def hamiltonian_layer(integrator, control):
    layer = tf_gradrnn.HamiltonianRNN(
        D,
        hidden_units=(5, 4),
        dt=0.1,
        integrator=integrator,
        control=control,
        substeps=2,
        implicit_iterations=2,
        return_sequences=True,
        dtype="float64",
    )
    layer.build((None, None, 1))
    rng = np.random.default_rng(7)
    layer.set_weights([0.7 * rng.standard_normal(w.shape) for w in layer.get_weights()])
    return layer


def hamiltonian_sample(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, 4, 1))
    q0, p0 = rng.standard_normal((BATCH, D)), rng.standard_normal((BATCH, D))
    return x, q0, p0, rng.standard_normal((BATCH, 4, D))


@pytest.mark.parametrize("integrator, control", CASES, ids=CASE_IDS)
def test_hamiltonian_forward_matches_independent_numpy_model(integrator, control):
    layer = hamiltonian_layer(integrator, control)
    x, q0, p0, _ = hamiltonian_sample(0)
    y = layer(x, initial_state=[q0, p0])
    expected = reference.hamiltonian_run(layer.get_weights(), x, q0, p0, integrator, control)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("integrator, control", CASES, ids=CASE_IDS)
def test_hamiltonian_loss_gradients_match_finite_differences(integrator, control):
    layer = hamiltonian_layer(integrator, control)
    x, q0, p0, target = hamiltonian_sample(1)
    inputs = [tf.constant(v) for v in (x, q0, p0)]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        y = layer(inputs[0], initial_state=inputs[1:])
        loss = tf.reduce_sum((y - target) ** 2)
    # H's output bias shifts H, not its gradient: no gradient reaches it (checked below).
    weights = layer.trainable_weights
    grads = tape.gradient(loss, [*weights, *inputs])
    assert grads.pop(len(weights) - 1) is None
    w0 = layer.get_weights()

    def loss_of(w, xx=x, q=q0, p=p0):
        return np.sum((reference.hamiltonian_run(w, xx, q, p, integrator, control) - target) ** 2)

    numeric = reference.finite_difference_gradients(loss_of, w0)
    assert numeric.pop(len(weights) - 1) == pytest.approx(0.0, abs=1e-9)
    numeric += reference.finite_difference_gradients(lambda v: loss_of(w0, *v), [x, q0, p0])
    if not control:  # the inputs only count the steps
        assert grads[len(weights) - 1] is None
        grads[len(weights) - 1] = tf.zeros_like(x)
    error = reference.max_relative_error([g.numpy() for g in grads], numeric)
    print(f"largest float64 relative error against finite differences: {error:.2e}")
    assert error < 1e-6
