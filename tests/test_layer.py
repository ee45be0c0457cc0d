"""The Keras RNN contract: parity across execution modes, masking, direction, state handling."""

import keras
import numpy as np
import pytest
import reference
import tensorflow as tf

import tf_gradrnn

FEATURES, UNITS, HIDDEN = 3, 4, (8, 8)


def random_weights(layer, seed=0, scale=0.6):
    rng = np.random.default_rng(seed)
    layer.potential.set_weights(
        [scale * rng.standard_normal(w.shape) for w in layer.potential.get_weights()]
    )


def make_layer(dtype="float32", **kwargs):
    layer = tf_gradrnn.GradientRNN(UNITS, hidden_units=HIDDEN, dtype=dtype, **kwargs)
    layer.build((None, None, FEATURES))
    random_weights(layer)
    return layer


def sequences(batch=4, steps=9, seed=1, dtype="float32"):
    return np.random.default_rng(seed).standard_normal((batch, steps, FEATURES)).astype(dtype)


def test_cell_contract():
    cell = tf_gradrnn.GradientRNNCell(UNITS, hidden_units=HIDDEN)
    assert cell.state_size == UNITS
    assert cell.output_size == 1
    (h0,) = cell.get_initial_state(batch_size=5)
    assert h0.shape == (5, UNITS)
    assert not np.any(h0.numpy())
    x = sequences()[:, 0]
    h = np.random.default_rng(0).standard_normal((4, UNITS)).astype("float32")
    y_list, (h_list,) = cell(x, [h])
    y_bare, (h_bare,) = cell(x, tf.constant(h))
    y_tuple, _ = cell(x, (h,))
    assert y_list.shape == (4, 1) and h_list.shape == (4, UNITS)
    np.testing.assert_array_equal(y_list, y_bare)
    np.testing.assert_array_equal(h_list, h_bare)
    np.testing.assert_array_equal(y_list, y_tuple)


def test_cell_works_inside_plain_keras_rnn():
    cell = tf_gradrnn.GradientRNNCell(UNITS, hidden_units=HIDDEN, dtype="float64")
    rnn = keras.layers.RNN(cell, return_sequences=True, dtype="float64")
    x = sequences(dtype="float64")
    y = rnn(x)
    y_ref, _ = reference.run(cell.potential.get_weights(), x)
    np.testing.assert_allclose(y.numpy()[..., 0], y_ref, rtol=1e-12, atol=1e-13)


def test_default_potential_weight_order_is_public_contract():
    layer = make_layer()
    shapes = [w.shape for w in layer.potential.get_weights()]
    assert shapes == [(FEATURES + UNITS, 8), (8,), (8, 8), (8,), (8, 1), (1,)]
    assert [w.shape for w in layer.get_weights()] == shapes


MODES = ["eager", "function", "xla"]
# float32 round-off compounds through the states over the 9 steps.
DTYPES = {"float32": 1e-4, "float64": 1e-12}


