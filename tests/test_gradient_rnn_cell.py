"""GradientRNNCell: the Keras cell contract, the state gradient's two paths, the state bound, and
one test per bad argument or bad call, each asserting the message names the problem."""

import keras
import numpy as np
import pytest
import reference
import tensorflow as tf

from tf_gradrnn import GradientRNNCell

FEATURES, UNITS, HIDDEN, BATCH = 3, 4, (6, 5), 3


def built_cell(dtype="float64", **kwargs):
    cell = GradientRNNCell(UNITS, hidden_units=HIDDEN, dtype=dtype, **kwargs)
    cell.build((None, FEATURES))
    return cell


def step_inputs(seed=1, dtype="float64"):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, FEATURES)).astype(dtype)
    return x, rng.standard_normal((BATCH, UNITS)).astype(dtype)


# ---- the cell contract ----


def test_cell_contract():
    cell = built_cell("float32")
    assert cell.state_size == UNITS and cell.output_size == 1
    (h0,) = cell.get_initial_state(batch_size=5)
    assert h0.shape == (5, UNITS) and not np.any(h0.numpy())
    x, h = step_inputs(dtype="float32")
    y_list, (h_list,) = cell(x, [h])
    y_bare, (h_bare,) = cell(x, tf.constant(h))
    y_tuple, _ = cell(x, (h,))
    assert y_list.shape == (BATCH, 1) and h_list.shape == (BATCH, UNITS)
    np.testing.assert_array_equal(y_list, y_bare)
    np.testing.assert_array_equal(h_list, h_bare)
    np.testing.assert_array_equal(y_list, y_tuple)


def test_call_runs_the_step_function():
    cell = built_cell()
    x, h = step_inputs()
    y, (h_next,) = cell(x, [h])
    y_step, (h_step,) = cell.step_function()(tf.constant(x), [tf.constant(h)])
    np.testing.assert_array_equal(y, y_step)
    np.testing.assert_array_equal(h_next, h_step)


def test_cell_works_inside_plain_keras_rnn():
    cell = GradientRNNCell(UNITS, hidden_units=HIDDEN, dtype="float64")
    rnn = keras.layers.RNN(cell, return_sequences=True, dtype="float64")
    x = np.random.default_rng(0).standard_normal((BATCH, 7, FEATURES))
    y = rnn(x)
    y_ref, _ = reference.run(cell.potential.get_weights(), x)
    np.testing.assert_allclose(y.numpy()[..., 0], y_ref, rtol=1e-12, atol=1e-13)


# ---- the state gradient: closed form or nested tape ----


def test_closed_form_and_nested_tape_give_the_same_step():
    fast, tape = built_cell(), built_cell(state_gradient="tape")
    assert fast.uses_closed_form and not tape.uses_closed_form
    tape.set_weights(fast.get_weights())
    x, h = step_inputs()
    y_fast, (h_fast,) = fast(x, [h])
    y_tape, (h_tape,) = tape(x, [h])
    np.testing.assert_allclose(y_fast, y_tape, rtol=1e-13)
    np.testing.assert_allclose(h_fast, h_tape, rtol=1e-12, atol=1e-14)


def test_auto_uses_the_closed_form_only_where_it_exists():
    assert GradientRNNCell(UNITS).uses_closed_form
    assert not GradientRNNCell(UNITS, activation="gelu").uses_closed_form
    assert not GradientRNNCell(UNITS, potential=keras.layers.Dense(1)).uses_closed_form


def test_closed_form_request_that_cannot_be_met_is_refused():
    with pytest.raises(ValueError, match="state_gradient='closed_form' needs an MLPPotential"):
        GradientRNNCell(UNITS, activation="gelu", state_gradient="closed_form")


def test_unknown_state_gradient_is_refused():
    with pytest.raises(ValueError, match="state_gradient must be one of"):
        GradientRNNCell(UNITS, state_gradient="fast")


# ---- the state bound ----


@pytest.mark.parametrize("state_gradient", ["closed_form", "tape"])
def test_state_bound_is_a_smooth_saturation_of_the_gradient(state_gradient):
    bound = 0.3
    bounded = built_cell(state_bound=bound, state_gradient=state_gradient)
    free = built_cell(state_gradient=state_gradient)
    free.set_weights([3.0 * w for w in bounded.get_weights()])
    bounded.set_weights(free.get_weights())
    x, h = step_inputs()
    y_b, (h_b,) = bounded(x, [h])
    y_f, (h_f,) = free(x, [h])
    np.testing.assert_array_equal(y_b, y_f)
    np.testing.assert_allclose(h_b, bound * np.tanh(h_f.numpy() / bound), rtol=1e-14)
    assert np.max(np.abs(h_b)) < bound < np.max(np.abs(h_f))


@pytest.mark.parametrize("bound", [np.finfo("float32").tiny, np.finfo("float32").max], ids=str)
def test_state_bounds_at_the_ends_of_the_float32_range_stay_finite(bound):
    cell = built_cell("float32", state_bound=float(bound))
    x, h = (tf.constant(v) for v in step_inputs(dtype="float32"))
    with tf.GradientTape() as tape:
        tape.watch(h)
        _, (h_next,) = cell(x, [h])
        loss = tf.reduce_sum(h_next)
    grads = tape.gradient(loss, [h, *cell.trainable_weights])
    assert np.isfinite(h_next.numpy()).all()
    assert all(np.isfinite(g.numpy()).all() for g in grads if g is not None)


@pytest.mark.parametrize("bound", [0, -1.0, float("inf"), float("nan"), "2", True], ids=str)
def test_bad_state_bound(bound):
    with pytest.raises(ValueError, match="state_bound must be a positive finite number"):
        GradientRNNCell(UNITS, state_bound=bound)


