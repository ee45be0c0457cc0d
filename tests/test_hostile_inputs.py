"""Hostile inputs, in the library and in the exported SavedModel signatures.

NaN or Inf inputs, empty sequences (T = 0), an empty batch (B = 0), a very long sequence,
a wrong dtype and an initial state of the wrong shape each get a clear error or a defined
result (docs/robustness.md has the table).

Run as a script, this file measures the memory of one long inference (a fresh process, so
that its peak RSS is its own):

    python tests/test_hostile_inputs.py long-sequence STEPS OUT.json
"""

import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from processes import run_processes  # noqa: E402
from rss import reset_peak, resident_mb

import tf_gradrnn  # noqa: E402

BATCH, STEPS, FEATURES, UNITS = 3, 5, 3, 4
STATE_GRADIENTS = ("closed_form", "tape")


def sequences(batch=BATCH, steps=STEPS, dtype="float32", seed=0):
    return np.random.default_rng(seed).standard_normal((batch, steps, FEATURES)).astype(dtype)


def make_layer(state_gradient="closed_form", **kwargs):
    layer = tf_gradrnn.GradientRNN(
        UNITS, hidden_units=(8,), state_gradient=state_gradient, **kwargs
    )
    layer(sequences())
    rng = np.random.default_rng(1)
    layer.set_weights([0.5 * rng.standard_normal(w.shape) for w in layer.get_weights()])
    return layer


def full_layer(state_gradient="closed_form"):
    return make_layer(state_gradient, return_sequences=True, return_state=True)


def own_message(error: BaseException) -> str:
    """The error's message without the "Arguments received by ..." list that Keras appends
    (it names every argument, so it would satisfy any check for a name)."""
    return str(error).split("Arguments received by")[0]


# ---- NaN and Inf ----


@pytest.mark.parametrize("state_gradient", STATE_GRADIENTS)
def test_nan_input_poisons_only_its_own_sample_from_that_step_on(state_gradient):
    layer = full_layer(state_gradient)
    x = sequences()
    x_nan = x.copy()
    x_nan[0, 2, 1] = np.nan
    y, h = (t.numpy() for t in layer(x))
    y_nan, h_nan = (t.numpy() for t in layer(x_nan))
    np.testing.assert_array_equal(y_nan[0, :2], y[0, :2])  # before the NaN
    assert np.isnan(y_nan[0, 2:]).all() and np.isnan(h_nan[0]).all()  # from it on
    np.testing.assert_array_equal(y_nan[1:], y[1:])  # the other samples are untouched
    np.testing.assert_array_equal(h_nan[1:], h[1:])


@pytest.mark.parametrize("state_gradient", STATE_GRADIENTS)
def test_inf_input_stays_in_its_own_sample(state_gradient):
    # IEEE arithmetic: a saturating activation can turn an Inf into its finite limit
    # (tanh(inf) = 1), or into NaN (inf - inf). Either way the other samples are untouched.
    layer = full_layer(state_gradient)
    x = sequences()
    x_inf = x.copy()
    x_inf[0, 2] = [np.inf, -np.inf, np.inf]
    y, h = (t.numpy() for t in layer(x))
    y_inf, h_inf = (t.numpy() for t in layer(x_inf))
    np.testing.assert_array_equal(y_inf[0, :2], y[0, :2])
    np.testing.assert_array_equal(y_inf[1:], y[1:])
    np.testing.assert_array_equal(h_inf[1:], h[1:])


def test_nan_in_training_data_stops_fit_naming_the_batch():
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), make_layer()])
    model.compile(optimizer="sgd", loss="mse")
    x = sequences(batch=8)
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


# ---- empty batch, empty sequence ----


@pytest.mark.parametrize("state_gradient", STATE_GRADIENTS)
def test_empty_batch_gives_empty_outputs(state_gradient):
    y, h = full_layer(state_gradient)(sequences(batch=0))
    assert y.shape == (0, STEPS, 1) and h.shape == (0, UNITS)
    assert make_layer(state_gradient)(sequences(batch=0)).shape == (0, 1)


def empty_sequence_outputs(mode):
    layer = full_layer()
    h0 = np.random.default_rng(2).standard_normal((BATCH, UNITS)).astype("float32")
    x = sequences(steps=0)
    if mode == "eager":
        return layer(x, initial_state=h0), h0
    spec = [tf.TensorSpec((None, None, FEATURES)), tf.TensorSpec((None, UNITS))]
    call = tf.function(lambda x, h: layer(x, initial_state=h), input_signature=spec)
    return call(x, h0), h0


