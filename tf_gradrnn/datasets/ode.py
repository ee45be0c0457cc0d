"""Fixed-step RK4 for the datasets' true dynamics, vectorized over trajectories (no SciPy)."""

from collections.abc import Callable

import numpy as np


def rk4_trajectories(
    field: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    t: np.ndarray,
    max_step: float = 1e-3,
) -> np.ndarray:
    """Integrates `dx/dt = field(x)` from `x0: (n, D)`; returns the states `(n, T, D)`.

    `t` holds the observation times, `(T,)` shared by all trajectories or `(n, T)` one row per
    trajectory; `x0` is the state at `t[..., 0]`. Between consecutive times, classic RK4
    advances all trajectories together with the same number of steps, of size at most
    `max_step` (each row its own size). `field` maps `(n, D) -> (n, D)` in float64.

    Raises:
        ValueError: if the times do not increase or do not match `x0`.
    """
    x = np.asarray(x0, np.float64)
    if x.ndim != 2:
        raise ValueError(f"x0 must have shape (n, D), got {x.shape}.")
    times = np.asarray(t, np.float64)
    if times.ndim == 1:
        times = np.broadcast_to(times, (len(x), len(times)))
    if times.ndim != 2 or len(times) != len(x):
        raise ValueError(f"t must have shape (T,) or ({len(x)}, T), got {np.shape(t)}.")
    intervals = np.diff(times, axis=1)  # (n, T - 1)
    if np.any(intervals <= 0):
        raise ValueError("The times t must increase strictly along each trajectory.")
    out = [x]
    for interval in intervals.T:  # (n,)
        steps = max(1, int(np.ceil(interval.max() / max_step)))
        h = (interval / steps)[:, None]  # (n, 1)
        for _ in range(steps):
            k1 = field(x)
            k2 = field(x + 0.5 * h * k1)
            k3 = field(x + 0.5 * h * k2)
            k4 = field(x + h * k3)
            x = x + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        out.append(x)
    return np.stack(out, axis=1)
