"""ScalarGradient, value_and_gradient: numeric truth, second_order, parity, round trips, errors."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import reference
import tensorflow as tf

import tf_gradrnn
from tf_gradrnn import ScalarGradient, value_and_gradient

N, HIDDEN, BATCH = 4, (5, 4), 3
WRTS = [None, [2, 0], [-1]]
WRT_IDS = ["all", "columns_2_0", "last"]


def make_layer(wrt=None, second_order=True, dtype="float64"):
    potential = tf_gradrnn.MLPPotential(HIDDEN, dtype=dtype)
    layer = ScalarGradient(potential, wrt=wrt, second_order=second_order, dtype=dtype)
    layer.build((None, N))
    # Non-zero biases so that no derivative vanishes by symmetry.
    rng = np.random.default_rng(7)
    potential.set_weights([0.7 * rng.standard_normal(w.shape) for w in potential.get_weights()])
    return layer


def columns(wrt):
    return list(range(N)) if wrt is None else [c % N for c in wrt]


def numpy_value_and_gradient(weights, z, wrt):
    """Independent NumPy F(z) and dF/dz[wrt] (hand-written backprop in tests/reference.py)."""
    f, grad = reference.potential_and_state_gradient(weights, np.zeros((len(z), 0)), z)
    return f, grad[:, columns(wrt)]


def sample(seed=0, k=N):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((BATCH, N)),
        rng.standard_normal(BATCH),
        rng.standard_normal((BATCH, k)),
    )


def loss_fn(f, g, a, b):
    """A loss on both outputs: sum (f - a)^2 + sum (g - b)^2 (works for NumPy and TF)."""
    return ((f - a) ** 2).sum() + ((g - b) ** 2).sum()


def tf_loss(f, g, a, b):
    return tf.reduce_sum((f[:, 0] - a) ** 2) + tf.reduce_sum((g - b) ** 2)


@pytest.mark.parametrize("wrt", WRTS, ids=WRT_IDS)
def test_value_and_gradient_match_numpy_and_finite_differences(wrt):
    layer = make_layer(wrt)
    z, _, _ = sample()
    f, g = layer(z)
    f_ref, g_ref = numpy_value_and_gradient(layer.scalar_network.get_weights(), z, wrt)
    np.testing.assert_allclose(f.numpy()[:, 0], f_ref, rtol=1e-12)
    np.testing.assert_allclose(g.numpy(), g_ref, rtol=1e-12, atol=1e-14)

    weights = layer.scalar_network.get_weights()
    numeric = np.zeros_like(g_ref)
    for j, c in enumerate(columns(wrt)):
        plus, minus = z.copy(), z.copy()
        plus[:, c] += 1e-6
        minus[:, c] -= 1e-6
        f_plus = numpy_value_and_gradient(weights, plus, wrt)[0]
        f_minus = numpy_value_and_gradient(weights, minus, wrt)[0]
        numeric[:, j] = (f_plus - f_minus) / 2e-6
    np.testing.assert_allclose(g.numpy(), numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("wrt", WRTS, ids=WRT_IDS)
def test_second_order_weight_gradients_match_finite_differences(wrt):
    layer = make_layer(wrt)
    z, a, b = sample(1, len(columns(wrt)))
    weights_tf = layer.scalar_network.trainable_weights
    with tf.GradientTape() as tape:
        loss = tf_loss(*layer(z), a, b)
    grads = tape.gradient(loss, weights_tf)

    def numpy_loss(w):
        return loss_fn(*numpy_value_and_gradient(w, z, wrt), a, b)

    numeric = reference.finite_difference_gradients(numpy_loss, layer.scalar_network.get_weights())
    error = reference.max_relative_error([g.numpy() for g in grads], numeric)
    print(f"largest float64 relative error against finite differences: {error:.2e}")
    assert error < 1e-6


@pytest.mark.parametrize("wrt", WRTS, ids=WRT_IDS)
def test_input_gradient_with_the_hessian_term_matches_finite_differences(wrt):
    layer = make_layer(wrt)
    z, a, b = sample(2, len(columns(wrt)))
    z_t = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(z_t)
        loss = tf_loss(*layer(z_t), a, b)
    dz = tape.gradient(loss, z_t)
    weights = layer.scalar_network.get_weights()
    numeric = reference.finite_difference_gradients(
        lambda zz: loss_fn(*numpy_value_and_gradient(weights, zz[0], wrt), a, b), [z]
    )
    assert reference.max_relative_error([dz.numpy()], numeric) < 1e-6


def test_jacobian_of_the_gradient_is_the_hessian():
    layer = make_layer([2, 0])
    z = np.random.default_rng(3).standard_normal((1, N))
    theoretical, numerical = tf.test.compute_gradient(
        lambda zz: layer(zz)[1], [tf.constant(z)], delta=1e-6
    )
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("wrt", [None, [2, 0]], ids=["all", "columns_2_0"])
def test_second_order_false_gives_exactly_the_detached_gradients(wrt):
    # Detached: g is computed first and enters the loss as a constant; f is differentiated.
    layer = make_layer(wrt, second_order=False)
    z, a, b = sample(4, len(columns(wrt)))
    z_t = tf.constant(z)
    weights = layer.scalar_network.trainable_weights
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z_t)
        f, g = layer(z_t)
        loss = tf_loss(f, g, a, b)
    grads = tape.gradient(loss, [*weights, z_t])

    g_const = tf.constant(make_layer(wrt)(z)[1].numpy())
    np.testing.assert_array_equal(g.numpy(), g_const.numpy())
    with tf.GradientTape() as tape:
        tape.watch(z_t)
        detached = tf_loss(layer.scalar_network(z_t), g_const, a, b)
    expected = tape.gradient(detached, [*weights, z_t])
    for got, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-14, atol=1e-15)

    # A loss on g alone reaches nothing; with second_order=True it reaches every weight but
    # the output bias, which does not change dF/dz.
    with tf.GradientTape() as tape:
        only_g = tf.reduce_sum(layer(z_t)[1] ** 2)
    assert all(grad is None for grad in tape.gradient(only_g, weights))
    second = make_layer(wrt)
    with tf.GradientTape() as tape:
        only_g = tf.reduce_sum(second(z_t)[1] ** 2)
    reached = [grad is not None for grad in tape.gradient(only_g, second.trainable_weights)]
    assert reached == [True] * (len(reached) - 1) + [False]


def test_value_and_gradient_second_order_switch_on_a_plain_function():
    w = tf.Variable([[1.5], [-0.5]], dtype=tf.float64)
    x = tf.constant([[0.3, 0.7], [1.0, -2.0]], tf.float64)

    def f(z):  # F(z) = tanh(z w): dF/dz = (1 - tanh^2) w^T
        return tf.tanh(z @ w)

    for second_order, connected in [(True, True), (False, False)]:
        with tf.GradientTape() as tape:
            _, g = value_and_gradient(f, x, wrt_name="x", second_order=second_order)
            loss = tf.reduce_sum(g)
        assert (tape.gradient(loss, w) is not None) == connected
    # The existing positional call of the cell still works and defaults to second order.
    values, g = value_and_gradient(f, x, "potential", wrt_name="state h")
    expected = (1 - np.tanh(x.numpy() @ w.numpy()) ** 2) * w.numpy().T
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-14)
    assert values.shape == (2,)


@pytest.mark.parametrize("mode", ["eager", "function", "jit"])
def test_eager_function_and_xla_agree(mode):
    layer = make_layer([2, 0])
    z, a, b = sample(5, 2)

    def run(zz):
        with tf.GradientTape() as tape:
            f, g = layer(zz)
            loss = tf_loss(f, g, a, b)
        return f, g, tape.gradient(loss, layer.trainable_weights)

    expected = run(tf.constant(z))
    runner = {
        "eager": run,
        "function": tf.function(run),
        "jit": tf.function(run, jit_compile=True),
    }[mode]
    got = runner(tf.constant(z))
    for x, y in zip(tf.nest.flatten(got), tf.nest.flatten(expected), strict=True):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-12, atol=1e-14)


def test_leading_axes_are_independent_samples():
    layer = make_layer([1, 3])
    z = np.random.default_rng(6).standard_normal((2, 3, N))
    f, g = layer(z)
    f_flat, g_flat = layer(z.reshape(6, N))
    assert f.shape == (2, 3, 1) and g.shape == (2, 3, 2)
    np.testing.assert_allclose(f.numpy().reshape(6, 1), f_flat.numpy(), rtol=1e-14)
    np.testing.assert_allclose(g.numpy().reshape(6, 2), g_flat.numpy(), rtol=1e-14)


@pytest.mark.filterwarnings("ignore:Gradients do not exist")  # H's output bias, by design
def test_model_fit_takes_the_second_order_sgd_step():
    keras.config.set_floatx("float64")
    layer = make_layer([2, 0])
    inputs = keras.Input((N,), dtype="float64")
    model = keras.Model(inputs, layer(inputs)[1])  # trained on the gradient only
    z, _, b = sample(8, 2)
    before = layer.scalar_network.get_weights()
    numeric = reference.finite_difference_gradients(
        lambda w: np.sum((numpy_value_and_gradient(w, z, [2, 0])[1] - b) ** 2) / b.size, before
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(z, b, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    for w0, w1, grad in zip(before, layer.scalar_network.get_weights(), numeric, strict=True):
        np.testing.assert_allclose(w1, w0 - 0.1 * grad, rtol=1e-9, atol=1e-12)


def test_registered_name_and_config_round_trip():
    assert keras.saving.get_registered_name(ScalarGradient) == "tf_gradrnn>ScalarGradient"
    layer = ScalarGradient(
        tf_gradrnn.MLPPotential((3,), activation="softplus"), wrt=[1], second_order=False
    )
    clone = ScalarGradient.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert (clone.wrt, clone.second_order) == ((1,), False)
    assert clone.scalar_network.hidden_units == (3,)


@pytest.mark.parametrize("second_order", [True, False])
def test_keras_file_round_trip(second_order, tmp_path):
    layer = make_layer([2, 0], second_order=second_order, dtype="float32")
    inputs = keras.Input((N,))
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")  # no custom_objects
    z = sample()[0].astype("float32")
    for x, y in zip(model(z), loaded(z), strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert loaded.layers[-1].second_order is second_order


def test_saved_model_export_reloads_without_the_package(tmp_path):
    layer = make_layer([2, 0], dtype="float32")
    archive = keras.export.ExportArchive()
    archive.track(layer)
    archive.add_endpoint(
        "serve", lambda z: layer(z), input_signature=[tf.TensorSpec((None, N), tf.float32)]
    )
    archive.write_out(str(tmp_path / "export"))
    z = sample()[0].astype("float32")
    np.save(tmp_path / "z.npy", z)
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        import tensorflow as tf
        loaded = tf.saved_model.load({str(tmp_path / "export")!r})
        f, g = loaded.serve(tf.constant(np.load({str(tmp_path / "z.npy")!r})))
        assert "tf_gradrnn" not in sys.modules
        print(json.dumps([f.numpy().tolist(), g.numpy().tolist()]))
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    f, g = json.loads(result.stdout.strip().splitlines()[-1])
    expected_f, expected_g = layer(z)
    np.testing.assert_allclose(f, expected_f.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g, expected_g.numpy(), rtol=1e-5, atol=1e-6)


# Dtypes: the network computes in its own dtype, as inside Keras' TimeDistributed.

DTYPE_CASES = {  # (global dtype policy, layer dtype, network dtype); None: the global policy
    "float64_around_float32": (None, "float64", "float32"),
    "float32_around_float64": (None, "float32", "float64"),
    "mixed_float16": ("mixed_float16", None, None),
    "mixed_bfloat16": ("mixed_bfloat16", None, None),
    "mixed_float16_around_float32": ("mixed_float16", None, "float32"),
}


@pytest.fixture(params=list(DTYPE_CASES))
def mixed_layer(request):
    """A ScalarGradient and its network in the dtypes of one case, under its global policy."""
    policy, layer_dtype, network_dtype = DTYPE_CASES[request.param]
    previous = keras.config.dtype_policy()
    if policy is not None:
        keras.config.set_dtype_policy(policy)
    network = tf_gradrnn.MLPPotential((5,), dtype=network_dtype, name="network")
    layer = ScalarGradient(network, wrt=[2, 0], dtype=layer_dtype)
    layer.build((None, N))
    yield layer
    keras.config.set_dtype_policy(previous)


def test_the_network_computes_in_its_own_dtype(mixed_layer):
    # Inputs are cast to the network's compute dtype, f and g back to the layer's: under
    # mixed_float16 a float32 network's gradient is taken in float32, then rounded once.
    network = mixed_layer.scalar_network
    z = tf.constant(sample()[0], mixed_layer.compute_dtype)
    f, g = mixed_layer(z)
    assert f.dtype == g.dtype == mixed_layer.compute_dtype
    f_net, g_net = value_and_gradient(network, tf.cast(z, network.compute_dtype))
    np.testing.assert_array_equal(f, tf.cast(f_net[:, None], f.dtype))
    np.testing.assert_array_equal(g, tf.cast(tf.gather(g_net, [2, 0], axis=1), g.dtype))


def model_of(layer):
    inputs = keras.Input((N,))
    return keras.Model(inputs, layer(inputs))


def test_fit_in_mixed_dtypes(mixed_layer):
    model = model_of(mixed_layer)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=["mse", "mse"])
    rng = np.random.default_rng(9)
    z, f, g = (rng.standard_normal((16, k)).astype("float32") for k in (N, 1, 2))
    before = model.get_weights()
    history = model.fit(z, (f, g), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True)]
    assert all(changed), changed


def test_keras_file_round_trip_in_mixed_dtypes(mixed_layer, tmp_path):
    model = model_of(mixed_layer)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    layer = loaded.layers[-1]
    assert layer.dtype_policy.name == mixed_layer.dtype_policy.name
    assert layer.scalar_network.dtype_policy.name == mixed_layer.scalar_network.dtype_policy.name
    z = sample()[0].astype("float32")
    for x, y in zip(model(z), loaded(z), strict=True):
        np.testing.assert_array_equal(x, y)


# Bad input: one test per mistake, each message naming the problem.


def test_network_must_be_a_layer():
    with pytest.raises(TypeError, match="scalar_network must be a Keras layer or model"):
        ScalarGradient(lambda z: z)


@pytest.mark.parametrize(
    "wrt, message",
    [
        ([], "non-empty list of column indices"),
        ("0", "non-empty list of column indices"),
        ([0, 1.5], "integer column indices, got 1.5"),
        ([True], "integer column indices, got True"),
    ],
    ids=["empty", "string", "float", "bool"],
)
def test_bad_wrt(wrt, message):
    with pytest.raises(ValueError, match=message):
        ScalarGradient(tf_gradrnn.MLPPotential((3,)), wrt=wrt)


@pytest.mark.parametrize(
    "wrt", [np.array([2, 0]), (np.int64(2), np.int32(0))], ids=["array", "scalars"]
)
def test_numpy_wrt_is_accepted(wrt):
    layer = make_layer(wrt)
    z = sample()[0]
    for x, y in zip(layer(z), make_layer([2, 0])(z), strict=True):
        np.testing.assert_array_equal(x, y)
    assert layer.get_config()["wrt"] == [2, 0]


@pytest.mark.parametrize(
    "wrt, message",
    [([4], r"wrt column 4 is out of range for inputs with 4 features"), ([0, -4], "twice")],
    ids=["out_of_range", "repeated"],
)
def test_wrt_checked_against_the_inputs(wrt, message):
    layer = ScalarGradient(tf_gradrnn.MLPPotential((3,)), wrt=wrt)
    with pytest.raises(ValueError, match=message):
        layer(np.zeros((2, N), "float32"))


def test_integer_inputs():
    layer = ScalarGradient(tf_gradrnn.MLPPotential((3,)))
    with pytest.raises(TypeError, match="must be floating point.*got dtype int32"):
        layer(np.zeros((2, N), "int32"))


def test_wrong_feature_count():
    layer = make_layer(dtype="float32")
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 4"):
        layer(np.zeros((2, 3), "float32"))


def test_rank_one_inputs():
    layer = ScalarGradient(tf_gradrnn.MLPPotential((3,)))
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, features\)"):
        layer(np.zeros((N,), "float32"))


def test_network_with_a_vector_output():
    layer = ScalarGradient(keras.layers.Dense(3, name="vector_net"), name="energy")
    message = r"ScalarGradient 'energy': the vector_net must return one scalar per sample"
    with pytest.raises(ValueError, match=message):
        layer(np.zeros((2, N), "float32"))


class Returning(keras.layers.Layer):
    """A scalar network whose output is `output(z)`, right or wrong."""

    def __init__(self, output, **kwargs):
        super().__init__(**kwargs)
        self.output_of = output

    def call(self, z):
        return self.output_of(z)


def test_network_returning_a_list():
    layer = ScalarGradient(Returning(lambda z: [tf.reduce_sum(z, 1)], name="listed"))
    with pytest.raises(ValueError, match="listed must return one tensor, got a list of 1"):
        layer(np.zeros((2, N), "float32"))


def batch_sum(z):
    return tf.reduce_sum(z, keepdims=True)  # (1, 1): one value for the whole batch


def test_network_returning_one_value_for_the_batch():
    layer = ScalarGradient(Returning(batch_sum, name="summed"))
    message = r"summed must return one scalar per sample: 3 samples in, 1 values out"
    with pytest.raises(ValueError, match=message):
        layer(np.zeros((3, N), "float32"))


def test_network_returning_one_value_for_the_batch_in_a_graph():
    # The batch size is known only when the graph runs.
    layer = ScalarGradient(Returning(batch_sum, name="summed"))
    call = tf.function(layer, input_signature=[tf.TensorSpec((None, N))])
    with pytest.raises(tf.errors.InvalidArgumentError, match="summed must return one scalar"):
        call(np.zeros((3, N), "float32"))


def test_function_output_of_unknown_rank():
    @tf.function(input_signature=[tf.TensorSpec(None)])
    def call(x):
        return value_and_gradient(lambda z: tf.reshape(z, tf.shape(z)[:1]), x, name="h")

    with pytest.raises(ValueError, match=r"h must return one scalar .* got output shape <unknown>"):
        call(tf.zeros((3,)))


@pytest.mark.parametrize("kind", ["ragged", "sparse"])
@pytest.mark.parametrize("caller", ["layer", "function"])
def test_ragged_and_sparse_inputs(kind, caller):
    dense = np.ones((2, 3, N), "float32")
    if kind == "ragged":
        inputs, message = tf.RaggedTensor.from_tensor(dense, lengths=[1, 3]), "RaggedTensor"
    else:
        inputs, message = tf.sparse.from_dense(dense[0]), "SparseTensor"
    network = tf_gradrnn.MLPPotential((3,))
    with pytest.raises(TypeError, match=rf"must be a dense tensor, got a tf.{message}"):
        if caller == "layer":
            ScalarGradient(network)(inputs)
        else:
            value_and_gradient(network, inputs)


def test_function_of_an_integer_tensor():
    network = tf_gradrnn.MLPPotential((3,))
    message = "value_and_gradient: the input must be floating point.*got dtype int32"
    with pytest.raises(TypeError, match=message):
        value_and_gradient(lambda z: network(tf.cast(z, "float32")), tf.zeros((2, N), "int32"))


def test_network_that_ignores_its_inputs():
    class Constant(keras.layers.Layer):
        def build(self, shape):
            self.c = self.add_weight(shape=(1,), initializer="ones")

        def call(self, z):
            return self.c * tf.ones_like(z[:, :1], dtype=self.c.dtype) + 0 * tf.stop_gradient(
                z[:, :1]
            )

    layer = ScalarGradient(Constant(name="constant"))
    with pytest.raises(ValueError, match="constant's output does not depend on its wrt columns"):
        layer(np.zeros((2, N), "float32"))


def test_batch_normalization_is_refused():
    network = keras.Sequential([keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="ScalarGradient 'energy': .*BatchNormalization.*mixes"):
        ScalarGradient(network, name="energy")
