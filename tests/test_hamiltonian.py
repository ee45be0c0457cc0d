"""HamiltonianCell / HamiltonianRNN: conservation, symplecticity, numeric truth, round trips."""

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
from tf_gradrnn.hamiltonian_cell import HamiltonianCell
from tf_gradrnn.hamiltonian_rnn import HamiltonianRNN

D, HIDDEN, BATCH, STEPS = 2, (5, 4), 3, 4


class Quadratic(keras.layers.Layer):
    """H(q, p) = (|q|^2 + |p|^2) / 2, the harmonic oscillator with unit frequency."""

    def call(self, z):
        return 0.5 * tf.reduce_sum(z**2, axis=-1, keepdims=True)


class Pendulum(keras.layers.Layer):
    """H(q, p) = p^2 / 2 + 1 - cos q for one coordinate: separable, not quadratic."""

    def call(self, z):
        return (0.5 * z[:, 1] ** 2 + 1.0 - tf.cos(z[:, 0]))[:, None]


class Separable(keras.layers.Layer):
    """H(q, p) = |p|^2 / 2 + V(q) with an MLP V."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.potential = tf_gradrnn.MLPPotential((8, 8), dtype=self.dtype_policy)

    def build(self, shape):
        self.potential.build((None, D))

    def call(self, z):
        return self.potential(z[:, :D]) + 0.5 * tf.reduce_sum(z[:, D:] ** 2, -1, keepdims=True)


def run_rnn(layer, q0, p0, steps, features=1):
    """Runs `layer` (in a tf.function: an eager RNN loop is slow) for `steps` steps."""
    clock = tf.zeros((len(q0), steps, features), layer.compute_dtype)
    return tf.function(lambda: layer(clock, initial_state=[q0, p0]))()


def energy_run(integrator, hamiltonian, q0, p0, dt=0.1, steps=1000):
    layer = HamiltonianRNN(
        q0.shape[1],
        hamiltonian=hamiltonian,
        dt=dt,
        integrator=integrator,
        observe="qp",
        return_sequences=True,
        dtype="float64",
    )
    states = run_rnn(layer, q0, p0, steps).numpy()
    d = q0.shape[1]
    return states[..., :d], states[..., d:]


@pytest.mark.parametrize("integrator", ["leapfrog", "symplectic_euler"])
def test_quadratic_energy_oscillates_in_its_band_without_drift_over_1000_steps(integrator):
    h = 0.1
    rng = np.random.default_rng(0)
    q0, p0 = rng.standard_normal((BATCH, D)), rng.standard_normal((BATCH, D))
    q, p = energy_run(integrator, Quadratic(dtype="float64"), q0, p0, dt=h)
    energy = 0.5 * np.sum(q**2 + p**2, axis=-1)  # (batch, 1000)
    e0 = 0.5 * np.sum(q0**2 + p0**2, axis=-1)[:, None]
    # Each integrator conserves a modified quadratic energy exactly (to round-off), which
    # confines H to a band around its start: O(h^2) for leapfrog, O(h) for Euler, no drift.
    if integrator == "leapfrog":
        modified = np.sum(p**2 + (1 - h**2 / 4) * q**2, axis=-1) / 2
        modified_0 = np.sum(p0**2 + (1 - h**2 / 4) * q0**2, axis=-1)[:, None] / 2
        band = (h**2 / 4) / (1 - h**2 / 4)
    else:
        modified = np.sum(q**2 + p**2 - h * q * p, axis=-1) / 2
        modified_0 = np.sum(q0**2 + p0**2 - h * q0 * p0, axis=-1)[:, None] / 2
        band = 2 * (h / 2) / (1 - h / 2)
    np.testing.assert_allclose(modified, np.broadcast_to(modified_0, modified.shape), rtol=1e-12)
    deviation = np.abs(energy - e0) / e0
    assert deviation.max() <= band
    # Bounded oscillation: the last 100 steps swing as far as the first 100, no further.
    first, last = deviation[:, :100].max(axis=1), deviation[:, -100:].max(axis=1)
    np.testing.assert_allclose(last, first, rtol=0.05)

    # Guards the guard: explicit Euler on the same system drifts far out of the band.
    q_e, p_e = q0.copy(), p0.copy()
    for _ in range(1000):
        q_e, p_e = q_e + h * p_e, p_e - h * q_e
    assert (0.5 * np.sum(q_e**2 + p_e**2, axis=-1) / e0[:, 0]).min() > 1e4


@pytest.mark.parametrize("integrator", ["leapfrog", "symplectic_euler"])
def test_separable_nonlinear_energy_error_stays_bounded(integrator):
    q0 = np.array([[0.5], [1.5], [2.5]])
    p0 = np.zeros_like(q0)
    q, p = energy_run(integrator, Pendulum(dtype="float64"), q0, p0)
    energy = 0.5 * p[..., 0] ** 2 + 1 - np.cos(q[..., 0])
    error = np.abs(energy - (1 - np.cos(q0)))
    first, last = error[:, :100].max(axis=1), error[:, -100:].max(axis=1)
    assert np.all(last <= 1.2 * first)
    assert error.max() < (0.01 if integrator == "leapfrog" else 0.2)


def step_map_error(hamiltonian, integrator, iterations):
    """max |M^T J M - J| for the Jacobian M of one step x = (q, p) -> x_next."""
    cell = HamiltonianCell(
        D,
        hamiltonian=hamiltonian,
        dt=0.1,
        integrator=integrator,
        implicit_iterations=iterations,
        observe="qp",
        dtype="float64",
    )
    cell.build((None, 1))
    rng = np.random.default_rng(7)
    for w in cell.trainable_weights:
        w.assign(0.7 * rng.standard_normal(w.shape))
    x = tf.constant(rng.standard_normal((BATCH, 2 * D)))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y, _ = cell(tf.zeros((BATCH, 1), tf.float64), [x[:, :D], x[:, D:]])
        rows = [y[:, i] for i in range(2 * D)]
    m = np.stack([tape.gradient(row, x).numpy() for row in rows], axis=1)  # (batch, out, in)
    j = np.block([[np.zeros((D, D)), np.eye(D)], [-np.eye(D), np.zeros((D, D))]])
    return np.abs(np.einsum("bji,jk,bkl->bil", m, j, m) - j).max()


@pytest.mark.parametrize("integrator", ["leapfrog", "symplectic_euler"])
def test_steps_are_symplectic(integrator):
    # Separable H: one fixed-point sweep is exact, the step is symplectic to round-off.
    assert step_map_error(Separable(dtype="float64"), integrator, 1) < 1e-13
    # Non-separable MLP H: each sweep shrinks the defect, 10 reach round-off.
    errors = [
        step_map_error(tf_gradrnn.MLPPotential((8, 8), dtype="float64"), integrator, n)
        for n in (1, 3, 10)
    ]
    assert errors[0] > errors[1] > errors[2] and errors[0] > 1e-6 and errors[2] < 1e-12


# An independent NumPy model of the layer: the MLP's gradient by hand (tests/reference.py).


def numpy_grad_h(weights, q, p, u):
    z = np.concatenate([q, p] if u is None else [q, p, u], axis=-1)
    _, g = reference.potential_and_state_gradient(weights, np.zeros((len(z), 0)), z)
    return g[:, : q.shape[1]], g[:, q.shape[1] : 2 * q.shape[1]]


def numpy_run(weights, x, q, p, integrator, control, substeps=2, iterations=2, dt=0.1):
    h, ys = dt / substeps, []
    for t in range(x.shape[1]):
        u = x[:, t] if control else None
        for _ in range(substeps):
            if integrator == "leapfrog":
                mid = p
                for _ in range(iterations):
                    mid = p - h / 2 * numpy_grad_h(weights, q, mid, u)[0]
                h_p = numpy_grad_h(weights, q, mid, u)[1]
                q_next = q + h * h_p
                for _ in range(iterations):
                    q_next = q + h / 2 * (h_p + numpy_grad_h(weights, q_next, mid, u)[1])
                q, p = q_next, mid - h / 2 * numpy_grad_h(weights, q_next, mid, u)[0]
            else:
                p_next = p
                for _ in range(iterations):
                    p_next = p - h * numpy_grad_h(weights, q, p_next, u)[0]
                q, p = q + h * numpy_grad_h(weights, q, p_next, u)[1], p_next
        ys.append(q)
    return np.stack(ys, axis=1)


def make_layer(integrator="leapfrog", control=True, dtype="float64", **kwargs):
    kwargs = {"substeps": 2, "implicit_iterations": 2, **kwargs}
    layer = HamiltonianRNN(
        D,
        hidden_units=HIDDEN,
        dt=0.1,
        integrator=integrator,
        control=control,
        return_sequences=True,
        dtype=dtype,
        **kwargs,
    )
    layer.build((None, None, 1))
    rng = np.random.default_rng(7)
    layer.hamiltonian.set_weights(
        [0.7 * rng.standard_normal(w.shape) for w in layer.hamiltonian.get_weights()]
    )
    return layer


def sample(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, STEPS, 1))
    q0, p0 = rng.standard_normal((BATCH, D)), rng.standard_normal((BATCH, D))
    return x, q0, p0, rng.standard_normal((BATCH, STEPS, D))


CASES = [("leapfrog", True), ("leapfrog", False), ("symplectic_euler", True)]
CASE_IDS = ["leapfrog_control", "leapfrog", "euler_control"]


@pytest.mark.parametrize("integrator, control", CASES, ids=CASE_IDS)
def test_forward_matches_independent_numpy_model(integrator, control):
    layer = make_layer(integrator, control)
    x, q0, p0, _ = sample()
    y = layer(x, initial_state=[q0, p0])
    expected = numpy_run(layer.hamiltonian.get_weights(), x, q0, p0, integrator, control)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("integrator, control", CASES, ids=CASE_IDS)
def test_loss_gradients_match_finite_differences(integrator, control):
    layer = make_layer(integrator, control)
    x, q0, p0, target = sample(1)
    inputs = [tf.constant(v) for v in (x, q0, p0)]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        y = layer(inputs[0], initial_state=inputs[1:])
        loss = tf.reduce_sum((y - target) ** 2)
    # H's output bias shifts H, not its gradient: no gradient reaches it (checked below).
    weights = layer.hamiltonian.trainable_weights
    grads = tape.gradient(loss, [*weights, *inputs])
    assert grads.pop(len(weights) - 1) is None
    w0 = layer.hamiltonian.get_weights()

    def loss_of(w, xx=x, q=q0, p=p0):
        return np.sum((numpy_run(w, xx, q, p, integrator, control) - target) ** 2)

    numeric = reference.finite_difference_gradients(loss_of, w0)
    assert numeric.pop(len(weights) - 1) == pytest.approx(0.0, abs=1e-9)
    numeric += reference.finite_difference_gradients(lambda v: loss_of(w0, *v), [x, q0, p0])
    if not control:  # the inputs only count the steps
        assert grads[len(weights) - 1] is None
        grads[len(weights) - 1] = tf.zeros_like(x)
    error = reference.max_relative_error([g.numpy() for g in grads], numeric)
    print(f"largest float64 relative error against finite differences: {error:.2e}")
    assert error < 1e-6


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


def test_registered_names_and_config_round_trips():
    for cls in (HamiltonianCell, HamiltonianRNN):
        assert keras.saving.get_registered_name(cls) == f"tf_gradrnn>{cls.__name__}"
    layer = HamiltonianRNN(
        3, hidden_units=(4,), dt=0.05, integrator="symplectic_euler", substeps=3, observe="qp"
    )
    config = layer.get_config()
    assert "cell" not in config
    clone = HamiltonianRNN.from_config(config)
    assert clone.get_config() == config
    assert (clone.cell.dt, clone.cell.substeps, clone.cell.observe) == (0.05, 3, "qp")
    cell = HamiltonianCell(2, hamiltonian=tf_gradrnn.MLPPotential((3,)), control=True)
    assert HamiltonianCell.from_config(cell.get_config()).get_config() == cell.get_config()


def functional_model(layer, features=1, d=D):
    x, q0, p0 = keras.Input((None, features)), keras.Input((d,)), keras.Input((d,))
    return keras.Model([x, q0, p0], layer(x, initial_state=[q0, p0]))


@pytest.mark.parametrize("user_hamiltonian", [False, True], ids=["default", "user"])
def test_keras_file_round_trip(user_hamiltonian, tmp_path):
    hamiltonian = tf_gradrnn.MLPPotential((6,), activation="softplus") if user_hamiltonian else None
    layer = HamiltonianRNN(
        D, hidden_units=(6,), hamiltonian=hamiltonian, control=True, return_sequences=True
    )
    model = functional_model(layer)
    inner = keras.layers.RNN(HamiltonianCell(D, hidden_units=(5,), observe="qp"))
    models = [model, functional_model(inner)]
    x, q0, p0, _ = (v.astype("float32") for v in sample(3))
    for i, m in enumerate(models):
        m.save(tmp_path / f"{i}.keras")
        loaded = keras.saving.load_model(tmp_path / f"{i}.keras")  # no custom_objects
        np.testing.assert_array_equal(m([x, q0, p0]).numpy(), loaded([x, q0, p0]).numpy())


def test_saved_model_export_reloads_without_the_package(tmp_path):
    layer = make_layer(dtype="float32")
    archive = keras.export.ExportArchive()
    archive.track(layer)
    archive.add_endpoint(
        "serve",
        lambda x, q0, p0: layer(x, initial_state=[q0, p0]),
        input_signature=[
            tf.TensorSpec((None, None, 1), tf.float32),
            tf.TensorSpec((None, D), tf.float32),
            tf.TensorSpec((None, D), tf.float32),
        ],
    )
    archive.write_out(str(tmp_path / "export"))
    x, q0, p0, _ = (v.astype("float32") for v in sample(4))
    np.savez(tmp_path / "inputs.npz", x=x, q0=q0, p0=p0)
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        import tensorflow as tf
        loaded = tf.saved_model.load({str(tmp_path / "export")!r})
        inputs = np.load({str(tmp_path / "inputs.npz")!r})
        y = loaded.serve(*(tf.constant(inputs[k]) for k in ("x", "q0", "p0")))
        assert "tf_gradrnn" not in sys.modules
        print(json.dumps(y.numpy().tolist()))
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    y = json.loads(result.stdout.strip().splitlines()[-1])
    expected = layer(x, initial_state=[q0, p0]).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


# Bad input: one test per mistake, each message naming the problem.


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"coordinates": 0}, "coordinates must be a positive integer"),
        ({"dt": 0.0}, "dt must be a positive finite number, got 0.0"),
        ({"dt": float("nan")}, "dt must be a positive finite number, got nan"),
        ({"dt": "0.1"}, "dt must be a positive finite number"),
        ({"integrator": "rk4"}, "integrator must be one of"),
        ({"substeps": 0}, "substeps must be a positive integer"),
        ({"implicit_iterations": 0}, "implicit_iterations must be a positive integer"),
        ({"observe": "p"}, "observe must be one of"),
        ({"hidden_units": ()}, "hidden_units must name at least one hidden layer"),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HamiltonianCell(**{"coordinates": 1, **kwargs})


def test_hamiltonian_must_be_a_layer():
    with pytest.raises(TypeError, match="hamiltonian must be a Keras layer or model"):
        HamiltonianRNN(1, hamiltonian=lambda z: z)


def test_batch_normalization_is_refused():
    network = keras.Sequential([keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="BatchNormalization.*mixes samples"):
        HamiltonianCell(1, hamiltonian=network)


def test_hamiltonian_with_a_vector_output():
    layer = HamiltonianRNN(1, hamiltonian=keras.layers.Dense(2, name="h_net"))
    with pytest.raises(ValueError, match="h_net must return one scalar per sample"):
        layer(np.zeros((2, 3, 1), "float32"))


def test_two_dimensional_sequences():
    with pytest.raises(ValueError, match="expected ndim=3"):
        HamiltonianRNN(1)(np.zeros((2, 3), "float32"))


def test_integer_sequences():
    with pytest.raises(TypeError, match="must be floating point, got dtype int32"):
        HamiltonianRNN(1)(np.zeros((2, 3, 1), "int32"))


def test_initial_state_must_be_q_and_p():
    layer = HamiltonianRNN(2)
    x = np.zeros((2, 3, 1), "float32")
    with pytest.raises(ValueError, match=r"has 2 states \[q, p\], so initial_state must be a list"):
        layer(x, initial_state=np.zeros((2, 2), "float32"))
    with pytest.raises(ValueError, match=r"initial_state p0 must have shape \(batch, 2\)"):
        layer(x, initial_state=[np.zeros((2, 2), "float32"), np.zeros((2, 3), "float32")])


def test_cell_state_shape_and_feature_count():
    cell = HamiltonianCell(2, hidden_units=(3,))
    x, q = np.zeros((2, 1), "float32"), np.zeros((2, 2), "float32")
    cell(x, [q, q])
    with pytest.raises(ValueError, match=r"state p of shape \(batch, 2\), got \(2, 1\)"):
        cell(x, [q, q[:, :1]])
    with pytest.raises(ValueError, match="built for 1 input features"):
        cell(np.zeros((2, 3), "float32"), [q, q])
    with pytest.raises(ValueError, match=r"expects states \[q, p\]"):
        cell(x, q)


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


def test_initial_state_batch_must_match_the_inputs():
    layer = HamiltonianRNN(2)
    q0 = np.zeros((2, 2), "float32")
    with pytest.raises(ValueError, match="q0 has batch size 2 but the inputs have batch size 3"):
        layer(np.zeros((3, 4, 1), "float32"), initial_state=[q0, q0])


@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_no_steps_give_no_outputs_and_the_initial_state(mode):
    layer = make_layer(return_state=True, observe="qp")
    _, q0, p0, _ = sample()
    x = np.zeros((BATCH, 0, 1))
    call = lambda x, q0, p0: layer(x, initial_state=[q0, p0])  # noqa: E731
    if mode == "graph":  # the number of steps is only known at run time
        spec = [tf.TensorSpec((None, None, 1), tf.float64)]
        spec += [tf.TensorSpec((None, D), tf.float64)] * 2
        call = tf.function(call, input_signature=spec)
    y, q, p = call(x, q0, p0)
    assert y.shape == (BATCH, 0, 2 * D)
    np.testing.assert_array_equal(q, q0)
    np.testing.assert_array_equal(p, p0)


def test_no_steps_without_return_sequences_is_a_clear_error():
    with pytest.raises(ValueError, match="HamiltonianRNN got sequences of 0 time steps"):
        HamiltonianRNN(1)(np.zeros((2, 0, 1), "float32"))


def test_call_runs_the_step_function():
    cell = HamiltonianCell(D, hidden_units=(3,), observe="qp", dtype="float64")
    cell.build((None, 1))
    x, q = tf.ones((BATCH, 1), tf.float64), tf.ones((BATCH, D), tf.float64)
    y, (q_next, p_next) = cell(x, [q, 2 * q])
    y_step, (q_step, p_step) = cell.step_function()(x, [q, 2 * q])
    np.testing.assert_array_equal(y, y_step)
    np.testing.assert_array_equal(q_next, q_step)
    np.testing.assert_array_equal(p_next, p_step)


@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_run_with_states_equals_stepping_the_cell_by_hand(mode):
    layer = make_layer(observe="qp", substeps=1, implicit_iterations=1)
    rng = np.random.default_rng(3)
    x, q0, p0 = rng.standard_normal((BATCH, 6, 1)), *rng.standard_normal((2, BATCH, D))
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
