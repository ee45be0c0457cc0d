"""GradientRNN: the Keras RNN contract (execution modes, masking, direction, state handling),
`run_with_states`, its initial-state and input checks, sequences of no steps, hostile inputs and
a diverging state."""

import keras
import numpy as np
import pytest
import reference
import tensorflow as tf
from diverging_potential import QuadraticInState

import tf_gradrnn
from tf_gradrnn import GradientRNN

FEATURES, UNITS, HIDDEN, BATCH, STEPS = 3, 4, (8, 8), 4, 9


def make_layer(dtype="float32", scale=0.6, **kwargs):
    layer = GradientRNN(UNITS, hidden_units=HIDDEN, dtype=dtype, **kwargs)
    layer.build((None, None, FEATURES))
    rng = np.random.default_rng(0)
    layer.set_weights([scale * rng.standard_normal(w.shape) for w in layer.get_weights()])
    return layer


def sequences(batch=BATCH, steps=STEPS, seed=1, dtype="float32"):
    return np.random.default_rng(seed).standard_normal((batch, steps, FEATURES)).astype(dtype)


def own_message(error: BaseException) -> str:
    """The error's message without the "Arguments received by ..." list that Keras appends
    (it names every argument, so it would satisfy any check for a name)."""
    return str(error).split("Arguments received by")[0]


# ---- numbers in every execution mode ----

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
    # Against the NumPy model and finite differences of it (tests/reference.py).
    layer = make_layer(
        dtype,
        return_sequences=True,
        return_state=True,
        unroll=unroll,
        state_gradient=state_gradient,
    )
    x = sequences(dtype=dtype)
    target = np.random.default_rng(3).standard_normal((BATCH, STEPS)).astype(dtype)
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


def twin_layers(**kwargs):
    """A closed-form layer and a nested-tape layer with the same float64 weights."""
    layers = [
        make_layer(
            "float64",
            scale=0.7,
            state_gradient=mode,
            return_sequences=True,
            return_state=True,
            **kwargs,
        )
        for mode in ("closed_form", "tape")
    ]
    layers[1].set_weights(layers[0].get_weights())
    return layers


def outputs_and_gradients(layer, x, mask=None):
    target = np.random.default_rng(2).standard_normal((BATCH, STEPS))
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y, h = layer(x, mask=mask)
        loss = tf.reduce_sum((y[..., 0] - target) ** 2) + tf.reduce_sum(tf.sin(h))
    return [t.numpy() for t in [y, h, *tape.gradient(loss, [x, *layer.trainable_weights])]]


