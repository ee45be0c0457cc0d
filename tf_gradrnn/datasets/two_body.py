"""The two-body problem of the Hamiltonian Neural Networks paper (task 4), in canonical form.

Two bodies of unit mass, gravitational constant 1, in the plane. The state is ordered as the
authors' canonical coordinates, all x-coordinates of the bodies before their y-coordinates:

    x = (qx1, qx2, qy1, qy2, px1, px2, py1, py2)            x: (..., 8), q = x[:4], p = x[4:]
    H = (px1^2 + px2^2 + py1^2 + py2^2) / 2 - 1 / r,        r = |q1 - q2|
    dq/dt = dH/dp = p,   dp1/dt = -dH/dq1 = -(q1 - q2) / r^3,   dp2/dt = -dp1/dt

Near-circular orbits (`initial_states`, as described in the paper and its code): body 1
starts at `(X, Y)` with `X, Y ~ U[0.5, 1.5]`, body 2 at `(-X, -Y)`; both move perpendicular to
the line joining them at the circular-orbit speed `1 / (2 sqrt(R))`, `R = |(X, Y)|`, times one
common factor `1 + 0.05 N(0, 1)` that makes the orbits slightly elliptical. Per orbit the draws
are `rng.rand(2)` then `rng.randn()`, the authors' order.
"""

import numpy as np


def _positions(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two bodies' positions `(..., 2)` each, from `x: (..., 8)`."""
    return x[..., [0, 2]], x[..., [1, 3]]


def hamiltonian(x: np.ndarray) -> np.ndarray:
    """The total energy `H` of `x: (..., 8)`, shape `(...)`."""
    q1, q2 = _positions(x)
    r = np.linalg.norm(q1 - q2, axis=-1)
    return 0.5 * np.sum(x[..., 4:] ** 2, axis=-1) - 1.0 / r


def time_derivative(x: np.ndarray) -> np.ndarray:
    """The true `dx/dt = (dH/dp, -dH/dq)` at `x: (..., 8)`, shape `(..., 8)`."""
    q1, q2 = _positions(x)
    d = q1 - q2  # (..., 2)
    a1 = -d / np.linalg.norm(d, axis=-1, keepdims=True) ** 3  # acceleration of body 1
    # (ax1, ax2, ay1, ay2): the canonical order again.
    dp = np.stack([a1[..., 0], -a1[..., 0], a1[..., 1], -a1[..., 1]], axis=-1)
    return np.concatenate([x[..., 4:], dp], axis=-1)


def initial_states(
    rng: np.random.RandomState,
    orbits: int,
    orbit_noise: float = 0.05,
    min_radius: float = 0.5,
    max_radius: float = 1.5,
) -> np.ndarray:
    """`orbits` near-circular starting states `(orbits, 8)` drawn from `rng` (module docstring)."""
    states = []
    for _ in range(orbits):
        position = rng.rand(2) * (max_radius - min_radius) + min_radius  # (X, Y)
        radius = np.sqrt(np.sum(position**2))
        velocity = np.array([-position[1], position[0]]) / (2.0 * radius**1.5)
        velocity *= 1.0 + orbit_noise * rng.randn()
        (px, py), (vx, vy) = position, velocity
        states.append([px, -px, py, -py, vx, -vx, vy, -vy])
    return np.array(states)