@pytest.mark.parametrize("state_gradient", ["closed_form", "tape"])
@pytest.mark.parametrize("unroll", [False, True], ids=["loop", "unroll"])
@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
@pytest.mark.parametrize("mode", MODES, ids=MODES)
def test_outputs_states_and_gradients_agree_across_execution_modes(
    mode, dtype, unroll, state_gradient
):
    layer = make_layer(
        dtype,
        return_sequences=True,
        return_state=True,
        unroll=unroll,
        state_gradient=state_gradient,
    )
    x = sequences(dtype=dtype)
    target = np.random.default_rng(3).standard_normal((4, 9)).astype(dtype)
    weights = layer.potential.trainable_weights

    def outputs_and_grads(x):
        with tf.GradientTape() as tape:
            y, h = layer(x)
            loss = tf.reduce_sum((y[..., 0] - target) ** 2)
        return y, h, tape.gradient(loss, weights)

    if mode == "function":
        outputs_and_grads = tf.function(outputs_and_grads)
    elif mode == "xla":
        outputs_and_grads = tf.function(outputs_and_grads, jit_compile=True)
    y, h, grads = outputs_and_grads(tf.constant(x))

    np_weights = [w.astype(np.float64) for w in layer.potential.get_weights()]
    y_ref, h_ref = reference.run(np_weights, x.astype(np.float64))
    numeric = reference.finite_difference_gradients(
        lambda w: reference.loss(w, x.astype(np.float64), target.astype(np.float64)),
        np_weights,
    )
    tol = DTYPES[dtype]
    np.testing.assert_allclose(y.numpy()[..., 0], y_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(h.numpy(), h_ref[:, -1], rtol=tol, atol=tol)
    grad_tol = 1e-6 if dtype == "float64" else 1e-3
    assert reference.max_relative_error([g.numpy() for g in grads], numeric) < grad_tol


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_compiled_model_predicts_and_fits_like_eager(jit_compile):
    inputs = keras.Input((None, FEATURES))
    outputs = tf_gradrnn.GradientRNN(UNITS, hidden_units=HIDDEN, return_sequences=True)(inputs)
    model = keras.Model(inputs, outputs)
    x = sequences()
    eager = model(x).numpy()
    model.compile(optimizer="sgd", loss="mse", jit_compile=jit_compile)
    np.testing.assert_allclose(model.predict(x, verbose=0), eager, rtol=1e-5, atol=1e-6)
    history = model.fit(x, np.zeros((4, 9, 1)), epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_samples_are_independent():
    layer = make_layer("float64", return_sequences=True, return_state=True)
    x = sequences(dtype="float64")
    y, h = layer(x)
    changed = x.copy()
    changed[2] = 10.0 * np.random.default_rng(9).standard_normal(changed[2].shape)
    y2, h2 = layer(changed)
    keep = [0, 1, 3]
    np.testing.assert_array_equal(y.numpy()[keep], y2.numpy()[keep])
    np.testing.assert_array_equal(h.numpy()[keep], h2.numpy()[keep])
    assert not np.allclose(y.numpy()[2], y2.numpy()[2])


def test_masked_steps_keep_the_state():
    layer = make_layer("float64", return_state=True)
    x = sequences(dtype="float64")
    lengths = np.array([9, 5, 1, 7])
    mask = np.arange(9)[None, :] < lengths[:, None]
    padded = np.where(mask[..., None], x, 0.0)
    y, h = layer(padded, mask=mask)
    for i, n in enumerate(lengths):
        y_i, h_i = layer(x[i : i + 1, :n])
        np.testing.assert_allclose(h.numpy()[i], h_i.numpy()[0], rtol=1e-12)
        np.testing.assert_allclose(y.numpy()[i], y_i.numpy()[0], rtol=1e-12)


def test_masking_layer_feeds_the_mask():
    x = sequences(dtype="float64")
    x[1, 4:] = 0.0
    inputs = keras.Input((None, FEATURES), dtype="float64")
    masked = keras.layers.Masking(0.0, dtype="float64")(inputs)
    layer = tf_gradrnn.GradientRNN(UNITS, hidden_units=HIDDEN, dtype="float64")
    model = keras.Model(inputs, layer(masked))
    y = model(x).numpy()
    np.testing.assert_allclose(y[1], layer(x[1:2, :4]).numpy()[0], rtol=1e-12)


def test_go_backwards_equals_reversed_sequence():
    forward = make_layer("float64", return_state=True)
    backward = make_layer("float64", return_state=True, go_backwards=True)
    backward.set_weights(forward.get_weights())
    x = sequences(dtype="float64")
    y_b, h_b = backward(x)
    y_f, h_f = forward(x[:, ::-1])
    np.testing.assert_allclose(y_b, y_f, rtol=1e-12)
    np.testing.assert_allclose(h_b, h_f, rtol=1e-12)


def test_initial_state_and_return_state():
    layer = make_layer("float64", return_sequences=True, return_state=True)
    x = sequences(dtype="float64")
    h0 = np.random.default_rng(4).standard_normal((4, UNITS))
    y, h = layer(x, initial_state=h0)
    y_ref, h_ref = reference.run(layer.potential.get_weights(), x, h0)
    assert y.shape == (4, 9, 1) and h.shape == (4, UNITS)
    np.testing.assert_allclose(y.numpy()[..., 0], y_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h.numpy(), h_ref[:, -1], rtol=1e-12, atol=1e-13)
    y_list, _ = layer(x, initial_state=[h0])
    np.testing.assert_array_equal(y, y_list)


def test_stateful_carries_the_state_between_calls():
    whole = make_layer("float64", return_state=True)
    stateful = tf_gradrnn.GradientRNN(
        UNITS, hidden_units=HIDDEN, stateful=True, return_state=True, dtype="float64"
    )
    stateful.build((4, None, FEATURES))
    stateful.set_weights(whole.get_weights())
    x = sequences(dtype="float64")
    stateful(x[:, :5])
    _, h_second = stateful(x[:, 5:])
    _, h_whole = whole(x)
    np.testing.assert_allclose(h_second, h_whole, rtol=1e-12)
    stateful.reset_state()
    _, h_again = stateful(x)
    np.testing.assert_allclose(h_again, h_whole, rtol=1e-12)


def test_bidirectional():
    x = sequences(dtype="float64")
    bidi = keras.layers.Bidirectional(
        tf_gradrnn.GradientRNN(UNITS, hidden_units=HIDDEN, dtype="float64"), dtype="float64"
    )
    y = bidi(x).numpy()
    assert y.shape == (4, 2)
    assert bidi.backward_layer.go_backwards and not bidi.forward_layer.go_backwards
    forward = make_layer("float64")
    forward.set_weights(bidi.forward_layer.get_weights())
    np.testing.assert_allclose(y[:, :1], forward(x), rtol=1e-12)
    forward.set_weights(bidi.backward_layer.get_weights())
    np.testing.assert_allclose(y[:, 1:], forward(x[:, ::-1]), rtol=1e-12)


def test_floatx_float64_end_to_end():
    keras.config.set_floatx("float64")
    model = keras.Sequential(
        [keras.Input((None, FEATURES)), tf_gradrnn.GradientRNN(UNITS, hidden_units=HIDDEN)]
    )
    assert all(w.dtype == "float64" for w in model.weights)
    x = sequences(dtype="float64")
    assert model(x).dtype == "float64"
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    model.fit(x, np.zeros((4, 1)), epochs=1, verbose=0)
    assert all(w.dtype == "float64" for w in model.weights)


def test_user_potential_is_used():
    potential = keras.Sequential(
        [keras.layers.Dense(6, activation="softplus"), keras.layers.Dense(1)], name="custom"
    )
    layer = tf_gradrnn.GradientRNN(UNITS, potential=potential, return_state=True)
    x = sequences()
    y, h = layer(x)
    assert layer.potential is potential
    assert potential.layers[0].kernel.shape == (FEATURES + UNITS, 6)
    assert y.shape == (4, 1) and h.shape == (4, UNITS)


def test_rank_one_potential_output_is_accepted():
    class SumOfSquares(keras.layers.Layer):
        def call(self, z):
            return tf.reduce_sum(z**2, axis=-1)

    layer = tf_gradrnn.GradientRNN(
        2,
        potential=SumOfSquares(dtype="float64"),
        return_sequences=True,
        return_state=True,
        dtype="float64",
    )
    x = np.ones((1, 3, 1))
    # F = |x|^2 + |h|^2, so h_t = 2 h_{t-1} and y_t = 1 + |h_{t-1}|^2 from h_0 = (1, 1).
    y, h = layer(x, initial_state=np.ones((1, 2)))
    np.testing.assert_allclose(y.numpy()[0, :, 0], [3.0, 9.0, 33.0])
    np.testing.assert_allclose(h.numpy()[0], [8.0, 8.0])


def test_every_cell_argument_is_a_read_only_attribute():
    potential = tf_gradrnn.MLPPotential((3,))
    expected = {
        "units": 5,
        "hidden_units": (7,),
        "activation": keras.activations.softplus,
        "potential": potential,
        "state_bound": 2.0,
        "second_order": False,
        "state_gradient": "tape",
    }
    layer = tf_gradrnn.GradientRNN(**expected)
    assert set(tf_gradrnn.GradientRNN.CELL_ARGUMENTS) == set(expected)
    for name, value in expected.items():
        assert getattr(layer, name) == value, name
        with pytest.raises(AttributeError):
            setattr(layer, name, None)


def test_call_runs_the_step_function():
    cell = tf_gradrnn.GradientRNNCell(UNITS, hidden_units=HIDDEN, dtype="float64")
    cell.build((None, FEATURES))
    x = sequences(dtype="float64")[:, 0]
    h = np.random.default_rng(0).standard_normal((4, UNITS))
    y, (h_next,) = cell(x, [h])
    y_step, (h_step,) = cell.step_function()(tf.constant(x), [tf.constant(h)])
    np.testing.assert_array_equal(y, y_step)
    np.testing.assert_array_equal(h_next, h_step)


@pytest.mark.parametrize("mode", MODES, ids=MODES)
def test_run_with_states_equals_stepping_the_cell_by_hand(mode):
    layer = make_layer("float64")
    x = sequences(dtype="float64")
    h0 = np.random.default_rng(4).standard_normal((4, UNITS))
    mask = np.random.default_rng(5).random((4, 9)) > 0.3
    mask[0, :3] = False  # masked first steps keep the initial state
    run = layer.run_with_states
    if mode != "eager":
        spec = [
            tf.TensorSpec((None, None, FEATURES), tf.float64),
            tf.TensorSpec((None, UNITS), tf.float64),
            tf.TensorSpec((None, None), tf.bool),
        ]
        run = tf.function(
            lambda x, h0, mask: layer.run_with_states(x, h0, mask),
            input_signature=spec,
            jit_compile=mode == "xla",
        )
    outputs, (h,) = run(tf.constant(x), tf.constant(h0), tf.constant(mask))
    y_ref, (h_ref,) = reference.step_cell(layer.cell, x, [h0], mask)
    np.testing.assert_allclose(outputs, y_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h, h_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(h[0, :3], np.broadcast_to(h0[0], (3, UNITS)))


def test_run_with_states_is_what_the_layer_returns():
    # Also unrolled, and with zeros as the outputs of masked steps.
    options = {"unroll": True, "zero_output_for_mask": True, "return_state": True}
    layer = make_layer("float64", **options)
    x = sequences(dtype="float64")
    mask = np.arange(9)[None, :] < np.array([[9], [5], [2], [7]])
    outputs, (h,) = layer.run_with_states(x, mask=mask)
    y, h_last = make_layer("float64", return_sequences=True, **options)(x, mask=mask)
    np.testing.assert_array_equal(outputs, y)
    np.testing.assert_array_equal(h[:, -1], h_last)


def test_run_with_states_goes_backwards_in_processing_order():
    forward = make_layer("float64")
    backward = make_layer("float64", go_backwards=True)
    x = sequences(dtype="float64")
    y_b, (h_b,) = backward.run_with_states(x)
    y_f, (h_f,) = forward.run_with_states(x[:, ::-1])
    np.testing.assert_allclose(y_b, y_f, rtol=1e-12)
    np.testing.assert_allclose(h_b, h_f, rtol=1e-12)


@pytest.mark.parametrize("mode", MODES, ids=MODES)
def test_run_with_states_of_no_steps(mode):
    layer = make_layer()
    run = layer.run_with_states
    if mode != "eager":  # the number of steps is only known at run time
        spec = [tf.TensorSpec((None, None, FEATURES)), tf.TensorSpec((None, UNITS))]
        run = tf.function(run, input_signature=spec, jit_compile=mode == "xla")
    outputs, (h,) = run(sequences(steps=0), np.ones((4, UNITS), "float32"))
    assert outputs.shape == (4, 0, 1) and h.shape == (4, 0, UNITS)


def test_run_with_states_checks_the_feature_size():
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, time, 3\)"):
        make_layer().run_with_states(np.zeros((2, 5, 2), "float32"))
