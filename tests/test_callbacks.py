"""NonFiniteGuard: a diverging run stops with an error naming where, and the model (weights and
optimizer state) is put back as the epoch began."""

import keras
import numpy as np
import pytest
from diverging_potential import QuadraticInState

import tf_gradrnn


def diverging_model():
    inputs = keras.Input((120, 2))
    layer = tf_gradrnn.GradientRNN(3, potential=QuadraticInState(2), return_sequences=True)
    model = keras.Model(inputs, keras.layers.Reshape((-1,))(layer(inputs)))
    model.compile(optimizer=keras.optimizers.SGD(1e-4), loss="mse")
    return model


def diverging_data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((8, 120, 2)).astype("float32"), np.zeros((8, 120), "float32")


def test_diverging_run_stops_naming_epoch_and_batch_with_weights_restored():
    model = diverging_model()
    before = model.get_weights()
    with pytest.raises(FloatingPointError, match=r"loss is (nan|inf) at epoch 1, batch 1\b"):
        model.fit(
            *diverging_data(),
            epochs=2,
            batch_size=4,
            callbacks=[tf_gradrnn.NonFiniteGuard()],
            verbose=0,
        )
    for w0, w1 in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(w0, w1)


def adam_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4, "tanh"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def test_the_optimizer_state_is_restored_too():
    """After the guard fires, Adam's moments and step count are those of the epoch's start:
    a clean fit then equals the same fit from that state, instead of giving NaN weights."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((8, 3)).astype("float32"), rng.standard_normal((8, 1))
    poisoned = x.copy()
    poisoned[5, 0] = np.nan  # in the second batch of 4: the first one moves Adam's moments
    fit = {"batch_size": 4, "shuffle": False, "verbose": 0}

    guarded, reference = adam_model(), adam_model()
    for model in (guarded, reference):
        model.fit(x, y, **fit)  # non-zero moments at the start of the next epoch
    optimizer_state = [v.numpy() for v in reference.optimizer.variables]
    with pytest.raises(FloatingPointError, match="at epoch 1, batch 2"):
        guarded.fit(poisoned, y, callbacks=[tf_gradrnn.NonFiniteGuard()], **fit)
    for got, want in zip(guarded.optimizer.variables, optimizer_state, strict=True):
        np.testing.assert_array_equal(got.numpy(), want, err_msg=got.path)

    for model in (guarded, reference):
        model.fit(x, y, **fit)
    for got, want in zip(guarded.get_weights(), reference.get_weights(), strict=True):
        assert np.all(np.isfinite(got))
        np.testing.assert_array_equal(got, want)
