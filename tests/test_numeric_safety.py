"""A diverging state stops training with a clear error; a bounded state keeps it finite."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradrnn


@keras.saving.register_keras_serializable(package="tf_gradrnn_tests")
class QuadraticInState(keras.layers.Layer):
    """F(x, h) = x . v + c |h|^2, so h_t = 2 c h_{t-1} + ...: it grows like (2c)^t for c > 1/2."""

    def __init__(self, features, c=1.5, **kwargs):
        super().__init__(**kwargs)
        self.features, self.c0 = features, c

    def build(self, input_shape):
        self.v = self.add_weight(shape=(input_shape[-1],), initializer="ones")
        self.c = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.c0))

    def call(self, z):
        h = z[:, self.features :]
        return tf.linalg.matvec(z, self.v) + self.c * tf.reduce_sum(h * h, axis=-1)

    def get_config(self):
        return {**super().get_config(), "features": self.features, "c": self.c0}


def diverging_model(state_bound=None):
    inputs = keras.Input((120, 2))
    layer = tf_gradrnn.GradientRNN(
        3, potential=QuadraticInState(2), state_bound=state_bound, return_sequences=True
    )
    model = keras.Model(inputs, keras.layers.Reshape((-1,))(layer(inputs)))
    model.compile(optimizer=keras.optimizers.SGD(1e-4), loss="mse")
    return model


def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((8, 120, 2)).astype("float32"), np.zeros((8, 120), "float32")


def test_diverging_run_stops_naming_epoch_and_batch_with_weights_restored():
    model = diverging_model()
    before = model.get_weights()
    with pytest.raises(FloatingPointError, match=r"loss is (nan|inf) at epoch 1, batch 1\b"):
        model.fit(
            *data(), epochs=2, batch_size=4, callbacks=[tf_gradrnn.NonFiniteGuard()], verbose=0
        )
    for w0, w1 in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(w0, w1)


def test_bounded_state_trains():
    model = diverging_model(state_bound=5.0)
    history = model.fit(
        *data(), epochs=2, batch_size=4, callbacks=[tf_gradrnn.NonFiniteGuard()], verbose=0
    )
    assert np.all(np.isfinite(history.history["loss"]))
    states = model.layers[1].cell
    assert states.state_bound == 5.0
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


@pytest.mark.parametrize("state_gradient", ["closed_form", "tape"])
def test_state_bound_is_a_smooth_saturation_of_the_gradient(state_gradient):
    bound = 0.3
    bounded = tf_gradrnn.GradientRNNCell(
        4, hidden_units=(8,), state_bound=bound, state_gradient=state_gradient, dtype="float64"
    )
    free = tf_gradrnn.GradientRNNCell(
        4, hidden_units=(8,), state_gradient=state_gradient, dtype="float64"
    )
    for cell in (bounded, free):
        cell.build((None, 3))
    free.set_weights([3.0 * w for w in bounded.get_weights()])
    bounded.set_weights(free.get_weights())
    x = np.random.default_rng(1).standard_normal((5, 3))
    h = np.random.default_rng(2).standard_normal((5, 4))
    y_b, (h_b,) = bounded(x, [h])
    y_f, (h_f,) = free(x, [h])
    np.testing.assert_array_equal(y_b, y_f)
    np.testing.assert_allclose(h_b, bound * np.tanh(h_f.numpy() / bound), rtol=1e-14)
    assert np.max(np.abs(h_b)) < bound < np.max(np.abs(h_f))


def test_bounded_layer_gradients_match_finite_differences():
    layer = tf_gradrnn.GradientRNN(3, hidden_units=(5,), state_bound=0.5, dtype="float64")
    x = np.random.default_rng(3).standard_normal((2, 10, 2))
    layer(x)
    rng = np.random.default_rng(4)
    layer.set_weights([2.0 * rng.standard_normal(w.shape) for w in layer.get_weights()])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.sin(layer(x)))
    grads = [g.numpy() for g in tape.gradient(loss, layer.trainable_weights)]
    weights = layer.get_weights()
    eps = 1e-6
    for i, w in enumerate(weights):
        for idx in list(np.ndindex(w.shape))[:6]:
            values = []
            for sign in (1, -1):
                shifted = [v.copy() for v in weights]
                shifted[i][idx] += sign * eps
                layer.set_weights(shifted)
                values.append(float(tf.reduce_sum(tf.sin(layer(x)))))
            numeric = (values[0] - values[1]) / (2 * eps)
            assert abs(grads[i][idx] - numeric) <= 1e-7 * max(1.0, abs(numeric))
        layer.set_weights(weights)


@pytest.mark.parametrize("bound", [0, -1.0, float("inf"), "2", True], ids=str)
def test_bad_state_bound(bound):
    with pytest.raises(ValueError, match="state_bound must be a positive finite number"):
        tf_gradrnn.GradientRNN(3, state_bound=bound)


def test_state_bound_round_trips(tmp_path):
    model = keras.Sequential(
        [keras.Input((None, 2)), tf_gradrnn.GradientRNN(3, hidden_units=(4,), state_bound=2.5)]
    )
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.layers[0].cell.state_bound == 2.5
    x = np.ones((1, 3, 2), "float32")
    np.testing.assert_array_equal(loaded(x), model(x))


@pytest.mark.parametrize("bound", [1e39, 1e-50], ids=["overflows", "underflows"])
def test_state_bound_must_be_a_normal_number_of_the_compute_dtype(bound):
    with pytest.raises(ValueError, match=r"state_bound must lie in float32's range .*1\.18e-38"):
        tf_gradrnn.GradientRNN(3, state_bound=bound)
    assert tf_gradrnn.GradientRNN(3, state_bound=bound, dtype="float64").cell.state_bound == bound