@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_empty_sequence_returns_no_outputs_and_the_initial_state(mode):
    # The scan over no steps, as the exported signatures define it.
    (y, h), h0 = empty_sequence_outputs(mode)
    assert y.shape == (BATCH, 0, 1)
    np.testing.assert_array_equal(h, h0)


def test_empty_sequence_without_return_sequences_is_a_clear_error():
    # There is no last output of an empty sequence.
    with pytest.raises(ValueError) as error:
        make_layer()(sequences(steps=0))
    assert "time step" in own_message(error.value).lower()


# ---- dtypes ----


@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_other_float_inputs_are_cast_to_the_layer_dtype(dtype):
    layer = full_layer()
    x = sequences()
    y, _ = layer(x.astype(dtype))
    assert y.dtype == "float32"
    expected, _ = layer(x.astype(dtype).astype("float32"))
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("dtype", ["int32", "bool"])
def test_non_float_inputs_are_refused(dtype):
    with pytest.raises(TypeError, match=f"inputs must be floating point.*got dtype {dtype}"):
        full_layer()(sequences().astype(dtype))


# ---- initial state ----


@pytest.mark.parametrize("shape", [(BATCH, UNITS + 1), (UNITS,), (BATCH, UNITS, 1)], ids=str)
def test_initial_state_of_the_wrong_size_or_rank_is_refused(shape):
    with pytest.raises(ValueError, match=rf"initial_state must have shape \(batch, {UNITS}\)"):
        full_layer()(sequences(), initial_state=np.zeros(shape, "float32"))


@pytest.mark.parametrize("state_gradient", STATE_GRADIENTS)
@pytest.mark.parametrize("state_batch", [1, 2])
def test_initial_state_batch_must_match_the_inputs(state_gradient, state_batch):
    layer = full_layer(state_gradient)
    h0 = np.zeros((state_batch, UNITS), "float32")
    with pytest.raises(ValueError) as error:
        layer(sequences(), initial_state=h0)
    message = own_message(error.value)
    assert "initial_state" in message and "batch" in message, message


def test_more_than_one_initial_state_is_refused():
    h0 = np.zeros((BATCH, UNITS), "float32")
    with pytest.raises(ValueError) as error:
        full_layer()(sequences(), initial_state=[h0, h0])
    assert "initial_state" in own_message(error.value)


# ---- exported signatures ----


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    layer = make_layer(return_sequences=True)
    path = tf_gradrnn.export_saved_model(layer, tmp_path_factory.mktemp("export"), warmup=False)
    return layer, tf.saved_model.load(str(path)).signatures


def test_served_nan_input_poisons_only_its_own_sample(served):
    _, signatures = served
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


def test_served_empty_sequence_returns_no_outputs_and_the_initial_state(served):
    _, signatures = served
    out = signatures["serving_default"](x=tf.zeros((BATCH, 0, FEATURES)))
    assert out["y"].shape == (BATCH, 0) and out["h_seq"].shape == (BATCH, 0, UNITS)
    np.testing.assert_array_equal(out["h"], np.zeros((BATCH, UNITS)))
    h0 = np.random.default_rng(2).standard_normal((BATCH, UNITS)).astype("float32")
    out = signatures["sequence"](x=tf.zeros((BATCH, 0, FEATURES)), h0=tf.constant(h0))
    np.testing.assert_array_equal(out["h"], h0)


def test_served_empty_batch_gives_empty_outputs(served):
    _, signatures = served
    out = signatures["serving_default"](x=tf.zeros((0, STEPS, FEATURES)))
    assert out["y"].shape == (0, STEPS) and out["h"].shape == (0, UNITS)
    assert out["h_seq"].shape == (0, STEPS, UNITS)
    out = signatures["step"](x_t=tf.zeros((0, FEATURES)), h=tf.zeros((0, UNITS)))
    assert out["y_t"].shape == (0,) and out["h_next"].shape == (0, UNITS)


@pytest.mark.parametrize("dtype", [tf.float64, tf.float16, tf.int32], ids=str)
def test_served_wrong_dtype_is_refused(served, dtype):
    _, signatures = served
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor"):
        signatures["serving_default"](x=tf.zeros((BATCH, STEPS, FEATURES), dtype))