@pytest.mark.parametrize("variant", ["masked", "go_backwards"])
def test_closed_form_equals_nested_tape(variant):
    # Without a mask, forwards, the parity matrix above compares both with the reference; each
    # activation's closed form (and its derivative) is tests/test_mlp_potential.py's.
    fast, tape = twin_layers(go_backwards=variant == "go_backwards")
    x = sequences(dtype="float64")
    mask = None
    if variant == "masked":
        mask = np.arange(STEPS)[None, :] < np.array([[9], [5], [2], [7]])
    actual, expected = outputs_and_gradients(fast, x, mask), outputs_and_gradients(tape, x, mask)
    # The same math in another order: float64 round-off, compounded over the steps.
    for a, e in zip(actual, expected, strict=True):
        assert np.max(np.abs(a - e)) <= 1e-11 * max(np.max(np.abs(e)), 1e-30)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_compiled_model_predicts_and_fits_like_eager(jit_compile):
    inputs = keras.Input((None, FEATURES))
    outputs = GradientRNN(UNITS, hidden_units=HIDDEN, return_sequences=True)(inputs)
    model = keras.Model(inputs, outputs)
    x = sequences()
    eager = model(x).numpy()
    model.compile(optimizer="sgd", loss="mse", jit_compile=jit_compile)
    np.testing.assert_allclose(model.predict(x, verbose=0), eager, rtol=1e-5, atol=1e-6)
    history = model.fit(x, np.zeros((BATCH, STEPS, 1)), epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_floatx_float64_end_to_end():
    keras.config.set_floatx("float64")
    model = keras.Sequential(
        [keras.Input((None, FEATURES)), GradientRNN(UNITS, hidden_units=HIDDEN)]
    )
    assert all(w.dtype == "float64" for w in model.weights)
    x = sequences(dtype="float64")
    assert model(x).dtype == "float64"
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    model.fit(x, np.zeros((BATCH, 1)), epochs=1, verbose=0)
    assert all(w.dtype == "float64" for w in model.weights)


def test_half_precision_model_can_hold_a_float32_layer():
    keras.config.set_dtype_policy("mixed_float16")
    layer = GradientRNN(UNITS, hidden_units=(5,), dtype="float32")
    assert layer(sequences()).dtype == "float32"


@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_other_float_inputs_are_cast_to_the_layer_dtype(dtype):
    layer = make_layer(return_sequences=True)
    x = sequences().astype(dtype)
    y = layer(x)
    assert y.dtype == "float32"
    np.testing.assert_array_equal(y, layer(x.astype("float32")))


# ---- the Keras RNN contract ----


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
    mask = np.arange(STEPS)[None, :] < lengths[:, None]
    y, h = layer(np.where(mask[..., None], x, 0.0), mask=mask)
    for i, n in enumerate(lengths):
        y_i, h_i = layer(x[i : i + 1, :n])
        np.testing.assert_allclose(h.numpy()[i], h_i.numpy()[0], rtol=1e-12)
        np.testing.assert_allclose(y.numpy()[i], y_i.numpy()[0], rtol=1e-12)


def test_masking_layer_feeds_the_mask():
    x = sequences(dtype="float64")
    x[1, 4:] = 0.0
    inputs = keras.Input((None, FEATURES), dtype="float64")
    masked = keras.layers.Masking(0.0, dtype="float64")(inputs)
    layer = GradientRNN(UNITS, hidden_units=HIDDEN, dtype="float64")
    y = keras.Model(inputs, layer(masked))(x).numpy()
    np.testing.assert_allclose(y[1], layer(x[1:2, :4]).numpy()[0], rtol=1e-12)


def test_go_backwards_equals_reversed_sequence():
    forward = make_layer("float64", return_state=True)
    backward = make_layer("float64", return_state=True, go_backwards=True)
    x = sequences(dtype="float64")
    for b, f in zip(backward(x), forward(x[:, ::-1]), strict=True):
        np.testing.assert_allclose(b, f, rtol=1e-12)


def test_initial_state_and_return_state():
    layer = make_layer("float64", return_sequences=True, return_state=True)
    x = sequences(dtype="float64")
    h0 = np.random.default_rng(4).standard_normal((BATCH, UNITS))
    y, h = layer(x, initial_state=h0)
    y_ref, h_ref = reference.run(layer.potential.get_weights(), x, h0)
    assert y.shape == (BATCH, STEPS, 1) and h.shape == (BATCH, UNITS)
    np.testing.assert_allclose(y.numpy()[..., 0], y_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h.numpy(), h_ref[:, -1], rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(y, layer(x, initial_state=[h0])[0])


def test_stateful_carries_the_state_between_calls():
    whole = make_layer("float64", return_state=True)
    stateful = GradientRNN(
        UNITS, hidden_units=HIDDEN, stateful=True, return_state=True, dtype="float64"
    )
    stateful.build((BATCH, None, FEATURES))
    stateful.set_weights(whole.get_weights())
    x = sequences(dtype="float64")
    stateful(x[:, :5])
    _, h_second = stateful(x[:, 5:])
    _, h_whole = whole(x)
    np.testing.assert_allclose(h_second, h_whole, rtol=1e-12)
    stateful.reset_state()
    np.testing.assert_allclose(stateful(x)[1], h_whole, rtol=1e-12)


def test_bidirectional():
    x = sequences(dtype="float64")
    bidi = keras.layers.Bidirectional(
        GradientRNN(UNITS, hidden_units=HIDDEN, dtype="float64"), dtype="float64"
    )
    y = bidi(x).numpy()
    assert y.shape == (BATCH, 2)
    assert bidi.backward_layer.go_backwards and not bidi.forward_layer.go_backwards
    forward = make_layer("float64")
    forward.set_weights(bidi.forward_layer.get_weights())
    np.testing.assert_allclose(y[:, :1], forward(x), rtol=1e-12)
    forward.set_weights(bidi.backward_layer.get_weights())
    np.testing.assert_allclose(y[:, 1:], forward(x[:, ::-1]), rtol=1e-12)


def test_user_potential_is_used():
    potential = keras.Sequential(
        [keras.layers.Dense(6, activation="softplus"), keras.layers.Dense(1)], name="custom"
    )
    layer = GradientRNN(UNITS, potential=potential, return_state=True)
    y, h = layer(sequences())
    assert layer.potential is potential
    assert potential.layers[0].kernel.shape == (FEATURES + UNITS, 6)
    assert y.shape == (BATCH, 1) and h.shape == (BATCH, UNITS)


def test_weights_are_the_potentials_in_public_order():
    layer = make_layer()
    shapes = [w.shape for w in layer.get_weights()]
    assert shapes == [(FEATURES + UNITS, 8), (8,), (8, 8), (8,), (8, 1), (1,)]
    assert [w.shape for w in layer.potential.get_weights()] == shapes


def test_every_cell_argument_is_a_read_only_attribute():
    potential = tf_gradrnn.MLPPotential((3,))
    layer = GradientRNN(
        np.int64(5),
        hidden_units=(7,),
        activation="softplus",
        potential=potential,
        state_bound=2.0,
        second_order=False,
        state_gradient="tape",
    )
    expected = {
        "units": 5,
        "hidden_units": (7,),
        "activation": keras.activations.softplus,
        "potential": potential,
        "state_bound": 2.0,
        "second_order": False,
        "state_gradient": "tape",
    }
    assert set(GradientRNN.CELL_ARGUMENTS) == set(expected)
    for name, value in expected.items():
        assert getattr(layer, name) == value, name
        with pytest.raises(AttributeError):
            setattr(layer, name, None)


# ---- run_with_states ----


@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_run_with_states_equals_stepping_the_cell_by_hand(mode):
    layer = make_layer("float64")
    x = sequences(dtype="float64")
    h0 = np.random.default_rng(4).standard_normal((BATCH, UNITS))
    mask = np.random.default_rng(5).random((BATCH, STEPS)) > 0.3
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
    mask = np.arange(STEPS)[None, :] < np.array([[9], [5], [2], [7]])
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


def test_run_with_states_of_a_stateful_layer_starts_from_its_state_and_keeps_it():
    whole = make_layer("float64")
    stateful = GradientRNN(UNITS, hidden_units=HIDDEN, stateful=True, dtype="float64")
    stateful.build((BATCH, None, FEATURES))
    stateful.set_weights(whole.get_weights())
    x = sequences(dtype="float64")
    stateful(x[:, :5])
    before = stateful.states[0].numpy()
    _, (h,) = stateful.run_with_states(x[:, 5:])
    np.testing.assert_array_equal(stateful.states[0], before)
    np.testing.assert_allclose(h, whole.run_with_states(x)[1][0][:, 5:], rtol=1e-12)


@pytest.mark.parametrize("mode", MODES, ids=MODES)
def test_run_with_states_of_no_steps(mode):
    layer = make_layer()
    run = layer.run_with_states
    if mode != "eager":  # the number of steps is only known at run time
        spec = [tf.TensorSpec((None, None, FEATURES)), tf.TensorSpec((None, UNITS))]
        run = tf.function(run, input_signature=spec, jit_compile=mode == "xla")
    outputs, (h,) = run(sequences(steps=0), np.ones((BATCH, UNITS), "float32"))
    assert outputs.shape == (BATCH, 0, 1) and h.shape == (BATCH, 0, UNITS)


# ---- initial state and inputs: checked once per call ----


@pytest.mark.parametrize("shape", [(BATCH, UNITS + 1), (UNITS,), (BATCH, UNITS, 1)], ids=str)
def test_initial_state_of_the_wrong_size_or_rank_is_refused(shape):
    with pytest.raises(ValueError, match=rf"initial_state must have shape \(batch, {UNITS}\)"):
        make_layer()(sequences(), initial_state=np.zeros(shape, "float32"))


def test_initial_state_dtype_is_checked():
    with pytest.raises(TypeError, match="GradientRNN initial_state must be floating point"):
        make_layer()(sequences(), initial_state=np.zeros((BATCH, UNITS), "int32"))


def test_more_than_one_initial_state_is_refused():
    h0 = np.zeros((BATCH, UNITS), "float32")
    with pytest.raises(ValueError, match="GradientRNN has one state, so initial_state must be one"):
        make_layer()(sequences(), initial_state=[h0, h0])


@pytest.mark.parametrize("state_gradient", ["closed_form", "tape"])
def test_initial_state_batch_must_match_the_inputs(state_gradient):
    layer = make_layer(state_gradient=state_gradient)
    with pytest.raises(ValueError) as error:
        layer(sequences(), initial_state=np.zeros((2, UNITS), "float32"))
    message = own_message(error.value)
    assert "initial_state has batch size 2 but the inputs have batch size 4" in message
    # With batch sizes known only at run time, the same words in an assertion.
    run = tf.function(
        lambda x, h0: layer(x, initial_state=h0),
        input_signature=[tf.TensorSpec((None, None, FEATURES)), tf.TensorSpec((None, UNITS))],
    )
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="initial_state has another batch size than the inputs"
    ):
        run(sequences(), np.zeros((2, UNITS), "float32"))


@pytest.mark.parametrize("shape", [(5, 3), (2, 5, 3, 1)], ids=["rank2", "rank4"])
def test_input_rank_is_checked(shape):
    with pytest.raises(ValueError, match="expected ndim=3"):
        GradientRNN(UNITS)(np.zeros(shape, "float32"))


def test_input_rank_is_checked_at_build():
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, time, features\)"):
        GradientRNN(UNITS).build((2, 3))


