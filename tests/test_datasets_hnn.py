"""The HNN paper's data: true dynamics, the authors' protocol, splits, seeds and starts."""

import numpy as np
import pytest

from tf_gradrnn.datasets import hnn, two_body
from tf_gradrnn.datasets.ode import rk4_trajectories

SMALL = {"mass_spring": 50, "pendulum": 50, "two_body": 10}  # orbits: 10, for speed


def random_states(system, n=6, seed=0):
    if system == "two_body":
        return two_body.initial_states(np.random.RandomState(seed), n)
    return np.random.RandomState(seed).uniform(-1.5, 1.5, (n, 2))


@pytest.mark.parametrize("system", hnn.SYSTEMS)
def test_time_derivative_is_the_symplectic_gradient_of_the_energy(system):
    x = random_states(system)
    d, eps = hnn.dimension(system) // 2, 1e-6
    grad = np.stack(
        [
            (hnn.energy(system, x + eps * e) - hnn.energy(system, x - eps * e)) / (2 * eps)
            for e in np.eye(2 * d)
        ],
        axis=-1,
    )  # central differences in float64, (n, 2d)
    expected = np.concatenate([grad[:, d:], -grad[:, :d]], axis=-1)  # (dH/dp, -dH/dq)
    np.testing.assert_allclose(hnn.time_derivative(system, x), expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("system", hnn.SYSTEMS)
def test_true_trajectories_conserve_energy(system):
    x0 = random_states(system)
    paths = hnn.trajectories(system, x0, np.linspace(0.0, 10.0, 21), max_step=1e-2)
    energies = hnn.energy(system, paths)  # (n, 21)
    assert paths.shape == (len(x0), 21, hnn.dimension(system))
    np.testing.assert_allclose(energies, energies[:, :1] * np.ones(21), atol=1e-8)


def test_rk4_matches_the_closed_form_oscillator_with_one_time_row_per_trajectory():
    # dq/dt = 2p, dp/dt = -2q: q = q0 cos 2t + p0 sin 2t, p = p0 cos 2t - q0 sin 2t.
    x0 = np.array([[1.0, 0.0], [0.3, -0.5]])
    t = np.stack([np.linspace(0.0, 3.0, 7), np.linspace(0.0, 9.0, 7)])  # (2, 7)
    paths = rk4_trajectories(lambda x: hnn.time_derivative("mass_spring", x), x0, t, 5e-3)
    c, s = np.cos(2 * t), np.sin(2 * t)
    q0, p0 = x0[:, :1], x0[:, 1:]
    expected = np.stack([q0 * c + p0 * s, p0 * c - q0 * s], axis=-1)
    np.testing.assert_allclose(paths, expected, atol=1e-10)


@pytest.mark.parametrize(
    "system, train, test",
    [("mass_spring", 750, 750), ("pendulum", 1125, 1125), ("two_body", 400, 100)],
    ids=["mass_spring", "pendulum", "two_body"],
)
def test_dataset_shapes(system, train, test):
    data = hnn.make_dataset(system, samples=SMALL[system], max_step=1e-2)
    dim = hnn.dimension(system)
    assert [a.shape for a in data] == [(train, dim), (train, dim), (test, dim), (test, dim)]
    assert all(a.dtype == np.float64 and np.all(np.isfinite(a)) for a in data)


@pytest.mark.parametrize("system", hnn.SYSTEMS)
def test_dataset_is_determined_by_its_seed(system):
    first, again, other = (
        hnn.make_dataset(system, seed=s, samples=SMALL[system], max_step=1e-2) for s in (3, 3, 4)
    )
    for a, b, c in zip(first, again, other, strict=True):
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)


@pytest.mark.parametrize("system", ["mass_spring", "pendulum"])
def test_spring_and_pendulum_follow_the_authors_draws_and_split(system):
    # Per trajectory: u (2 uniforms), the radius (1 uniform), then the noise of q and p.
    data = hnn.make_dataset(system, seed=7)
    rng, points = np.random.RandomState(7), len(data.x) // 25
    low, width = {"mass_spring": (0.1, 0.9), "pendulum": (1.3, 1.0)}[system]
    starts = []
    for _ in range(50):
        u = rng.rand(2) * 2 - 1
        starts.append(u / np.linalg.norm(u) * (rng.rand() * width + low))
        noise = np.stack([rng.randn(points), rng.randn(points)], axis=-1) * 0.1
        if len(starts) == 1:
            first_noise = noise
    clean = hnn.trajectories(system, np.array(starts), np.linspace(0.0, 3.0, points))
    dx = hnn.time_derivative(system, clean)  # (50, points, 2), noise-free targets
    np.testing.assert_allclose(data.dx, dx[:25].reshape(-1, 2))  # the first half trains
    np.testing.assert_allclose(data.test_dx, dx[25:].reshape(-1, 2))  # the second tests
    np.testing.assert_allclose(data.x[:points], clean[0] + first_noise)
    assert points == {"mass_spring": 30, "pendulum": 45}[system]