def test_served_numpy_float64_is_converted(served):
    _, signatures = served
    x = sequences()
    out = signatures["serving_default"](x=x.astype("float64"))
    np.testing.assert_array_equal(out["y"], signatures["serving_default"](x=tf.constant(x))["y"])


@pytest.mark.parametrize(
    "h0, message",
    [
        (np.zeros((BATCH, UNITS + 1), "float32"), rf"input h0 must have shape \(batch, {UNITS}\)"),
        (np.zeros((UNITS,), "float32"), rf"input h0 must have shape \(batch, {UNITS}\)"),
        (np.zeros((1, UNITS), "float32"), "inputs x and h0 must have the same batch size"),
    ],
    ids=["size", "rank", "batch"],
)
def test_served_initial_state_of_the_wrong_shape_names_h0(served, h0, message):
    _, signatures = served
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        signatures["sequence"](x=tf.constant(sequences()), h0=tf.constant(h0))


def test_served_long_stream_in_chunks_equals_one_call(served):
    # A client with an unbounded stream calls `sequence` (or `step`) chunk by chunk, carrying h.
    _, signatures = served
    x = sequences(steps=12)
    whole = signatures["serving_default"](x=tf.constant(x))
    h, ys = tf.zeros((BATCH, UNITS)), []
    for start in range(0, 12, 5):
        out = signatures["sequence"](x=tf.constant(x[:, start : start + 5]), h0=h)
        h = out["h"]
        ys.append(out["y"])
    np.testing.assert_array_equal(np.concatenate(ys, axis=1), whole["y"])
    np.testing.assert_array_equal(h, whole["h"])


# ---- a very long sequence ----

SHORT, LONG = 10**4, 10**5
# Per extra step, inference may keep the step's input and its first-layer projection (which
# GradientRNN computes for all steps before the loop), with TensorFlow's overhead per
# TensorArray element: a few hundred bytes. Keeping each step's activations, as a training
# step must, costs tens of kilobytes a step at this size.
MAX_BYTES_PER_STEP = 1024


def measure_long_sequence(steps: int, out: Path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((None, FEATURES)), tf_gradrnn.GradientRNN(8, hidden_units=(32, 32))]
    )
    rng = np.random.default_rng(0)
    model.set_weights([0.3 * rng.standard_normal(w.shape) for w in model.get_weights()])
    x = rng.standard_normal((1, steps, FEATURES)).astype("float32")
    for warm_up in (10, 11):  # traces the predict function for an unknown time dimension
        model.predict(x[:, :warm_up], verbose=0)
    exact = reset_peak()
    before = resident_mb()
    start = time.perf_counter()
    y = model.predict(x, verbose=0)
    seconds = time.perf_counter() - start
    if exact:
        peak = resident_mb("VmHWM")
    else:  # the process' lifetime peak, an upper bound of the growth
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "steps": steps,
        "growth_mb": peak - before,
        "seconds": seconds,
        "finite": bool(np.isfinite(y).all()),
        "shape": list(y.shape),
    }
    out.write_text(json.dumps(result))


def test_very_long_sequence_inference_runs_in_bounded_memory(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    codes = run_processes(
        [
            [sys.executable, __file__, "long-sequence", str(steps), str(tmp_path / f"{steps}.json")]
            for steps in (SHORT, LONG)
        ],
        [env, env],
        [tmp_path / f"{steps}.log" for steps in (SHORT, LONG)],
        180,
    )
    for code, steps in zip(codes, (SHORT, LONG), strict=True):
        assert code == 0, (tmp_path / f"{steps}.log").read_text()[-3000:]
    short, long = (json.loads((tmp_path / f"{s}.json").read_text()) for s in (SHORT, LONG))
    assert long["shape"] == [1, 1] and long["finite"] and short["finite"]
    per_step = (long["growth_mb"] - short["growth_mb"]) * 2**20 / (LONG - SHORT)
    print(
        f"\nRSS growth: {short['growth_mb']:.1f} MB at T={SHORT} ({short['seconds']:.1f} s), "
        f"{long['growth_mb']:.1f} MB at T={LONG} ({long['seconds']:.1f} s): "
        f"{per_step:.0f} bytes per extra step"
    )
    assert per_step < MAX_BYTES_PER_STEP, (short, long)


if __name__ == "__main__":
    assert sys.argv[1] == "long-sequence", sys.argv
    measure_long_sequence(int(sys.argv[2]), Path(sys.argv[3]))
