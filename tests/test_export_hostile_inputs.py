"""Hostile inputs to the exported SavedModel signatures: NaN and Inf, sequences of no steps, an
empty batch, other dtypes, a wrong initial state and a long stream in chunks (docs/robustness.md
has the table; tests/test_export.py has the signatures' other bad inputs)."""

import numpy as np
import pytest
import tensorflow as tf

import tf_gradrnn

BATCH, STEPS, FEATURES, UNITS = 3, 5, 3, 4


def sequences(batch=BATCH, steps=STEPS, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, steps, FEATURES)).astype("float32")


@pytest.fixture(scope="module")
def signatures(tmp_path_factory):
    layer = tf_gradrnn.GradientRNN(UNITS, hidden_units=(8,), return_sequences=True)
    layer.build((None, None, FEATURES))
    rng = np.random.default_rng(1)
    layer.set_weights([0.5 * rng.standard_normal(w.shape) for w in layer.get_weights()])
    path = tf_gradrnn.export_saved_model(layer, tmp_path_factory.mktemp("export"), warmup=False)
    return tf.saved_model.load(str(path)).signatures


def test_nan_input_poisons_only_its_own_sample(signatures):
    x = sequences()
    x_nan = x.copy()
    x_nan[0, 2, 1] = np.nan
    clean = signatures["serving_default"](x=tf.constant(x))
    out = signatures["serving_default"](x=tf.constant(x_nan))
    np.testing.assert_array_equal(out["y"][0, :2], clean["y"][0, :2])
    assert np.isnan(out["y"][0, 2:]).all() and np.isnan(out["h"][0]).all()
    for name in ("y", "h", "h_seq"):
        np.testing.assert_array_equal(out[name][1:], clean[name][1:])
    h = np.zeros((BATCH, UNITS), "float32")
    h[1] = np.inf
    step = signatures["step"](x_t=tf.constant(x[:, 0]), h=tf.constant(h))
    clean_step = signatures["step"](x_t=tf.constant(x[:, 0]), h=tf.zeros((BATCH, UNITS)))
    for name in ("y_t", "h_next"):
        np.testing.assert_array_equal(step[name].numpy()[[0, 2]], clean_step[name].numpy()[[0, 2]])


def test_empty_sequence_from_zeros_returns_no_outputs_and_zeros(signatures):
    # `sequence` with a given h0 is tests/test_export.py's.
    out = signatures["serving_default"](x=tf.zeros((BATCH, 0, FEATURES)))
    assert out["y"].shape == (BATCH, 0) and out["h_seq"].shape == (BATCH, 0, UNITS)
    np.testing.assert_array_equal(out["h"], np.zeros((BATCH, UNITS)))


def test_empty_batch_gives_empty_outputs(signatures):
    out = signatures["serving_default"](x=tf.zeros((0, STEPS, FEATURES)))
    assert out["y"].shape == (0, STEPS) and out["h"].shape == (0, UNITS)
    assert out["h_seq"].shape == (0, STEPS, UNITS)
    out = signatures["step"](x_t=tf.zeros((0, FEATURES)), h=tf.zeros((0, UNITS)))
    assert out["y_t"].shape == (0,) and out["h_next"].shape == (0, UNITS)


@pytest.mark.parametrize("dtype", [tf.float64, tf.float16], ids=str)
def test_other_float_tensors_are_refused(signatures, dtype):
    # int32 is tests/test_export.py's.
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor"):
        signatures["serving_default"](x=tf.zeros((BATCH, STEPS, FEATURES), dtype))


def test_numpy_float64_is_converted(signatures):
    x = sequences()
    out = signatures["serving_default"](x=x.astype("float64"))
    np.testing.assert_array_equal(out["y"], signatures["serving_default"](x=tf.constant(x))["y"])


@pytest.mark.parametrize("shape", [(BATCH, UNITS + 1), (UNITS,)], ids=["size", "rank"])
def test_initial_state_of_the_wrong_shape_names_h0(signatures, shape):
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=rf"input h0 must have shape \(batch, {UNITS}\)"
    ):
        signatures["sequence"](x=tf.constant(sequences()), h0=tf.zeros(shape))


def test_long_stream_in_chunks_equals_one_call(signatures):
    # A client with an unbounded stream calls `sequence` (or `step`) chunk by chunk, carrying h.
    x = sequences(steps=12)
    whole = signatures["serving_default"](x=tf.constant(x))
    h, ys = tf.zeros((BATCH, UNITS)), []
    for start in range(0, 12, 5):
        out = signatures["sequence"](x=tf.constant(x[:, start : start + 5]), h0=h)
        h = out["h"]
        ys.append(out["y"])
    np.testing.assert_array_equal(np.concatenate(ys, axis=1), whole["y"])
    np.testing.assert_array_equal(h, whole["h"])