def test_two_body_tests_on_its_first_fifth_of_orbits_without_noise():
    data = hnn.make_dataset("two_body", seed=5, samples=10, max_step=1e-2)
    starts = two_body.initial_states(np.random.RandomState(5), 10)
    np.testing.assert_array_equal(data.test_x[0], starts[0])  # orbits 0 and 1 test
    np.testing.assert_array_equal(data.test_x[50], starts[1])
    np.testing.assert_array_equal(data.x[0], starts[2])  # orbits 2 to 9 train
    np.testing.assert_allclose(data.dx, hnn.time_derivative("two_body", data.x))
    energy = hnn.energy("two_body", data.x.reshape(8, 50, 8))
    np.testing.assert_allclose(energy, energy[:, :1] * np.ones(50), atol=1e-8)  # no noise


def test_two_body_starts_are_centred_near_circular_orbits():
    states = two_body.initial_states(np.random.RandomState(0), 200)
    q1, q2 = states[:, [0, 2]], states[:, [1, 3]]
    p1, p2 = states[:, [4, 6]], states[:, [5, 7]]
    np.testing.assert_array_equal(q1, -q2)  # centre of mass at 0
    np.testing.assert_array_equal(p1, -p2)  # total momentum 0
    assert np.all((q1 >= 0.5) & (q1 <= 1.5))
    np.testing.assert_allclose(np.sum(q1 * p1, axis=1), 0.0, atol=1e-15)  # perpendicular
    radius = np.linalg.norm(q1, axis=1)
    factor = np.linalg.norm(p1, axis=1) * 2 * np.sqrt(radius)  # speed / circular speed
    assert abs(factor.mean() - 1) < 0.01 and 0.03 < factor.std() < 0.07


def test_two_body_orbit_without_noise_is_a_circle():
    x0 = two_body.initial_states(np.random.RandomState(1), 3, orbit_noise=0.0)
    paths = hnn.trajectories("two_body", x0, np.linspace(0.0, 20.0, 41), max_step=1e-2)
    separation = np.linalg.norm(paths[..., [0, 2]] - paths[..., [1, 3]], axis=-1)
    np.testing.assert_allclose(separation, separation[:, :1] * np.ones(41), rtol=1e-8)


def test_energy_test_starts():
    pendulum = hnn.energy_test_starts("pendulum")
    np.testing.assert_array_equal(pendulum, hnn.energy_test_starts("pendulum"))
    spring = hnn.energy_test_starts("mass_spring", seed=0)
    for starts in (pendulum, spring):
        assert starts.shape == (15, 2)
        assert np.all((np.abs(starts) >= 0.2) & (np.abs(starts) <= 1.0))
    assert not np.allclose(pendulum, spring)
    orbits = hnn.energy_test_starts("two_body")  # trial i: one orbit drawn after seed(i)
    np.testing.assert_array_equal(
        orbits[4], two_body.initial_states(np.random.RandomState(4), 1)[0]
    )
    assert hnn.energy_test_starts("two_body", 4, seed=9).shape == (4, 8)


def test_energy_test_starts_refuses_what_cannot_be_replayed():
    with pytest.raises(ValueError, match="mass-spring starting points cannot be recovered"):
        hnn.energy_test_starts("mass_spring")
    with pytest.raises(ValueError, match="drew 15 starts, asked for 16"):
        hnn.energy_test_starts("pendulum", 16)


def test_unknown_system_is_named():
    with pytest.raises(ValueError, match="system must be one of .* got 'three_body'"):
        hnn.make_dataset("three_body")


@pytest.mark.parametrize("samples", [1, 2.5, True], ids=["one", "float", "bool"])
def test_bad_sample_count_is_named(samples):
    with pytest.raises(ValueError, match="samples must be an integer of at least 2"):
        hnn.make_dataset("mass_spring", samples=samples)


def test_rk4_refuses_times_that_do_not_increase():
    with pytest.raises(ValueError, match="must increase strictly"):
        rk4_trajectories(lambda x: x, np.zeros((1, 2)), np.array([0.0, 1.0, 1.0]))


def test_rk4_refuses_times_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"t must have shape \(T,\) or \(2, T\)"):
        rk4_trajectories(lambda x: x, np.zeros((2, 2)), np.zeros((3, 4)))