def test_feature_size_is_checked():
    layer = make_layer()
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        layer(np.zeros((2, 5, 2), "float32"))
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, time, 3\)"):
        layer.run_with_states(np.zeros((2, 5, 2), "float32"))


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool", "str"])
def test_non_float_inputs_are_refused(dtype):
    x = np.full((2, 5, FEATURES), "a") if dtype == "str" else sequences().astype(dtype)
    name = "string" if dtype == "str" else dtype
    with pytest.raises(TypeError, match=f"GradientRNN inputs must be floating point.*{name}"):
        GradientRNN(UNITS)(x)


# ---- sequences of no steps, empty batches ----


@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_empty_sequence_returns_no_outputs_and_the_initial_state(mode):
    layer = make_layer(return_sequences=True, return_state=True)
    h0 = np.random.default_rng(2).standard_normal((BATCH, UNITS)).astype("float32")
    call = lambda x, h: layer(x, initial_state=h)  # noqa: E731
    if mode == "graph":  # the number of steps is only known at run time
        spec = [tf.TensorSpec((None, None, FEATURES)), tf.TensorSpec((None, UNITS))]
        call = tf.function(call, input_signature=spec)
    y, h = call(sequences(steps=0), h0)
    assert y.shape == (BATCH, 0, 1)
    np.testing.assert_array_equal(h, h0)


