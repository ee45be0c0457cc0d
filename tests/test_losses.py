"""`MaskedMeanSquaredError` on one device: the closed form, Keras' own loss, round trips.

Its behaviour under several replicas is in `test_distributed.py` and
`test_cli_distributed.py`, which need processes of their own.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradrnn

B, T, K = 5, 7, 1


def arrays(seed=0):
    rng = np.random.default_rng(seed)
    y_true = rng.standard_normal((B, T, K))
    y_pred = rng.standard_normal((B, T, K))
    mask = np.arange(T) < rng.integers(1, T + 1, B)[:, None]
    return y_true, y_pred, mask


def test_masked_loss_is_the_mean_over_real_steps():
    y_true, y_pred, mask = arrays()
    loss = tf_gradrnn.MaskedMeanSquaredError(dtype="float64")
    expected = np.sum(mask * (y_pred - y_true)[..., 0] ** 2) / mask.sum()
    np.testing.assert_allclose(float(loss(y_true, y_pred, mask)), expected, rtol=1e-14)
    keras_loss = keras.losses.MeanSquaredError(reduction="mean_with_sample_weight", dtype="float64")
    np.testing.assert_allclose(float(keras_loss(y_true, y_pred, mask)), expected, rtol=1e-14)


def test_masked_loss_without_weights_or_with_per_sequence_weights():
    y_true, y_pred, _ = arrays()
    loss = tf_gradrnn.MaskedMeanSquaredError(dtype="float64")
    errors = (y_pred - y_true)[..., 0] ** 2
    np.testing.assert_allclose(float(loss(y_true, y_pred)), errors.mean(), rtol=1e-14)
    weights = np.array([0.0, 1.0, 2.0, 0.5, 1.0])
    expected = np.sum(weights[:, None] * errors) / (T * weights.sum())
    np.testing.assert_allclose(float(loss(y_true, y_pred, weights)), expected, rtol=1e-14)


def test_masked_loss_accepts_targets_without_the_last_axis():
    y_true, y_pred, mask = arrays()
    loss = tf_gradrnn.MaskedMeanSquaredError(dtype="float64")
    np.testing.assert_allclose(
        float(loss(y_true[..., 0], y_pred, mask)), float(loss(y_true, y_pred, mask)), rtol=1e-15
    )


def test_no_real_step_gives_zero_not_nan():
    y_true, y_pred, mask = arrays()
    loss = tf_gradrnn.MaskedMeanSquaredError()
    assert float(loss(y_true, y_pred, np.zeros_like(mask))) == 0.0


def test_masked_loss_round_trips_through_config_and_a_saved_model(tmp_path):
    loss = tf_gradrnn.MaskedMeanSquaredError(name="steps_mse")
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, tf_gradrnn.MaskedMeanSquaredError) and clone.name == "steps_mse"
    model = keras.Sequential([keras.Input((T, 3)), tf_gradrnn.GradientRNN(2, hidden_units=(4,))])
    model.compile(optimizer="sgd", loss=loss)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(reloaded.loss, tf_gradrnn.MaskedMeanSquaredError)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_fit_with_the_masked_loss_matches_keras_loss_on_one_device(jit_compile):
    y_true, _, mask = arrays()
    x = np.random.default_rng(1).standard_normal((B, T, 3)).astype("float32")
    results = []
    for loss in (
        tf_gradrnn.MaskedMeanSquaredError(),
        keras.losses.MeanSquaredError(reduction="mean_with_sample_weight"),
    ):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((T, 3)),
                tf_gradrnn.GradientRNN(2, hidden_units=(4,), return_sequences=True),
            ]
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss, jit_compile=jit_compile)
        history = model.fit(
            x, y_true, sample_weight=mask.astype("float32"), batch_size=2, epochs=2, verbose=0
        )
        results.append((history.history["loss"], model.get_weights()))
    (loss_a, weights_a), (loss_b, weights_b) = results
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-6)
    for a, b in zip(weights_a, weights_b, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("batch", [1, 4])
def test_weights_with_a_trailing_axis_of_one(batch):
    y_true, y_pred, mask = (a[:batch] for a in arrays())
    loss = tf_gradrnn.MaskedMeanSquaredError(dtype="float64")
    expected = np.sum(mask * (y_pred - y_true)[..., 0] ** 2) / mask.sum()
    for y_t, y_p in ((y_true, y_pred), (y_true[..., 0], y_pred[..., 0])):
        np.testing.assert_allclose(
            float(loss(y_t, y_p, mask[..., None])), expected, rtol=1e-14, err_msg=str(y_t.shape)
        )


def test_weights_that_do_not_fit_are_refused():
    y_true, y_pred, mask = arrays()
    loss = tf_gradrnn.MaskedMeanSquaredError()
    with pytest.raises(ValueError, match=r"sample_weight of shape .* does not fit errors"):
        loss(y_true[..., 0], y_pred[..., 0], np.ones((B, T, 2)))


def test_keras_mask_of_the_outputs_counts_like_a_weight():
    """Masking -> GradientRNN: the padded steps do not count, without any sample_weight."""
    y_true, _, mask = arrays()
    x = np.random.default_rng(1).standard_normal((B, T, 3)) * mask[..., None]
    model = keras.Sequential(
        [
            keras.Input((T, 3)),
            keras.layers.Masking(0.0),
            tf_gradrnn.GradientRNN(2, hidden_units=(4,), return_sequences=True),
        ]
    )
    y_pred = model.predict(x, verbose=0)
    expected = np.sum(mask * (y_pred - y_true)[..., 0] ** 2) / mask.sum()
    model.compile(loss=tf_gradrnn.MaskedMeanSquaredError())
    np.testing.assert_allclose(model.evaluate(x, y_true, verbose=0), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "shape",
    [(1, T), (B, T - 1), (T, B)],
    ids=["one_row_for_the_batch", "too_few_steps", "transposed"],
)
def test_weights_that_would_broadcast_are_refused(shape):
    # A (1, T) weight would otherwise weight every sequence of the batch alike.
    y_true, y_pred, _ = arrays()
    loss = tf_gradrnn.MaskedMeanSquaredError()
    with pytest.raises(ValueError, match=rf"sample_weight of shape \({shape[0]}, .* does not fit"):
        loss(y_true[..., 0], y_pred[..., 0], np.ones(shape))


def test_weights_of_another_batch_size_are_refused_in_a_graph():
    # The batch size is known only when the graph runs.
    y_true, y_pred, _ = arrays()
    loss = tf_gradrnn.MaskedMeanSquaredError()
    spec = tf.TensorSpec((None, T))
    call = tf.function(loss.__call__, input_signature=[spec, spec, spec])
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="sample_weight of shape.*does not fit"
    ):
        call(y_true[..., 0], y_pred[..., 0], np.ones((1, T), "float32"))
