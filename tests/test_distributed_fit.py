"""`distributed_fit` in one process: it is `model.fit` for a compiled model, callbacks included.

Under several replicas and workers it is tested in `test_distributed.py` and
`test_cli_distributed.py`, which need processes of their own.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradrnn

N, T, D, BATCH, EPOCHS = 10, 6, 3, 4, 3  # 3 batches an epoch, the last of 2


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, D)).astype("float32")
    y = rng.standard_normal((N, T, 1)).astype("float32")
    mask = (np.arange(T) < rng.integers(1, T + 1, N)[:, None]).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y, mask)).batch(BATCH)


def compiled_model():
    model = keras.Sequential(
        [keras.Input((T, D)), tf_gradrnn.GradientRNN(3, hidden_units=(8,), return_sequences=True)]
    )
    rng = np.random.default_rng(1)
    model.set_weights([0.5 * rng.standard_normal(w.shape) for w in model.get_weights()])
    optimizer = keras.optimizers.Adam(0.05, global_clipnorm=0.5)
    model.compile(optimizer=optimizer, loss=tf_gradrnn.MaskedMeanSquaredError())
    return model


def test_distributed_fit_equals_model_fit_on_one_device():
    expected = compiled_model()
    fit = expected.fit(data(), validation_data=data(), epochs=EPOCHS, shuffle=False, verbose=0)
    model = compiled_model()
    history = tf_gradrnn.distributed_fit(
        model,
        data().repeat(EPOCHS),
        epochs=EPOCHS,
        steps_per_epoch=3,
        validation_data=data(),
        verbose=0,
    )
    assert history is model.history
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(history.history[key], fit.history[key], rtol=1e-5)
    for a, b in zip(model.get_weights(), expected.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_distributed_fit_drives_callbacks_and_resumes_at_initial_epoch():
    seen = []
    log = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append((epoch, sorted(logs)))
    )
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=1e9)
    model = compiled_model()
    tf_gradrnn.distributed_fit(
        model,
        data().repeat(),
        epochs=5,
        initial_epoch=1,
        steps_per_epoch=3,
        callbacks=[log, stop],
        verbose=0,
    )
    # Epochs 2 and 3 (0-based 1, 2): the first sets the best, the second stops without a gain.
    assert seen == [(1, ["loss"]), (2, ["loss"])]


def test_a_dataset_shorter_than_the_epochs_is_a_clear_error():
    with pytest.raises(ValueError, match=r"dataset ended in epoch 2 after 0 of its 3 batches"):
        tf_gradrnn.distributed_fit(compiled_model(), data(), epochs=2, steps_per_epoch=3, verbose=0)


def test_a_loss_scaling_optimizer_gets_the_scaled_loss():
    results = []
    for train in ("fit", "distributed_fit"):
        model = compiled_model()
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, loss_scale_factor=1024.0),
            loss=tf_gradrnn.MaskedMeanSquaredError(),
        )
        if train == "fit":
            model.fit(data(), epochs=2, shuffle=False, verbose=0)
        else:
            tf_gradrnn.distributed_fit(
                model, data().repeat(2), epochs=2, steps_per_epoch=3, verbose=0
            )
        results.append(model.get_weights())
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_validation_calls_the_test_callbacks():
    events = []
    callback = keras.callbacks.LambdaCallback(
        on_test_begin=lambda logs: events.append("begin"),
        on_test_batch_end=lambda batch, logs: events.append(f"batch {batch}"),
        on_test_end=lambda logs: events.append(f"end {sorted(logs)}"),
    )
    tf_gradrnn.distributed_fit(
        compiled_model(),
        data(),
        epochs=1,
        steps_per_epoch=3,
        validation_data=data(),
        callbacks=[callback],
        verbose=0,
    )
    assert events == ["begin", "batch 0", "batch 1", "batch 2", "end ['loss']"]


def test_bad_arguments_are_clear_errors():
    x = np.zeros((N, T, D), "float32")
    with pytest.raises(TypeError, match="validation_data as a tf.data.Dataset .* got tuple"):
        tf_gradrnn.distributed_fit(
            compiled_model(), data(), epochs=1, steps_per_epoch=3, validation_data=(x, x)
        )
    unbuilt = keras.Sequential([keras.layers.Dense(1)])
    unbuilt.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="needs a built model"):
        tf_gradrnn.distributed_fit(unbuilt, data(), epochs=1, steps_per_epoch=3)
    uncompiled = keras.Sequential([keras.Input((T, D)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="needs a compiled model"):
        tf_gradrnn.distributed_fit(uncompiled, data(), epochs=1, steps_per_epoch=3)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"steps_per_epoch": 0}, "steps_per_epoch must be a positive integer, got 0"),
        ({"steps_per_epoch": -1}, "steps_per_epoch must be a positive integer, got -1"),
        ({"steps_per_epoch": 2.0}, "steps_per_epoch must be a positive integer, got 2.0"),
        ({"steps_per_epoch": True}, "steps_per_epoch must be a positive integer, got True"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"epochs": "2"}, "epochs must be a positive integer, got '2'"),
        ({"initial_epoch": -1}, "initial_epoch must be a non-negative integer, got -1"),
        ({"initial_epoch": 3}, r"initial_epoch \(3\) is past epochs \(2\)"),
        ({"verbose": 3}, 'verbose must be "auto", 0, 1 or 2, got 3'),
    ],
    ids=[
        "steps_zero",
        "steps_negative",
        "steps_float",
        "steps_bool",
        "epochs_zero",
        "epochs_string",
        "initial_negative",
        "initial_past_epochs",
        "verbose",
    ],
)
def test_bad_counts_are_refused_naming_the_argument(arguments, message):
    arguments = {"epochs": 2, "steps_per_epoch": 3, "verbose": 0, **arguments}
    with pytest.raises(ValueError, match=message):
        tf_gradrnn.distributed_fit(compiled_model(), data().repeat(), **arguments)


def test_a_callback_that_is_not_a_keras_callback_is_refused():
    with pytest.raises(
        TypeError,
        match="callbacks must be keras.callbacks.Callback instances, got builtin_function",
    ):
        tf_gradrnn.distributed_fit(
            compiled_model(), data(), epochs=1, steps_per_epoch=3, callbacks=[len], verbose=0
        )


def test_numpy_integer_counts_and_a_single_callback_are_accepted():
    seen = []
    log = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    tf_gradrnn.distributed_fit(
        compiled_model(),
        data().repeat(),
        epochs=np.int64(2),
        steps_per_epoch=np.int32(3),
        callbacks=log,  # as in fit
        verbose=0,
    )
    assert seen == [0, 1]