def test_empty_sequence_without_return_sequences_is_a_clear_error():
    with pytest.raises(ValueError) as error:
        make_layer()(sequences(steps=0))
    assert "0 time steps" in own_message(error.value)
    run = tf.function(make_layer(), input_signature=[tf.TensorSpec((None, None, FEATURES))])
    with pytest.raises(tf.errors.InvalidArgumentError, match="needs at least one time step"):
        run(sequences(steps=0))


@pytest.mark.parametrize("state_gradient", ["closed_form", "tape"])
def test_empty_batch_gives_empty_outputs(state_gradient):
    layer = make_layer(state_gradient=state_gradient, return_sequences=True, return_state=True)
    y, h = layer(sequences(batch=0))
    assert y.shape == (0, STEPS, 1) and h.shape == (0, UNITS)
    assert make_layer(state_gradient=state_gradient)(sequences(batch=0)).shape == (0, 1)


# ---- NaN, Inf and a diverging state ----


@pytest.mark.parametrize("state_gradient", ["closed_form", "tape"])
def test_nan_input_poisons_only_its_own_sample_from_that_step_on(state_gradient):
    layer = make_layer(state_gradient=state_gradient, return_sequences=True, return_state=True)
    x = sequences()
    x_nan = x.copy()
    x_nan[0, 2, 1] = np.nan
    y, h = (t.numpy() for t in layer(x))
    y_nan, h_nan = (t.numpy() for t in layer(x_nan))
    np.testing.assert_array_equal(y_nan[0, :2], y[0, :2])  # before the NaN
    assert np.isnan(y_nan[0, 2:]).all() and np.isnan(h_nan[0]).all()  # from it on
    np.testing.assert_array_equal(y_nan[1:], y[1:])  # the other samples are untouched
    np.testing.assert_array_equal(h_nan[1:], h[1:])


