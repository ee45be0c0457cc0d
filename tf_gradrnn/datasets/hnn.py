"""The data of the Hamiltonian Neural Networks paper: mass-spring, pendulum and two-body.

Greydanus, Dzamba, Yosinski, "Hamiltonian Neural Networks", NeurIPS 2019, tasks 1, 2 and 4.
Coordinates are canonical, `x = (q, p)`, `(..., 2)` for the first two systems (two-body:
`(..., 8)`, see `tf_gradrnn.datasets.two_body`). True Hamiltonians and time derivatives
`dx/dt = (dH/dp, -dH/dq)`:

    mass_spring:  H = q^2 + p^2                  dx/dt = (2p, -2q)
    pendulum:     H = 3 (1 - cos q) + p^2        dx/dt = (2p, -3 sin q)
    two_body:     H = |p|^2 / 2 - 1 / |q1 - q2|  (unit masses, G = 1)

Protocol of `make_dataset` (the authors' `get_dataset` defaults, their public code):

- mass_spring, pendulum: 50 trajectories from `x_0 = r u / |u|`, `u ~ U[-1, 1]^2`, radius
  `r ~ U[0.1, 1.0]` (spring) or `U[1.3, 2.3]` (pendulum), observed on `linspace(0, 3, 30)`
  (spring) or `linspace(0, 3, 45)` (pendulum); Gaussian noise of standard deviation 0.1 on q
  and p; the targets are the exact derivatives at the noise-free states. The first half of
  the concatenated points trains, the second half tests.
- two_body: 1000 near-circular orbits (the code's number; the paper's text says 200), 50
  noise-free points each on `linspace(0, 20, 50)`; the first 20 % of the points (whole
  orbits) test, the rest trains.

Draws use `np.random.RandomState(seed)` in the authors' order, so seed 0 gives their seed-0
data up to the ODE solver's tolerance (theirs: scipy's RK45, rtol 1e-10 resp. 1e-9; ours: RK4
with steps of at most `max_step`, no SciPy dependency).
"""

from typing import NamedTuple

import numpy as np

from tf_gradrnn.datasets import two_body
from tf_gradrnn.datasets.ode import rk4_trajectories

SYSTEMS = ("mass_spring", "pendulum", "two_body")
_OBSERVATIONS = {"mass_spring": 30, "pendulum": 45}  # points on t in [0, 3]
_RADII = {"mass_spring": (0.1, 0.9), "pendulum": (1.3, 1.0)}  # r = low + width * U[0, 1]
_SAMPLES = {"mass_spring": 50, "pendulum": 50, "two_body": 1000}
_ORBIT_POINTS, _ORBIT_SPAN = 50, 20.0


class HNNData(NamedTuple):
    """Train and test points: `x`, `test_x` states `(n, D)`; `dx`, `test_dx` targets `(n, D)`."""

    x: np.ndarray
    dx: np.ndarray
    test_x: np.ndarray
    test_dx: np.ndarray


def _check(system: str) -> None:
    if system not in SYSTEMS:
        raise ValueError(f"system must be one of {SYSTEMS}, got {system!r}.")


def dimension(system: str) -> int:
    """The number of canonical coordinates `D = 2d` of `system`: 2, 2 or 8."""
    _check(system)
    return 8 if system == "two_body" else 2


def energy(system: str, x: np.ndarray) -> np.ndarray:
    """The true Hamiltonian of `x: (..., D)`, shape `(...)`."""
    _check(system)
    if system == "two_body":
        return two_body.hamiltonian(x)
    q, p = x[..., 0], x[..., 1]
    if system == "mass_spring":
        return q**2 + p**2
    return 3.0 * (1.0 - np.cos(q)) + p**2


def time_derivative(system: str, x: np.ndarray) -> np.ndarray:
    """The true `dx/dt = (dH/dp, -dH/dq)` at `x: (..., D)`, shape `(..., D)`."""
    _check(system)
    if system == "two_body":
        return two_body.time_derivative(x)
    q, p = x[..., 0], x[..., 1]
    force = -2.0 * q if system == "mass_spring" else -3.0 * np.sin(q)
    return np.stack([2.0 * p, force], axis=-1)


def trajectories(system: str, x0: np.ndarray, t: np.ndarray, max_step: float = 1e-3) -> np.ndarray:
    """The true states `(n, T, D)` from `x0: (n, D)` at times `t: (T,)` or `(n, T)` (RK4)."""
    _check(system)
    return rk4_trajectories(lambda x: time_derivative(system, x), x0, t, max_step)


