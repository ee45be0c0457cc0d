"""The ideal mass-spring and pendulum data of the Hamiltonian Neural Networks paper.

Coordinates are `x = (q, p)`, shape `(..., 2)`. The true Hamiltonians (Greydanus et al. 2019,
their public code) and time derivatives `dx/dt = (dH/dp, -dH/dq)`:

    mass_spring:  H = q^2 + p^2                  dx/dt = (2p, -2q)
    pendulum:     H = 3 (1 - cos q) + p^2        dx/dt = (2p, -3 sin q)

Protocol (`make_dataset`, as the authors' `get_dataset` with its defaults): 50 trajectories
from `x_0 = r u / |u|`, `u ~ U[-1, 1]^2`, radius `r ~ U[0.1, 1.0]` (spring) or `U[1.3, 2.3]`
(pendulum), observed on `linspace(0, 3, 30)` (spring) or `linspace(0, 3, 45)` (pendulum);
Gaussian noise of standard deviation 0.1 is added to q and p, the targets are the exact time
derivatives at the noise-free states; the first half of the concatenated points trains, the
second half tests. Draws use `np.random.RandomState(seed)` in the authors' order, so seed 0
gives their seed-0 data up to the ODE solver's tolerance (they use scipy's RK45 at rtol 1e-10;
we use RK4 with steps of at most 1e-3, an error below 1e-10 here, and no SciPy dependency).
"""

from typing import NamedTuple

import numpy as np

SYSTEMS = ("mass_spring", "pendulum")
_OBSERVATIONS = {"mass_spring": 30, "pendulum": 45}
_RADII = {"mass_spring": (0.1, 0.9), "pendulum": (1.3, 1.0)}  # r = low + width * U[0, 1]


class HNNData(NamedTuple):
    """Train and test points: `x`, `test_x` noisy `(n, 2)` states; `dx`, `test_dx` targets."""

    x: np.ndarray
    dx: np.ndarray
    test_x: np.ndarray
    test_dx: np.ndarray


def _check(system: str) -> None:
    if system not in SYSTEMS:
        raise ValueError(f"system must be one of {SYSTEMS}, got {system!r}.")


def energy(system: str, x: np.ndarray) -> np.ndarray:
    """The true Hamiltonian `H(q, p)` of `x: (..., 2)`, shape `(...)`."""
    _check(system)
    q, p = x[..., 0], x[..., 1]
    if system == "mass_spring":
        return q**2 + p**2
    return 3.0 * (1.0 - np.cos(q)) + p**2


def time_derivative(system: str, x: np.ndarray) -> np.ndarray:
    """The true `dx/dt = (dH/dp, -dH/dq)` at `x: (..., 2)`, shape `(..., 2)`."""
    _check(system)
    q, p = x[..., 0], x[..., 1]
    force = -2.0 * q if system == "mass_spring" else -3.0 * np.sin(q)
    return np.stack([2.0 * p, force], axis=-1)


def trajectories(system: str, x0: np.ndarray, t: np.ndarray, max_step: float = 1e-3):
    """Integrates the true dynamics from `x0: (n, 2)`; returns the states `(n, len(t), 2)`.

    Classic RK4 between consecutive times of `t` (which starts at 0), each interval split into
    steps of at most `max_step`. All trajectories advance together (vectorized).
    """
    x = np.asarray(x0, np.float64)
    out = [x]
    for t0, t1 in zip(t[:-1], t[1:], strict=True):
        n = max(1, int(np.ceil((t1 - t0) / max_step)))
        h = (t1 - t0) / n
        for _ in range(n):
            k1 = time_derivative(system, x)
            k2 = time_derivative(system, x + 0.5 * h * k1)
            k3 = time_derivative(system, x + 0.5 * h * k2)
            k4 = time_derivative(system, x + h * k3)
            x = x + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(x)
    return np.stack(out, axis=1)


def make_dataset(
    system: str, seed: int = 0, samples: int = 50, noise_std: float = 0.1, test_split: float = 0.5
) -> HNNData:
    """The paper's training and test data for `system` (see the module docstring)."""
    _check(system)
    rng = np.random.RandomState(seed)
    t = np.linspace(0.0, 3.0, _OBSERVATIONS[system])
    low, width = _RADII[system]
    starts, noises = [], []
    for _ in range(samples):
        u = rng.rand(2) * 2 - 1
        radius = rng.rand() * width + low
        starts.append(u / np.sqrt((u**2).sum()) * radius)
        noises.append(np.stack([rng.randn(len(t)), rng.randn(len(t))], axis=-1) * noise_std)
    clean = trajectories(system, np.stack(starts), t)  # (samples, len(t), 2)
    x = (clean + np.stack(noises)).reshape(-1, 2)
    dx = time_derivative(system, clean).reshape(-1, 2)
    split = int(len(x) * test_split)
    return HNNData(x[:split], dx[:split], x[split:], dx[split:])


def energy_test_starts(trials: int = 15, seed: int = 0) -> np.ndarray:
    """Initial states of the energy test, `(trials, 2)`: as the authors' notebooks, each
    coordinate is `U[-0.8, 0.8]` pushed 0.2 away from zero, so `0.2 <= |x_i| <= 1.0`."""
    rng = np.random.RandomState(seed)
    x0 = rng.rand(trials, 2) * 1.6 - 0.8
    return x0 + 0.2 * np.sign(x0)