@pytest.mark.parametrize("state_gradient", ["closed_form", "tape"])
def test_inf_input_stays_in_its_own_sample(state_gradient):
    # IEEE arithmetic: a saturating activation can turn an Inf into its finite limit
    # (tanh(inf) = 1), or into NaN (inf - inf). Either way the other samples are untouched.
    layer = make_layer(state_gradient=state_gradient, return_sequences=True, return_state=True)
    x = sequences()
    x_inf = x.copy()
    x_inf[0, 2] = [np.inf, -np.inf, np.inf]
    y, h = (t.numpy() for t in layer(x))
    y_inf, h_inf = (t.numpy() for t in layer(x_inf))
    np.testing.assert_array_equal(y_inf[0, :2], y[0, :2])
    np.testing.assert_array_equal(y_inf[1:], y[1:])
    np.testing.assert_array_equal(h_inf[1:], h[1:])


def test_nan_in_training_data_stops_fit_naming_the_batch():
    model = keras.Sequential([keras.Input((5, FEATURES)), make_layer()])
    model.compile(optimizer="sgd", loss="mse")
    x = sequences(batch=8, steps=5)
    x[5, 3, 0] = np.nan  # in the third batch of 2
    before = model.get_weights()
    with pytest.raises(FloatingPointError, match=r"loss is nan at epoch 1, batch 3\b"):
        model.fit(
            x,
            np.zeros((8, 1), "float32"),
            batch_size=2,
            shuffle=False,
            callbacks=[tf_gradrnn.NonFiniteGuard()],
            verbose=0,
        )
    for w0, w in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(w, w0)  # restored, not NaN


def diverging_model(state_bound=None):
    inputs = keras.Input((120, 2))
    layer = GradientRNN(
        3, potential=QuadraticInState(2), state_bound=state_bound, return_sequences=True
    )
    model = keras.Model(inputs, keras.layers.Reshape((-1,))(layer(inputs)))
    model.compile(optimizer=keras.optimizers.SGD(1e-4), loss="mse")
    x = np.random.default_rng(0).standard_normal((8, 120, 2)).astype("float32")
    return model, (x, np.zeros((8, 120), "float32"))


def test_bounded_state_trains():
    model, data = diverging_model(state_bound=5.0)
    history = model.fit(
        *data, epochs=2, batch_size=4, callbacks=[tf_gradrnn.NonFiniteGuard()], verbose=0
    )
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_zero_input_features_are_refused_before_onednn_aborts():
    # Once a process abort in oneDNN at fit; now a ValueError at build, for the layer and
    # for the bare cell inside keras.layers.RNN.
    with pytest.raises(ValueError, match="needs at least one input feature.*\\(4, 0\\)"):
        GradientRNN(3, hidden_units=(4,))(np.zeros((4, 5, 0), "float32"))
    with pytest.raises(ValueError, match="needs at least one input feature"):
        keras.layers.RNN(tf_gradrnn.GradientRNNCell(3))(np.zeros((4, 5, 0), "float32"))