@pytest.mark.parametrize("bound", [1e39, 1e-50], ids=["overflows", "underflows"])
def test_state_bound_must_be_a_normal_number_of_the_compute_dtype(bound):
    with pytest.raises(ValueError, match=r"state_bound must lie in float32's range .*1\.18e-38"):
        GradientRNNCell(UNITS, state_bound=bound)
    assert GradientRNNCell(UNITS, state_bound=bound, dtype="float64").state_bound == bound


# ---- arguments ----


def test_numpy_numbers_are_accepted():
    cell = GradientRNNCell(
        np.int64(UNITS), hidden_units=np.array([5, 7]), state_bound=np.float32(2.5)
    )
    assert (cell.units, cell.hidden_units, cell.state_bound) == (UNITS, (5, 7), 2.5)
    assert type(cell.units) is int and all(type(u) is int for u in cell.hidden_units)
    assert GradientRNNCell(UNITS, hidden_units=np.int32(8)).hidden_units == (8,)


@pytest.mark.parametrize("units", [0, -3, 2.5, True, np.bool_(True), "4"], ids=repr)
def test_units_must_be_a_positive_int(units):
    with pytest.raises(ValueError, match="units must be a positive integer"):
        GradientRNNCell(units)


def test_hidden_units_must_not_be_empty():
    with pytest.raises(ValueError, match="hidden_units must name at least one hidden layer"):
        GradientRNNCell(UNITS, hidden_units=())


@pytest.mark.parametrize("hidden_units", [(8, 0), (-1,), (8.0,), (True,)], ids=str)
def test_hidden_units_must_be_positive_ints(hidden_units):
    with pytest.raises(ValueError, match="hidden_units must be positive integers"):
        GradientRNNCell(UNITS, hidden_units=hidden_units)


def test_potential_must_be_a_layer():
    with pytest.raises(TypeError, match="potential must be a Keras layer or model"):
        GradientRNNCell(UNITS, potential=lambda z: z)


def test_batch_normalization_in_potential_is_refused():
    potential = keras.Sequential(
        [keras.layers.Dense(4), keras.layers.BatchNormalization(), keras.layers.Dense(1)]
    )
    with pytest.raises(ValueError, match="BatchNormalization.*mixes samples"):
        GradientRNNCell(UNITS, potential=potential)


def test_potential_dtype_must_match_the_cell():
    cell = GradientRNNCell(UNITS, potential=keras.layers.Dense(1), dtype="float64")
    with pytest.raises(ValueError, match="potential computes in float32 but the cell in float64"):
        cell.build((None, FEATURES))


def test_potential_with_vector_output_is_refused():
    cell = GradientRNNCell(UNITS, potential=keras.layers.Dense(3))
    x, h = step_inputs(dtype="float32")
    with pytest.raises(ValueError, match=r"one scalar per sample.*got output shape \(3, 3\)"):
        cell(x, [h])


def test_potential_that_ignores_its_input_is_refused():
    class Constant(keras.layers.Layer):
        def build(self, input_shape):
            self.c = self.add_weight(shape=(1,), initializer="ones")

        def call(self, z):
            return tf.zeros_like(z[:, :1]) * 0.0 + self.c

    cell = GradientRNNCell(UNITS, potential=Constant())
    x, h = step_inputs(dtype="float32")
    with pytest.raises(ValueError, match="does not depend on its state h"):
        cell(x, [h])


def test_potential_with_integer_output_is_refused():
    class Sign(keras.layers.Layer):
        def call(self, z):
            return tf.cast(z[:, :1] > 0, tf.int32)

    cell = GradientRNNCell(UNITS, potential=Sign())
    x, h = step_inputs(dtype="float32")
    with pytest.raises(ValueError, match="must return floating-point values, got dtype int32"):
        cell(x, [h])


def test_rank_one_potential_output_is_accepted():
    class SumOfSquares(keras.layers.Layer):
        def call(self, z):
            return tf.reduce_sum(z**2, axis=-1)

    cell = GradientRNNCell(2, potential=SumOfSquares(dtype="float64"), dtype="float64")
    # F = |x|^2 + |h|^2: y = 1 + 2 and h_next = 2 h at x = 1, h = (1, 1).
    y, (h,) = cell(np.ones((1, 1)), [np.ones((1, 2))])
    np.testing.assert_allclose(y.numpy(), [[3.0]])
    np.testing.assert_allclose(h.numpy(), [[2.0, 2.0]])


# ---- a bare cell called wrongly ----


def test_build_needs_one_time_step_with_known_features():
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, features\)"):
        GradientRNNCell(UNITS).build((2, 5, FEATURES))


def test_feature_size_is_checked():
    cell = built_cell("float32")
    with pytest.raises(ValueError, match="built for 3 input features"):
        cell(np.zeros((2, 5), "float32"), [np.zeros((2, UNITS), "float32")])


def test_state_shape_is_checked():
    cell = built_cell("float32")
    x, _ = step_inputs(dtype="float32")
    with pytest.raises(
        ValueError, match=r"expects the state h of shape \(batch, 4\), got \(3, 2\)"
    ):
        cell(x, [np.zeros((BATCH, 2), "float32")])
    with pytest.raises(ValueError, match=r"expects states \[h\]"):
        cell(x, [np.zeros((BATCH, UNITS), "float32")] * 2)


def test_integer_inputs_are_refused_naming_the_cell():
    cell = built_cell("float32")
    with pytest.raises(TypeError, match="GradientRNNCell inputs must be floating point.*int32"):
        cell(np.zeros((BATCH, FEATURES), "int32"), [np.zeros((BATCH, UNITS), "float32")])
