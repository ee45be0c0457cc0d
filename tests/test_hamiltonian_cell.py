"""HamiltonianCell: energy conservation and symplecticity of its integrators, its arguments, and a
bare cell called wrongly."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradrnn
from tf_gradrnn import HamiltonianCell, HamiltonianRNN

D, BATCH = 2, 3


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


def energy_run(integrator, hamiltonian, q0, p0, dt=0.1, steps=1000):
    """(q, p) over `steps` steps of the cell, each (batch, steps, d)."""
    layer = HamiltonianRNN(
        q0.shape[1], hamiltonian=hamiltonian, dt=dt, integrator=integrator, dtype="float64"
    )
    clock = tf.zeros((len(q0), steps, 1), tf.float64)
    _, (q, p) = tf.function(lambda: layer.run_with_states(clock, [q0, p0]))()
    return q.numpy(), p.numpy()


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
    q, p = energy_run(integrator, Pendulum(dtype="float64"), q0, np.zeros_like(q0))
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


def test_cell_contract_and_call_runs_the_step_function():
    cell = HamiltonianCell(D, hidden_units=(3,), observe="qp", dtype="float64")
    cell.build((None, 1))
    assert cell.state_size == [D, D] and cell.output_size == 2 * D
    assert [s.shape for s in cell.get_initial_state(batch_size=4)] == [(4, D), (4, D)]
    x, q = tf.ones((BATCH, 1), tf.float64), tf.ones((BATCH, D), tf.float64)
    y, (q_next, p_next) = cell(x, [q, 2 * q])
    y_step, (q_step, p_step) = cell.step_function()(x, [q, 2 * q])
    np.testing.assert_array_equal(y, y_step)
    np.testing.assert_array_equal(y, tf.concat([q_next, p_next], axis=-1))
    np.testing.assert_array_equal(q_next, q_step)
    np.testing.assert_array_equal(p_next, p_step)


# ---- arguments ----


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


def test_numpy_numbers_are_accepted():
    cell = HamiltonianCell(
        np.int64(2), dt=np.float32(0.25), substeps=np.int32(3), implicit_iterations=np.int64(2)
    )
    assert (cell.coordinates, cell.dt, cell.substeps, cell.implicit_iterations) == (2, 0.25, 3, 2)
    assert type(cell.dt) is float and type(cell.substeps) is int


def test_hamiltonian_must_be_a_layer():
    with pytest.raises(TypeError, match="hamiltonian must be a Keras layer or model"):
        HamiltonianCell(1, hamiltonian=lambda z: z)


def test_batch_normalization_is_refused():
    network = keras.Sequential([keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="BatchNormalization.*mixes samples"):
        HamiltonianCell(1, hamiltonian=network)


# ---- a bare cell called wrongly ----


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
    with pytest.raises(TypeError, match="HamiltonianCell inputs must be floating point"):
        cell(np.zeros((2, 1), "int32"), [q, q])
