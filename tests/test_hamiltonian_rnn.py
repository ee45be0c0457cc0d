"""HamiltonianRNN: execution modes, training on trajectories, `run_with_states`, its initial-state
and input checks, and sequences of no steps."""

import keras
import numpy as np
import pytest
import reference
import tensorflow as tf

import tf_gradrnn
from tf_gradrnn import HamiltonianRNN

D, HIDDEN, BATCH, STEPS = 2, (5, 4), 3, 4


def make_layer(integrator="leapfrog", control=True, dtype="float64", **kwargs):
    kwargs = {"substeps": 2, "implicit_iterations": 2, "return_sequences": True, **kwargs}
    layer = HamiltonianRNN(
        D,
        hidden_units=HIDDEN,
        dt=0.1,
        integrator=integrator,
        control=control,
        dtype=dtype,
        **kwargs,
    )
    layer.build((None, None, 1))
    rng = np.random.default_rng(7)
    layer.set_weights([0.7 * rng.standard_normal(w.shape) for w in layer.get_weights()])
    return layer


def sample(seed=0, batch=BATCH, steps=STEPS):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, steps, 1))
    q0, p0 = rng.standard_normal((batch, D)), rng.standard_normal((batch, D))
    return x, q0, p0, rng.standard_normal((batch, steps, D))


@pytest.mark.parametrize("mode", ["function", "jit", "unrolled"])
def test_eager_function_xla_and_unroll_agree(mode):
    small = {"substeps": 1, "implicit_iterations": 1}  # a small graph: tracing dominates
    layer = make_layer(unroll=mode == "unrolled", **small)
    x, q0, p0, target = sample(2)

    def run(x, q0, p0):
        with tf.GradientTape() as tape:
            y = layer(x, initial_state=[q0, p0])
            loss = tf.reduce_sum((y - target) ** 2)
        return y, tape.gradient(loss, layer.trainable_weights)

    expected = make_layer(**small)(x, initial_state=[q0, p0])
    runner = tf.function(run, jit_compile=mode == "jit") if mode != "unrolled" else run
    y, grads = runner(tf.constant(x), tf.constant(q0), tf.constant(p0))
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-12, atol=1e-13)
    assert all(g is not None for g in grads[:-1])  # all but H's output bias


@pytest.mark.filterwarnings("ignore:Gradients do not exist")  # H's output bias, by design
def test_model_fit_learns_the_oscillator_from_trajectories():
    # Trajectories of H = (q^2 + p^2) / 2, observed in q only; initial states are inputs.
    rng = np.random.default_rng(0)
    t = 0.2 * np.arange(1, 11)
    q0, p0 = rng.uniform(-1, 1, (64, 1)), rng.uniform(-1, 1, (64, 1))
    q = q0 * np.cos(t) + p0 * np.sin(t)  # (64, 10)
    clock, q0_in, p0_in = keras.Input((None, 1)), keras.Input((1,)), keras.Input((1,))
    rnn = HamiltonianRNN(1, hidden_units=(16, 16), dt=0.2, return_sequences=True)
    model = keras.Model([clock, q0_in, p0_in], rnn(clock, initial_state=[q0_in, p0_in]))
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    data = [np.zeros((64, 10, 1), "float32"), q0.astype("float32"), p0.astype("float32")]
    history = model.fit(data, q[..., None].astype("float32"), batch_size=32, epochs=30, verbose=0)
    losses = history.history["loss"]
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.5f}")
    assert losses[-1] < 0.05 * losses[0]


def test_every_cell_argument_is_a_read_only_attribute():
    hamiltonian = tf_gradrnn.MLPPotential((3,))
    arguments = {
        "coordinates": 3,
        "hidden_units": (7,),
        "activation": keras.activations.softplus,
        "hamiltonian": hamiltonian,
        "dt": 0.05,
        "integrator": "symplectic_euler",
        "substeps": 2,
        "implicit_iterations": 3,
        "control": True,
        "observe": "qp",
    }
    layer = HamiltonianRNN(**arguments)
    assert set(HamiltonianRNN.CELL_ARGUMENTS) == set(arguments)
    for name, value in arguments.items():
        assert getattr(layer, name) == value, name
        with pytest.raises(AttributeError):
            setattr(layer, name, None)


