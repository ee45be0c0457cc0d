"""Gradient checkpointing over chunks of time steps changes memory, never the numbers.

What it saves is measured by tests/test_memory.py and benchmarks/memory.py.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradrnn

FEATURES, UNITS, BATCH, STEPS = 2, 3, 3, 11


def twin_layers(**kwargs):
    layers = [
        tf_gradrnn.GradientRNN(
            UNITS, hidden_units=(5, 4), checkpoint_every=every, dtype="float64", **kwargs
        )
        for every in (None, 4)
    ]
    for layer in layers:
        layer.build((None, STEPS, FEATURES))
    rng = np.random.default_rng(0)
    weights = [0.7 * rng.standard_normal(w.shape) for w in layers[0].get_weights()]
    for layer in layers:
        layer.set_weights(weights)
    return layers


def outputs_and_gradients(layer, x, mask, jit_compile=False):
    @tf.function(jit_compile=jit_compile)
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x, mask=mask)
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            loss = sum(tf.reduce_sum(tf.sin(3.0 * o)) for o in outputs)
        return [*outputs, *tape.gradient(loss, [x, *layer.trainable_weights])]

    return [t.numpy() for t in run(tf.constant(x))]


MASKS = {
    "none": None,
    "trailing": np.arange(STEPS)[None, :] < np.array([[11], [6], [2]]),
    "gaps": np.random.default_rng(5).random((BATCH, STEPS)) > 0.4,
}
VARIANTS = {
    "sequences": {"return_sequences": True},
    "last+state": {"return_state": True},
    "backwards": {"return_sequences": True, "go_backwards": True},
    "zero-output": {"return_sequences": True, "zero_output_for_mask": True},
}


@pytest.mark.parametrize("mask", list(MASKS), ids=list(MASKS))
@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_checkpointed_equals_plain(variant, mask):
    plain, checkpointed = twin_layers(**VARIANTS[variant])
    x = np.random.default_rng(1).standard_normal((BATCH, STEPS, FEATURES))
    expected = outputs_and_gradients(plain, x, MASKS[mask])
    actual = outputs_and_gradients(checkpointed, x, MASKS[mask])
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-14)


def test_checkpointed_under_xla():
    plain, checkpointed = twin_layers(return_sequences=True)
    x = np.random.default_rng(1).standard_normal((BATCH, STEPS, FEATURES))
    expected = outputs_and_gradients(plain, x, None)
    actual = outputs_and_gradients(checkpointed, x, None, jit_compile=True)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)


def test_checkpointed_model_fits_like_plain():
    keras.config.set_floatx("float64")
    x = np.random.default_rng(2).standard_normal((8, STEPS, FEATURES))
    y = np.random.default_rng(3).standard_normal((8, STEPS, 1))
    weights = []
    for every in (None, 3):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((STEPS, FEATURES)),
                tf_gradrnn.GradientRNN(
                    UNITS, hidden_units=(5,), return_sequences=True, checkpoint_every=every
                ),
            ]
        )
        model.compile(optimizer="adam", loss="mse", jit_compile=True)
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_checkpointing_refuses_a_nested_tape_potential():
    layer = tf_gradrnn.GradientRNN(UNITS, state_gradient="tape", checkpoint_every=4)
    with pytest.raises(ValueError, match="checkpoint_every needs the closed-form state gradient"):
        layer(np.zeros((1, 8, FEATURES), "float32"))


@pytest.mark.parametrize("every", [0, -2, 1.5, True, np.int64(0)], ids=repr)
def test_bad_checkpoint_every(every):
    with pytest.raises(ValueError, match="checkpoint_every must be a positive integer"):
        tf_gradrnn.GradientRNN(UNITS, checkpoint_every=every)


def test_checkpoint_every_may_be_a_numpy_int():
    layer = tf_gradrnn.GradientRNN(UNITS, checkpoint_every=np.int64(4))
    assert layer.checkpoint_every == 4 and type(layer.checkpoint_every) is int


def test_checkpointing_needs_a_known_time_dimension():
    layer = tf_gradrnn.GradientRNN(UNITS, checkpoint_every=4)
    run = tf.function(layer, input_signature=[tf.TensorSpec((None, None, FEATURES))])
    with pytest.raises(ValueError, match="checkpoint_every needs a known number of time steps"):
        run.get_concrete_function()