def make_dataset(
    system: str,
    seed: int = 0,
    samples: int | None = None,
    noise_std: float = 0.1,
    max_step: float = 1e-3,
) -> HNNData:
    """The paper's training and test data for `system` (see the module docstring).

    Args:
        system: one of `SYSTEMS`.
        seed: seed of the `np.random.RandomState` that draws everything.
        samples: trajectories (orbits for two_body); by default 50, 50 and 1000.
        noise_std: observation noise on q and p (mass_spring and pendulum; two_body has none).
        max_step: largest RK4 step of the true dynamics.
    """
    _check(system)
    samples = _SAMPLES[system] if samples is None else samples
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an integer of at least 2, got {samples!r}.")
    rng = np.random.RandomState(seed)
    if system == "two_body":
        t = np.linspace(0.0, _ORBIT_SPAN, _ORBIT_POINTS)
        clean = trajectories(system, two_body.initial_states(rng, samples), t, max_step)
        x = clean.reshape(-1, 8)
        dx = time_derivative(system, x)
        split = int(len(x) * 0.2)  # the test set comes first here
        return HNNData(x[split:], dx[split:], x[:split], dx[:split])
    t = np.linspace(0.0, 3.0, _OBSERVATIONS[system])
    low, width = _RADII[system]
    starts, noises = [], []
    for _ in range(samples):
        u = rng.rand(2) * 2 - 1
        radius = rng.rand() * width + low
        starts.append(u / np.sqrt((u**2).sum()) * radius)
        noises.append(np.stack([rng.randn(len(t)), rng.randn(len(t))], axis=-1) * noise_std)
    clean = trajectories(system, np.stack(starts), t, max_step)  # (samples, len(t), 2)
    x = (clean + np.stack(noises)).reshape(-1, 2)
    dx = time_derivative(system, clean).reshape(-1, 2)
    split = int(len(x) * 0.5)
    return HNNData(x[:split], dx[:split], x[split:], dx[split:])


def _notebook_starts(rng: np.random.RandomState, trials: int) -> np.ndarray:
    # Each coordinate U[-0.8, 0.8] pushed 0.2 away from zero: 0.2 <= |x_i| <= 1.0.
    x0 = rng.rand(trials, 2) * 1.6 - 0.8
    return x0 + 0.2 * np.sign(x0)


def _replay_pendulum_notebook() -> np.random.RandomState:
    """The global NumPy state of the authors' analyze-pend.ipynb before its energy test.

    Its saved execution counts run 1 to 12 in cell order, so the draws are known: cell 13's
    `get_dataset(radius=2.0)` reseeds with 0 and draws, per trajectory, u (2 uniforms) and
    the noise of q and p (45 normals each; no radius, it is given); cell 15 draws the noise of
    one 60-point trajectory (`t_span=[0, 4]`). Nothing else before cell 19 draws.
    """
    rng = np.random.RandomState(0)
    for _ in range(_SAMPLES["pendulum"]):
        rng.rand(2)
        rng.randn(_OBSERVATIONS["pendulum"])
        rng.randn(_OBSERVATIONS["pendulum"])
    rng.randn(60)
    rng.randn(60)
    return rng


def energy_test_starts(system: str, trials: int = 15, seed: int | None = None) -> np.ndarray:
    """Starting states `(trials, D)` of the energy test.

    With `seed=None`, the authors' own starting points where they can be recovered:
    pendulum, the 15 draws of analyze-pend.ipynb, replayed from its known global state;
    two_body, trial i is one orbit drawn after `seed(i)`, as analyze-2body.ipynb. The spring
    notebook's draws cannot be replayed (its execution counts have gaps), so mass_spring
    needs a seed. With an integer `seed`, fresh draws from `RandomState(seed)` by the same
    formulas: each coordinate in `[-1, -0.2] u [0.2, 1]` (spring, pendulum), near-circular
    orbits (two_body).

    Raises:
        ValueError: for mass_spring without a seed, or for more than 15 replayed pendulum
            trials (the notebook drew 15).
    """
    _check(system)
    if seed is not None:
        rng = np.random.RandomState(seed)
        if system == "two_body":
            return two_body.initial_states(rng, trials)
        return _notebook_starts(rng, trials)
    if system == "two_body":
        return np.concatenate(
            [two_body.initial_states(np.random.RandomState(i), 1) for i in range(trials)]
        )
    if system == "mass_spring":
        raise ValueError(
            "The authors' mass-spring starting points cannot be recovered; pass a seed."
        )
    if trials > 15:
        raise ValueError(f"The authors' pendulum notebook drew 15 starts, asked for {trials}.")
    return _notebook_starts(_replay_pendulum_notebook(), trials)