# ---- run_with_states ----


@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_run_with_states_equals_stepping_the_cell_by_hand(mode):
    layer = make_layer(observe="qp", substeps=1, implicit_iterations=1)
    x, q0, p0, _ = sample(3, steps=6)
    mask = np.random.default_rng(5).random((BATCH, 6)) > 0.3
    mask[1, :2] = False  # masked first steps keep the initial state
    run = layer.run_with_states
    if mode == "xla":
        run = tf.function(lambda *args: layer.run_with_states(*args), jit_compile=True)
    outputs, (q, p) = run(tf.constant(x), [tf.constant(q0), tf.constant(p0)], tf.constant(mask))
    y_ref, (q_ref, p_ref) = reference.step_cell(layer.cell, x, [q0, p0], mask)
    for actual, expected in ((outputs, y_ref), (q, q_ref), (p, p_ref)):
        np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(q[1, :2], np.broadcast_to(q0[1], (2, D)))


# ---- initial state and inputs: checked once per call ----


def test_initial_state_must_be_q_and_p():
    layer = HamiltonianRNN(2)
    x = np.zeros((2, 3, 1), "float32")
    with pytest.raises(ValueError, match=r"has 2 states \[q, p\], so initial_state must be a list"):
        layer(x, initial_state=np.zeros((2, 2), "float32"))
    with pytest.raises(ValueError, match=r"initial_state p0 must have shape \(batch, 2\)"):
        layer(x, initial_state=[np.zeros((2, 2), "float32"), np.zeros((2, 3), "float32")])
    with pytest.raises(TypeError, match="HamiltonianRNN initial_state q0 must be floating point"):
        layer(x, initial_state=[np.zeros((2, 2), "int32"), np.zeros((2, 2), "float32")])


def test_initial_state_batch_must_match_the_inputs():
    layer = HamiltonianRNN(2)
    q0 = np.zeros((2, 2), "float32")
    with pytest.raises(ValueError, match="q0 has batch size 2 but the inputs have batch size 3"):
        layer(np.zeros((3, 4, 1), "float32"), initial_state=[q0, q0])


def test_two_dimensional_sequences():
    with pytest.raises(ValueError, match="expected ndim=3"):
        HamiltonianRNN(1)(np.zeros((2, 3), "float32"))


def test_integer_sequences_are_refused_naming_the_layer():
    with pytest.raises(TypeError, match="HamiltonianRNN inputs must be floating point.*int32"):
        HamiltonianRNN(1)(np.zeros((2, 3, 1), "int32"))


def test_hamiltonian_with_a_vector_output():
    layer = HamiltonianRNN(1, hamiltonian=keras.layers.Dense(2, name="h_net"))
    with pytest.raises(ValueError, match="h_net must return one scalar per sample"):
        layer(np.zeros((2, 3, 1), "float32"))


# ---- sequences of no steps ----


@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_no_steps_give_no_outputs_and_the_initial_state(mode):
    layer = make_layer(return_state=True, observe="qp")
    x, q0, p0, _ = sample(steps=0)
    call = lambda x, q0, p0: layer(x, initial_state=[q0, p0])  # noqa: E731
    if mode == "graph":  # the number of steps is only known at run time
        spec = [
            tf.TensorSpec((None, None, 1), tf.float64),
            *[tf.TensorSpec((None, D), tf.float64)] * 2,
        ]
        call = tf.function(call, input_signature=spec)
    y, q, p = call(x, q0, p0)
    assert y.shape == (BATCH, 0, 2 * D)
    np.testing.assert_array_equal(q, q0)
    np.testing.assert_array_equal(p, p0)


def test_no_steps_without_return_sequences_is_a_clear_error():
    with pytest.raises(ValueError, match="HamiltonianRNN got sequences of 0 time steps"):
        HamiltonianRNN(1)(np.zeros((2, 0, 1), "float32"))
