"""Every mistake a user can make gets an error that names the problem."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradrnn
from tf_gradrnn import value_and_gradient


def sequences(shape=(2, 5, 3), dtype="float32"):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("units", [0, -3, 2.5, True, "4"], ids=str)
def test_units_must_be_a_positive_int(units):
    with pytest.raises(ValueError, match="units must be a positive integer"):
        tf_gradrnn.GradientRNN(units)


def test_hidden_units_must_not_be_empty():
    with pytest.raises(ValueError, match="hidden_units must name at least one hidden layer"):
        tf_gradrnn.GradientRNNCell(4, hidden_units=())


@pytest.mark.parametrize("hidden_units", [(8, 0), (-1,), (8.0,)], ids=str)
def test_hidden_units_must_be_positive_ints(hidden_units):
    with pytest.raises(ValueError, match="hidden_units must be positive integers"):
        tf_gradrnn.GradientRNN(4, hidden_units=hidden_units)


def test_potential_must_be_a_layer():
    with pytest.raises(TypeError, match="potential must be a Keras layer or model"):
        tf_gradrnn.GradientRNN(4, potential=lambda z: z)


def test_batch_normalization_in_potential_is_refused():
    potential = keras.Sequential(
        [keras.layers.Dense(4), keras.layers.BatchNormalization(), keras.layers.Dense(1)]
    )
    with pytest.raises(ValueError, match="BatchNormalization.*mixes samples"):
        tf_gradrnn.GradientRNN(4, potential=potential)


def test_half_precision_model_can_hold_a_float32_layer():
    keras.config.set_dtype_policy("mixed_float16")
    layer = tf_gradrnn.GradientRNN(4, hidden_units=(5,), dtype="float32")
    assert layer(sequences()).dtype == "float32"


def test_potential_dtype_must_match_the_cell():
    layer = tf_gradrnn.GradientRNN(4, potential=keras.layers.Dense(1), dtype="float64")
    with pytest.raises(ValueError, match="potential computes in float32 but the cell in float64"):
        layer(sequences(dtype="float64"))


@pytest.mark.parametrize("shape", [(5, 3), (2, 5, 3, 1)], ids=["rank2", "rank4"])
def test_input_rank_is_checked(shape):
    with pytest.raises(ValueError, match="expected ndim=3"):
        tf_gradrnn.GradientRNN(4)(sequences(shape))


def test_input_rank_is_checked_at_build():
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, time, features\)"):
        tf_gradrnn.GradientRNN(4).build((2, 3))


def test_feature_size_is_checked():
    layer = tf_gradrnn.GradientRNN(4)
    layer(sequences())
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        layer(sequences((2, 5, 2)))


def test_cell_feature_size_is_checked():
    cell = tf_gradrnn.GradientRNNCell(4)
    cell.build((None, 3))
    with pytest.raises(ValueError, match="built for 3 input features"):
        cell(np.zeros((2, 5), "float32"), [np.zeros((2, 4), "float32")])


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_integer_inputs_are_refused(dtype):
    with pytest.raises(TypeError, match=f"must be floating point.*got dtype {dtype}"):
        tf_gradrnn.GradientRNN(4)(sequences().astype(dtype))


def test_string_inputs_are_refused():
    with pytest.raises(TypeError, match="must be floating point.*got dtype string"):
        tf_gradrnn.GradientRNN(4)(np.full((2, 5, 3), "a"))


def test_potential_with_vector_output_is_refused():
    layer = tf_gradrnn.GradientRNN(4, potential=keras.layers.Dense(3))
    with pytest.raises(ValueError, match=r"one scalar per sample.*got output shape \(2, 3\)"):
        layer(sequences())


def test_potential_that_ignores_its_input_is_refused():
    class Constant(keras.layers.Layer):
        def build(self, input_shape):
            self.c = self.add_weight(shape=(1,), initializer="ones")

        def call(self, z):
            return tf.zeros_like(z[:, :1]) * 0.0 + self.c

    layer = tf_gradrnn.GradientRNN(4, potential=Constant())
    with pytest.raises(ValueError, match="does not depend on its state h"):
        layer(sequences())


def test_initial_state_shape_is_checked():
    layer = tf_gradrnn.GradientRNN(4)
    with pytest.raises(
        ValueError, match=r"initial_state must have shape \(batch, 4\), got \(2, 3\)"
    ):
        layer(sequences(), initial_state=np.zeros((2, 3), "float32"))


def test_initial_state_dtype_is_checked():
    layer = tf_gradrnn.GradientRNN(4)
    with pytest.raises(TypeError, match="initial_state must be floating point"):
        layer(sequences(), initial_state=np.zeros((2, 4), "int32"))


def test_value_and_gradient_names_bad_scalar_functions():
    x = tf.ones((2, 3))
    with pytest.raises(ValueError, match="one scalar per sample"):
        value_and_gradient(lambda z: z, x)
    with pytest.raises(ValueError, match="floating-point"):
        value_and_gradient(lambda z: tf.cast(z[:, 0] > 0, tf.int32), x)


def test_numpy_numbers_are_accepted():
    layer = tf_gradrnn.GradientRNN(
        np.int64(4),
        hidden_units=np.array([5, 7]),
        state_bound=np.float32(2.5),
        checkpoint_every=np.int64(3),
    )
    assert (layer.units, layer.hidden_units, layer.cell.state_bound) == (4, (5, 7), 2.5)
    assert type(layer.units) is int and layer.checkpoint_every == 3
    cell = tf_gradrnn.HamiltonianCell(np.int64(2), dt=np.float32(0.25), substeps=np.int32(3))
    assert (cell.coordinates, cell.dt, cell.substeps) == (2, 0.25, 3)


def test_non_float_inputs_to_a_bare_cell_name_the_cell():
    cell = tf_gradrnn.GradientRNNCell(4)
    cell.build((None, 3))
    with pytest.raises(TypeError, match="GradientRNNCell inputs must be floating point"):
        cell(np.zeros((2, 3), "int32"), [np.zeros((2, 4), "float32")])
